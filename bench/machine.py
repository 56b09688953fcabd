"""What the page says about the machine a run used: CPU, cores, RAM, GPU, versions, models, code."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
from pathlib import Path

from bench.runner import REPO


def machine() -> dict[str, str]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kib = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    return {
        "CPU": cpu,
        "cores (usable by this run)": f"{len(os.sched_getaffinity(0))} of {os.cpu_count()}",
        "RAM": f"{mem_kib / 2**20:.1f} GiB",
        "GPU": gpu() or "none",
        "OS": platform.platform(),
        "Python": platform.python_version(),
        "onnxruntime / faiss": f"{version('onnxruntime')} / {version('faiss-cpu')}",
        "models": models(),
        "code": git_revision(),
    }


def gpu() -> str | None:
    if shutil.which("nvidia-smi") is None:
        return None
    done = subprocess.run(["nvidia-smi", "-L"], check=False, capture_output=True, text=True)
    return done.stdout.strip() or None if done.returncode == 0 else None


def version(module: str) -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed(module)
    except PackageNotFoundError:
        return "not installed"


def models() -> str:
    names = []
    for name in ("finprint_detector", "finprint_embedder"):
        card = next(iter(sorted((REPO / "model_repository" / name).glob("**/finprint.json"))), None)
        if card is None:
            names.append(f"{name}: missing")
            continue
        meta = json.loads(card.read_text())
        about = ", ".join(str(meta[k]) for k in ("stage", "backbone", "created") if meta.get(k))
        names.append(f"{name} v{meta.get('version', '?')}" + (f" ({about})" if about else ""))
    return ", ".join(names)


def git_revision() -> str:
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], check=False, cwd=REPO, capture_output=True, text=True
    )
    dirty = subprocess.run(
        ["git", "status", "--porcelain"], check=False, cwd=REPO, capture_output=True, text=True
    )
    if head.returncode != 0:
        return "unknown"
    return head.stdout.strip() + (" + uncommitted changes" if dirty.stdout.strip() else "")
