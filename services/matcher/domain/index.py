"""One FAISS index: the embeddings of one (organisation, species group, model version) key.

Vectors are L2-normalised, so inner product is cosine similarity. Small galleries use exact
search (``IndexFlatIP``); from ``approximate_min_size`` embeddings on, an inverted-file index
(``IndexIVFFlat``) whose number of lists grows with the gallery (see docs/matcher.md for the
measurements behind the choice: IVF, unlike HNSW, removes vectors in place, so deletes and
re-identifications need no tombstones, and it trains in seconds where HNSW takes minutes to
build at 1M on two cores).

Concurrency: searches share a read lock; mutations hold the write lock only while FAISS changes
the index. A change of index kind (flat -> IVF, or IVF retrained for a grown gallery) is built
aside while searches go on against the old index, then swapped in.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import faiss
import numpy as np

from finprint.schemas.embeddings import IndexKey
from services.matcher.domain.placement import Placement
from services.matcher.domain.ranking import (
    BEST_IMAGE,
    ImageHit,
    IndividualScore,
    IndividualScoring,
    best_per_individual,
)
from services.matcher.domain.rwlock import ReadWriteLock

log = logging.getLogger("finprint.matcher.index")

IndexKind = Literal["flat", "ivf"]
UpsertOutcome = Literal["inserted", "updated", "unchanged"]


class InvalidVector(ValueError):
    """A vector that cannot be indexed or searched (wrong length, not finite, zero)."""


@dataclass(frozen=True)
class IndexPolicy:
    """When to go approximate, and how the IVF index is sized and searched.

    Defaults come from bench/bench_matcher.py on two cores (docs/matcher.md): about 2·sqrt(n)
    lists and 16 of them probed (1/128 beyond 2,048 lists) kept recall@5 of individuals at 1.0
    against exact search from 100k to 1M; 8 probes fell to 0.96 at 100k, and probing 1/32 of
    the lists cost a batch of 64 queries at 1M three times the time for no recall.
    """

    dim: int = 512
    approximate_min_size: int = 25_000
    ivf_nlist: int | None = None
    ivf_nprobe: int | None = None
    ivf_train_points_per_list: int = 40
    ivf_kmeans_iterations: int = 10
    ivf_retrain_growth: float = 4.0
    min_search_width: int = 32

    def kind_for(self, size: int, current: IndexKind) -> IndexKind:
        # Hysteresis: a gallery hovering around the limit must not flip kinds on every write.
        if current == "flat":
            return "ivf" if size >= self.approximate_min_size else "flat"
        return "flat" if size < self.approximate_min_size // 2 else "ivf"

    def nlist_for(self, size: int) -> int:
        """About 2·sqrt(n) lists, a power of two, and never fewer training points than lists need."""
        if self.ivf_nlist:
            return self.ivf_nlist
        wanted = 2 ** round(math.log2(max(2 * math.sqrt(size), 16)))
        trainable = max(16, size // self.ivf_train_points_per_list)
        return int(min(wanted, 2 ** int(math.log2(trainable)), 65_536))

    def nprobe_for(self, nlist: int) -> int:
        return self.ivf_nprobe or max(16, nlist // 128)


@dataclass(frozen=True)
class IndexedImage:
    """An embedding to put in the index: the domain's view of an EmbeddingRecord."""

    embedding_id: str
    individual_id: str
    vector: np.ndarray
    seq: int


@dataclass
class _Entry:
    internal_id: int
    individual_id: str
    seq: int
    digest: bytes


def normalised_rows(vectors: np.ndarray, dim: int) -> np.ndarray:
    """float32 C-contiguous unit rows; raises InvalidVector naming the first bad row."""
    array = np.asarray(vectors, dtype=np.float32)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or array.shape[1] != dim:
        raise InvalidVector(f"vectors must have {dim} values, got shape {tuple(array.shape)}")
    if not np.isfinite(array).all():
        row = int(np.argwhere(~np.isfinite(array))[0][0])
        raise InvalidVector(f"vector {row} has a value that is not a finite number")
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    if (norms == 0).any():
        raise InvalidVector(f"vector {int(np.argwhere(norms[:, 0] == 0)[0][0])} is all zeros")
    return np.ascontiguousarray(array / norms, dtype=np.float32)


def _digest(vector: np.ndarray) -> bytes:
    return hashlib.blake2b(vector.tobytes(), digest_size=8).digest()


def _new_flat(dim: int) -> faiss.Index:
    return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))


