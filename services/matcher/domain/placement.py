"""CPU or GPU: chosen once at start, the same code path after that.

The index of record always lives on the CPU (it is what snapshots serialise and what add/remove
mutate, which GPU IVF indexes only partly support). On a GPU, searches run on a GPU copy that is
refreshed after each batch of writes (copied aside, then swapped), so a write never blocks
searches for the length of the copy.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

import faiss

log = logging.getLogger("finprint.matcher.placement")

GpuPreference = Literal["auto", "never", "always"]


@dataclass(frozen=True)
class Placement:
    device: Literal["cpu", "gpu"]
    gpu_resources: Any = None  # faiss.StandardGpuResources; only built where faiss-gpu is installed

    @classmethod
    def choose(cls, preference: GpuPreference) -> Placement:
        gpus = faiss.get_num_gpus() if hasattr(faiss, "StandardGpuResources") else 0
        if preference == "always" and gpus == 0:
            raise RuntimeError(
                "use_gpu=always but faiss has no GPU support here (install faiss-gpu) or no GPU"
            )
        if preference != "never" and gpus > 0:
            placement = cls("gpu", faiss.StandardGpuResources())
        else:
            placement = cls("cpu")
        log.info(
            "faiss placement chosen",
            extra={
                "fields": {
                    "device": placement.device,
                    "gpus_visible": gpus,
                    "preference": preference,
                    "faiss_version": faiss.__version__,
                    "omp_threads": faiss.omp_get_max_threads(),
                }
            },
        )
        return placement

    def searchable(self, index: faiss.Index) -> faiss.Index:
        """The index searches should use: the index itself on CPU, a GPU copy on GPU."""
        if self.device == "cpu" or index.ntotal == 0:
            return index
        return faiss.index_cpu_to_gpu(self.gpu_resources, 0, index)