def _new_ivf(vectors: np.ndarray, ids: np.ndarray, policy: IndexPolicy) -> faiss.IndexIVFFlat:
    nlist = policy.nlist_for(len(vectors))
    quantizer = faiss.IndexFlatIP(policy.dim)
    index = faiss.IndexIVFFlat(quantizer, policy.dim, nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.niter = policy.ivf_kmeans_iterations  # lists good enough for recall in a fraction of the time
    # A fixed sample seed: the same gallery trains the same lists on every replica and restart.
    sample_size = min(len(vectors), nlist * policy.ivf_train_points_per_list)
    sample = vectors[np.random.default_rng(0).choice(len(vectors), sample_size, replace=False)]
    index.train(np.ascontiguousarray(sample))
    # A hash-table direct map lets remove_ids and reconstruct find a vector's list without a scan.
    index.set_direct_map_type(faiss.DirectMap.Hashtable)
    index.nprobe = policy.nprobe_for(nlist)
    index.add_with_ids(vectors, ids)
    return index


def _kind_of(index: faiss.Index) -> IndexKind:
    return "ivf" if isinstance(index, faiss.IndexIVF) else "flat"


class VectorIndex:
    """The embeddings of one key, searchable by individual. Mutations are serialised internally."""

    def __init__(self, key: IndexKey, policy: IndexPolicy, placement: Placement) -> None:
        self.key = key
        self.policy = policy
        self.placement = placement
        self._faiss: faiss.Index = _new_flat(policy.dim)
        self._searchable: faiss.Index = placement.searchable(self._faiss)
        self._entries: dict[str, _Entry] = {}
        self._by_internal: dict[int, tuple[str, str]] = {}
        self._images_per_individual: Counter[str] = Counter()
        self._internal_ids_of: dict[str, set[int]] = defaultdict(set)
        self._next_internal_id = 0
        self._trained_size = 0
        self._rw = ReadWriteLock()
        self._write_mutex = threading.Lock()

    # -- reading -------------------------------------------------------------------------------

    @property
    def size(self) -> int:
        return len(self._entries)

    @property
    def kind(self) -> IndexKind:
        return _kind_of(self._faiss)

    def individual_count(self) -> int:
        return len(self._images_per_individual)

    def entry_seq(self, embedding_id: str) -> int | None:
        entry = self._entries.get(embedding_id)
        return entry.seq if entry else None

    def embedding_ids(self) -> list[str]:
        with self._rw.reading():
            return list(self._entries)

    def members(self) -> tuple[list[tuple[str, str]], int]:
        """(embedding id, individual id) of every entry, and how many vectors FAISS itself holds."""
        with self._rw.reading():
            return [(e, entry.individual_id) for e, entry in self._entries.items()], int(self._faiss.ntotal)

    def photos(self) -> tuple[list[str], list[str], np.ndarray]:
        """Every indexed embedding: its id, its individual and its vector (unit rows), as one stable view."""
        with self._write_mutex, self._rw.reading():
            internal_ids, vectors = self._export()
            owners = [self._by_internal[int(i)] for i in internal_ids]
        return [e for e, _ in owners], [i for _, i in owners], np.asarray(vectors, dtype=np.float32)

    def search(self, queries: np.ndarray, k: int, scoring: IndividualScoring = BEST_IMAGE) -> list[list[IndividualScore]]:
        """The k best individuals per query (unit rows), scored as ``scoring`` says.

        Asks FAISS for more images than individuals, and asks again wider for the queries whose
        images came from fewer than k individuals, until k individuals or the whole gallery. The
        individuals those images found are then scored; with a centroid weight, each by its best
        image and by the mean of all its images (see ``IndividualScoring``).
        """
        queries = normalised_rows(queries, self.policy.dim)
        results: list[list[IndividualScore]] = [[] for _ in range(len(queries))]
        with self._rw.reading():
            total = len(self._entries)
            if total == 0:
                return results
            width = min(total, max(4 * k, self.policy.min_search_width))
            pending = np.arange(len(queries))
            while pending.size:
                scores, ids = self._searchable.search(queries[pending], width)
                unfinished = []
                for row, query_index in enumerate(pending):
                    individuals = best_per_individual(self._hits(scores[row], ids[row]))
                    exhausted = width >= total or bool((ids[row] < 0).any())
                    if len(individuals) >= k or exhausted:
                        if scoring.centroid_weight:
                            individuals = scoring.rescored(individuals, self._centroid_similarities(
                                queries[query_index], [c.individual_id for c in individuals]))
                        results[query_index] = individuals[:k]
                    else:
                        unfinished.append(query_index)
                pending = np.asarray(unfinished, dtype=np.int64)
                width = min(total, width * 4)
        return results

    def _centroid_similarities(self, query: np.ndarray, individual_ids: Sequence[str]) -> list[float]:
        """Cosine of the query with each individual's centroid (the normalised mean of its images).

        One FAISS call for every candidate's vectors: per-individual calls cost more than the search."""
        groups = [np.fromiter(self._internal_ids_of.get(i, ()), dtype=np.int64) for i in individual_ids]
        sizes = np.array([len(g) for g in groups])
        if not sizes.sum():
            return [0.0] * len(individual_ids)
        vectors = self._faiss.reconstruct_batch(np.concatenate(groups))
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        centroids = np.add.reduceat(vectors, starts[sizes > 0], axis=0)
        similarities = np.zeros(len(individual_ids))
        norms = np.maximum(np.linalg.norm(centroids, axis=1), 1e-12)
        # Elementwise, not a BLAS product: for a few dozen rows OpenBLAS's thread hand-off costs
        # milliseconds on a busy machine (measured: 6 ms against 0.5 ms per search at 100k).
        similarities[sizes > 0] = (centroids * query).sum(axis=1) / norms
        return similarities.tolist()

    def _hits(self, scores: np.ndarray, ids: np.ndarray) -> list[ImageHit]:
        hits = []
        for score, internal_id in zip(scores.tolist(), ids.tolist()):
            known = self._by_internal.get(internal_id)
            # -1: fewer results than asked (IVF probed lists exhausted). Unknown: removed a moment
            # ago while a GPU copy, refreshed after the write, still held it.
            if known is not None:
                hits.append(ImageHit(known[0], known[1], score))
        return hits

    # -- writing -------------------------------------------------------------------------------

    def upsert_many(self, images: Sequence[IndexedImage]) -> list[UpsertOutcome]:
        """Insert or replace by embedding id; the same record twice changes nothing the second time."""
        if not images:
            return []
        vectors = normalised_rows(np.stack([image.vector for image in images]), self.policy.dim)
        with self._write_mutex:
            outcomes: list[UpsertOutcome] = []
            latest: dict[str, int] = {}  # a batch holding one embedding twice keeps the last
            for position, image in enumerate(images):
                latest[image.embedding_id] = position
            removals: list[int] = []
            additions: list[int] = []
            staged: dict[str, _Entry] = {}
            for position, image in enumerate(images):
                digest = _digest(vectors[position])
                current = staged.get(image.embedding_id) or self._entries.get(image.embedding_id)
                if current and current.digest == digest and current.individual_id == image.individual_id:
                    outcomes.append("unchanged")
                    staged[image.embedding_id] = _Entry(
                        current.internal_id, current.individual_id, max(current.seq, image.seq), digest
                    )
                    continue
                outcomes.append("updated" if current else "inserted")
                if latest[image.embedding_id] != position:
                    continue  # superseded later in this batch
                internal_id = current.internal_id if current else self._allocate_id()
                if current and image.embedding_id in self._entries:
                    removals.append(internal_id)
                additions.append(position)
                staged[image.embedding_id] = _Entry(internal_id, image.individual_id, image.seq, digest)
            self._apply(staged, removals, [(images[p], vectors[p]) for p in additions])
            self._reindex_if_due()
        return outcomes

    def remove_many(self, embedding_ids: Sequence[str]) -> list[str]:
        """Remove by embedding id; returns those that were present (removing twice is harmless)."""
        with self._write_mutex:
            present = [e for e in dict.fromkeys(embedding_ids) if e in self._entries]
            if present:
                internal_ids = np.asarray([self._entries[e].internal_id for e in present], dtype=np.int64)
                with self._rw.writing():
                    self._faiss.remove_ids(faiss.IDSelectorArray(internal_ids))
                    for embedding_id, internal_id in zip(present, internal_ids.tolist()):
                        self._count_out(self._entries.pop(embedding_id).individual_id, internal_id)
                        del self._by_internal[internal_id]
                self._refresh_searchable()
                self._reindex_if_due()
            return present

    def _allocate_id(self) -> int:
        self._next_internal_id += 1
        return self._next_internal_id - 1

    def _apply(
        self, staged: dict[str, _Entry], removals: list[int], additions: list[tuple[IndexedImage, np.ndarray]]
    ) -> None:
        with self._rw.writing():
            if removals:
                self._faiss.remove_ids(faiss.IDSelectorArray(np.asarray(removals, dtype=np.int64)))
            if additions:
                ids = np.asarray(
                    [staged[image.embedding_id].internal_id for image, _ in additions], dtype=np.int64
                )
                self._faiss.add_with_ids(np.stack([vector for _, vector in additions]), ids)
            for embedding_id, entry in staged.items():
                previous = self._entries.get(embedding_id)
                if previous is not None:
                    self._count_out(previous.individual_id, previous.internal_id)
                self._images_per_individual[entry.individual_id] += 1
                self._internal_ids_of[entry.individual_id].add(entry.internal_id)
                self._entries[embedding_id] = entry
                self._by_internal[entry.internal_id] = (embedding_id, entry.individual_id)
        if removals or additions:
            self._refresh_searchable()

    def _count_out(self, individual_id: str, internal_id: int) -> None:
        self._images_per_individual[individual_id] -= 1
        self._internal_ids_of[individual_id].discard(internal_id)
        if self._images_per_individual[individual_id] <= 0:
            del self._images_per_individual[individual_id]
            self._internal_ids_of.pop(individual_id, None)

    def _refresh_searchable(self) -> None:
        if self.placement.device == "gpu":
            fresh = self.placement.searchable(self._faiss)  # copied aside, then swapped
            with self._rw.writing():
                self._searchable = fresh
        else:
            self._searchable = self._faiss

    # -- index kind ----------------------------------------------------------------------------

    def _reindex_if_due(self) -> None:
        size = len(self._entries)
        wanted = self.policy.kind_for(size, self.kind)
        grown = (
            wanted == "ivf"
            and self.kind == "ivf"
            and size > self.policy.ivf_retrain_growth * self._trained_size
        )
        if wanted == self.kind and not grown:
            return
        ids, vectors = self._export()
        if wanted == "ivf":
            fresh: faiss.Index = _new_ivf(vectors, ids, self.policy)
            self._trained_size = size
        else:
            fresh = _new_flat(self.policy.dim)
            fresh.add_with_ids(vectors, ids)
        searchable = self.placement.searchable(fresh)
        with self._rw.writing():
            self._faiss, self._searchable = fresh, searchable
        log.info("index rebuilt", extra={"fields": {**self.key.model_dump(), "kind": wanted, "size": size}})

    def _export(self) -> tuple[np.ndarray, np.ndarray]:
        """Internal ids and vectors of everything indexed (held by the writer, so stable)."""
        ids = np.fromiter(
            (e.internal_id for e in self._entries.values()), dtype=np.int64, count=len(self._entries)
        )
        if self.kind == "flat":
            stored_ids = faiss.vector_to_array(self._faiss.id_map)
            vectors = self._faiss.index.reconstruct_n(0, self._faiss.ntotal)
            return stored_ids.astype(np.int64), vectors
        return ids, self._faiss.reconstruct_batch(ids)

    # -- snapshots -----------------------------------------------------------------------------

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Everything needed to restore this index, as plain arrays (no pickles)."""
        with self._write_mutex, self._rw.reading():
            entries = list(self._entries.items())
            return {
                "faiss": faiss.serialize_index(self._faiss),
                "embedding_ids": np.asarray([e for e, _ in entries], dtype=np.str_),
                "individual_ids": np.asarray([x.individual_id for _, x in entries], dtype=np.str_),
                "internal_ids": np.asarray([x.internal_id for _, x in entries], dtype=np.int64),
                "seqs": np.asarray([x.seq for _, x in entries], dtype=np.int64),
                "digests": np.frombuffer(b"".join(x.digest for _, x in entries), dtype=np.uint64),
                "counters": np.asarray([self._next_internal_id, self._trained_size], dtype=np.int64),
            }

    @classmethod
    def from_arrays(
        cls, key: IndexKey, arrays: dict[str, np.ndarray], policy: IndexPolicy, placement: Placement
    ) -> VectorIndex:
        index = cls(key, policy, placement)
        restored = faiss.deserialize_index(np.asarray(arrays["faiss"], dtype=np.uint8))
        if isinstance(restored, faiss.IndexIVF):  # deserialize_index returns the concrete class already
            restored.nprobe = policy.nprobe_for(restored.nlist)  # the current setting, not the snapshot's
        index._faiss = restored
        digests = np.asarray(arrays["digests"], dtype=np.uint64).tobytes()
        for position, (embedding_id, individual_id, internal_id, seq) in enumerate(
            zip(
                arrays["embedding_ids"].tolist(),
                arrays["individual_ids"].tolist(),
                arrays["internal_ids"].tolist(),
                arrays["seqs"].tolist(),
            )
        ):
            index._entries[embedding_id] = _Entry(
                internal_id, individual_id, seq, digests[8 * position : 8 * position + 8]
            )
            index._by_internal[internal_id] = (embedding_id, individual_id)
            index._images_per_individual[individual_id] += 1
            index._internal_ids_of[individual_id].add(internal_id)
        index._next_internal_id, index._trained_size = (int(v) for v in arrays["counters"])
        if restored.ntotal != len(index._entries):
            raise ValueError(
                f"snapshot of {key} holds {restored.ntotal} vectors for {len(index._entries)} entries"
            )
        index._searchable = placement.searchable(restored)
        with index._write_mutex:
            index._reindex_if_due()  # the settings may have changed since the snapshot
        return index
