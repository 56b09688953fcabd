"""Every index a matcher shard holds, and the rules that keep them equal to the catalogue.

The catalogue's change log is the truth: ``applied_seq`` is the last change this gallery
reflects, and replaying changes after it is idempotent. Writes pushed directly (PUT/DELETE from
the gateway, for immediacy) carry the catalogue sequence number of the change; one that is not
newer than what the gallery already holds is stale and ignored, so a late or repeated push can
never undo a newer change. Deletes pushed ahead of the log leave a tombstone until the log
catches up, so a stale upsert cannot bring the embedding back.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from finprint.schemas.embeddings import EmbeddingChange, EmbeddingRecord, IndexKey, ShardGeneration, decode_vector
from finprint.schemas.matcher import IndexInfo, shard_for
from services.matcher.domain.index import (
    IndexedImage,
    IndexPolicy,
    InvalidVector,
    VectorIndex,
    normalised_rows,
)
from services.matcher.domain.placement import Placement
from services.matcher.domain.ranking import BEST_IMAGE, IndividualScore, IndividualScoring

log = logging.getLogger("finprint.matcher.gallery")

KeyTuple = tuple[str, str, str]
WriteOutcome = Literal[
    "inserted", "updated", "unchanged", "removed", "stale", "not_owned", "deleted", "absent"
]


def key_tuple(key: IndexKey) -> KeyTuple:
    return (key.org_id, key.species_group, key.model_version)


def key_model(key: KeyTuple) -> IndexKey:
    return IndexKey(org_id=key[0], species_group=key[1], model_version=key[2])


class VersionMismatch(Exception):
    """A query embedded by another model version than the one its shard serves: answering it would
    compare embeddings of two models."""

    def __init__(self, key: IndexKey, serving: str, kept: list[str]) -> None:
        super().__init__(f"{key.org_id}:{key.species_group} serves {serving}, not {key.model_version}")
        self.serving = serving
        self.kept = kept


class NotOwned(Exception):
    """The key belongs to another shard; the caller routed with a different shard layout."""

    def __init__(self, org_id: str, species_group: str, owner: int | None) -> None:
        super().__init__(f"({org_id}, {species_group}) is not served by this shard")
        self.owner = owner


@dataclass(frozen=True)
class ShardOwnership:
    """Which (organisation, species group) keys this shard serves: an explicit list, or a hash slice."""

    shard_index: int = 0
    shard_count: int = 1
    explicit_keys: frozenset[tuple[str, str]] | None = None

    def owns(self, org_id: str, species_group: str) -> bool:
        if self.explicit_keys is not None:
            return (org_id, species_group) in self.explicit_keys
        return shard_for(org_id, species_group, self.shard_count) == self.shard_index

    def owner_of(self, org_id: str, species_group: str) -> int | None:
        return None if self.explicit_keys is not None else shard_for(org_id, species_group, self.shard_count)

    @property
    def name(self) -> str:
        """Names this shard's snapshots: a different layout must not load another layout's state."""
        if self.explicit_keys is not None:
            listed = "\n".join(sorted(f"{o}\x1f{g}" for o, g in self.explicit_keys))
            return "keys-" + hashlib.blake2b(listed.encode(), digest_size=6).hexdigest()
        return f"shard-{self.shard_index}-of-{self.shard_count}"


@dataclass(frozen=True)
class _Op:
    seq: int | None
    record: EmbeddingRecord | None  # None: delete


@dataclass(frozen=True)
class GallerySnapshot:
    applied_seq: int
    indexes: list[tuple[IndexKey, dict[str, np.ndarray]]]


class Gallery:
    """The shard's indexes. Writes are serialised; searches run concurrently with them."""

    def __init__(self, policy: IndexPolicy, placement: Placement, ownership: ShardOwnership) -> None:
        self.policy = policy
        self.placement = placement
        self.ownership = ownership
        self.applied_seq = 0
        self._indexes: dict[KeyTuple, VectorIndex] = {}
        self._locations: dict[str, KeyTuple] = {}
        self._tombstones: dict[str, int] = {}
        self._generations: dict[tuple[str, str], dict[str, str]] = {}
        """(org, species) -> {state: model version}, from the catalogue's model_generations."""
        self._mutex = threading.RLock()

    # -- reading -------------------------------------------------------------------------------

    def _check_readable(self, key: IndexKey) -> None:
        """The key is this shard's and of the model version it serves (embeddings of two models are never
        compared); raises NotOwned or VersionMismatch."""
        if not self.ownership.owns(key.org_id, key.species_group):
            raise NotOwned(
                key.org_id, key.species_group, self.ownership.owner_of(key.org_id, key.species_group)
            )
        serving = self.serving_version(key.org_id, key.species_group)
        if serving is not None and serving != key.model_version:
            raise VersionMismatch(key, serving, self.kept_versions(key.org_id, key.species_group))

    def search(
        self, key: IndexKey, queries: np.ndarray, k: int, scoring: IndividualScoring = BEST_IMAGE
    ) -> tuple[list[list[IndividualScore]], IndexInfo]:
        self._check_readable(key)
        queries = normalised_rows(queries, self.policy.dim)
        index = self._indexes.get(key_tuple(key))
        if index is None:
            return [[] for _ in range(len(queries))], self._info(key, None)
        return index.search(queries, k, scoring), self._info(key, index)

    def set_generations(self, generations: Sequence[ShardGeneration]) -> None:
        """The catalogue's generations, once every change before them is applied (see ChangePage)."""
        shards: dict[tuple[str, str], dict[str, str]] = {}
        for g in generations:
            if self.ownership.owns(g.org_id, g.species_group):
                shards.setdefault((g.org_id, g.species_group), {})[g.state] = g.model_version
        self._generations = shards

    def serving_version(self, org_id: str, species_group: str) -> str | None:
        """The version a shard answers from: its serving generation, or without one the version of its
        embeddings (the most of them should a shard never upgraded hold two); None for an empty shard."""
        generation = self._generations.get((org_id, species_group), {})
        if "serving" in generation:
            return generation["serving"]
        sizes = {v: index.size for (o, g, v), index in list(self._indexes.items())
                 if o == org_id and g == species_group and index.size}
        return max(sizes, key=lambda v: sizes[v]) if sizes else None

    def kept_versions(self, org_id: str, species_group: str) -> list[str]:
        """The versions a shard keeps embeddings of: serving first, then building and previous. An
        enrolment stores its photo's embedding of each, so none of these indexes falls behind."""
        generation = self._generations.get((org_id, species_group), {})
        serving = self.serving_version(org_id, species_group)
        kept = [serving] if serving else []
        return kept + [generation[s] for s in ("building", "previous") if s in generation and generation[s] not in kept]

    def shard_versions(self) -> dict[str, dict[str, str]]:
        """``org:species`` -> {state: version} of every shard held, for /readyz and GET /v1/model."""
        keys = {(o, g) for o, g, _ in list(self._indexes)} | set(self._generations)
        shards = {}
        for org_id, group in sorted(keys):
            generation = dict(self._generations.get((org_id, group), {}))
            serving = self.serving_version(org_id, group)
            if serving:
                generation["serving"] = serving
            shards[f"{org_id}:{group}"] = generation
        return shards
    def photos(self, key: IndexKey) -> tuple[list[str], list[str], np.ndarray] | None:
        """The key's embeddings (ids, individuals, vectors); None when this shard holds no index for it."""
        self._check_readable(key)
        index = self._indexes.get(key_tuple(key))
        return None if index is None else index.photos()

    def infos(self) -> list[IndexInfo]:
        return [self._info(index.key, index) for index in list(self._indexes.values())]

    def _info(self, key: IndexKey, index: VectorIndex | None) -> IndexInfo:
        return IndexInfo(
            **key.model_dump(),
            size=index.size if index else 0,
            individuals=index.individual_count() if index else 0,
            kind=index.kind if index else "flat",
            device=self.placement.device,
        )

    @property
    def size(self) -> int:
        return sum(index.size for index in list(self._indexes.values()))

    def members(self) -> tuple[int, dict[KeyTuple, tuple[list[tuple[str, str]], int]]]:
        """``applied_seq`` and, per index, its (embedding id, individual id) pairs and FAISS's own
        vector count, taken together (no write runs meanwhile): what reconciliation compares."""
        with self._mutex:
            return self.applied_seq, {
                key: index.members() for key, index in self._indexes.items() if index.size
            }

    # -- writing -------------------------------------------------------------------------------

    def upsert(self, records: Sequence[EmbeddingRecord]) -> list[WriteOutcome]:
        """Direct writes: all records are validated before any is applied (a bad one changes nothing)."""
        for record in records:
            _decoded(record, self.policy.dim)
        ops = [(record.embedding_id, _Op(record.seq, record)) for record in records]
        outcomes = self._apply(ops, direct=True)
        return [outcomes[record.embedding_id] for record in records]

    def delete(self, embedding_id: str, seq: int | None) -> WriteOutcome:
        return self._apply([(embedding_id, _Op(seq, None))], direct=True)[embedding_id]

    def load_records(self, records: Sequence[EmbeddingRecord]) -> int:
        """A page of the catalogue's records (full rebuild); returns how many were skipped as invalid."""
        valid = [r for r in records if _is_valid(r, self.policy.dim)]
        self._apply([(r.embedding_id, _Op(r.seq, r)) for r in valid], direct=False)
        return len(records) - len(valid)

    def replay(self, changes: Sequence[EmbeddingChange]) -> int:
        """Apply the log's changes after ``applied_seq`` in order; returns how many were new."""
        with self._mutex:
            fresh = sorted((c for c in changes if c.seq > self.applied_seq), key=lambda c: c.seq)
            ops = [
                (c.embedding_id, _Op(c.seq, c.record if c.op == "upsert" else None))
                for c in fresh
                if c.op == "delete" or (c.record is not None and _is_valid(c.record, self.policy.dim))
            ]
            self._apply(ops, direct=False)
            if fresh:
                self.advance(fresh[-1].seq)
            return len(fresh)

    def advance(self, seq: int) -> None:
        """Record that the gallery reflects the log up to ``seq``; older tombstones are no longer needed."""
        with self._mutex:
            self.applied_seq = max(self.applied_seq, seq)
            self._tombstones = {e: s for e, s in self._tombstones.items() if s > self.applied_seq}

    def _apply(self, ops: Sequence[tuple[str, _Op]], *, direct: bool) -> dict[str, WriteOutcome]:
        # Changes to different embeddings commute, and each upsert carries the whole record, so the
        # last op per embedding is all that matters: apply those as one batch per index.
        last: dict[str, _Op] = {}
        for embedding_id, op in ops:
            last[embedding_id] = op
        with self._mutex:
            outcomes: dict[str, WriteOutcome] = {}
            removals: dict[KeyTuple, list[str]] = defaultdict(list)
            upserts: dict[KeyTuple, list[tuple[str, IndexedImage]]] = defaultdict(list)
            for embedding_id, op in last.items():
                if self._is_stale(embedding_id, op, direct):
                    outcomes[embedding_id] = "stale"
                    continue
                outcome = self._plan(embedding_id, op, removals, upserts)
                if outcome is not None:
                    outcomes[embedding_id] = outcome
            for key, embedding_ids in removals.items():
                self._indexes[key].remove_many(embedding_ids)
            for key, planned in upserts.items():
                index = self._index_for(key)
                results = index.upsert_many([image for _, image in planned])
                for (embedding_id, _), result in zip(planned, results):
                    outcomes[embedding_id] = outcomes.get(embedding_id) or result
                    self._locations[embedding_id] = key
            return outcomes

    def _is_stale(self, embedding_id: str, op: _Op, direct: bool) -> bool:
        if op.seq is None:
            return False  # an unconditional delete
        if direct and op.seq <= self.applied_seq:
            return True  # the log already brought this change or a newer one
        tombstone = self._tombstones.get(embedding_id)
        if tombstone is not None and op.record is not None and op.seq <= tombstone:
            return True
        location = self._locations.get(embedding_id)
        stored = self._indexes[location].entry_seq(embedding_id) if location else None
        return stored is not None and op.seq < stored

    def _plan(
        self,
        embedding_id: str,
        op: _Op,
        removals: dict[KeyTuple, list[str]],
        upserts: dict[KeyTuple, list[tuple[str, IndexedImage]]],
    ) -> WriteOutcome | None:
        """Stage the op; returns its outcome, or None when the index's upsert will tell."""
        location = self._locations.get(embedding_id)
        record = op.record
        if record is None:
            if op.seq is not None and op.seq > self.applied_seq:
                self._tombstones[embedding_id] = op.seq
            if location is None:
                return "absent"
            self._forget(embedding_id, location, removals)
            return "deleted"
        self._tombstones.pop(embedding_id, None)
        target = key_tuple(record)
        moved_from = location if location is not None and location != target else None
        if record.individual_id is None or not self.ownership.owns(record.org_id, record.species_group):
            # An unidentified crop is not searchable; a key of another shard is not ours to hold.
            if location is not None:
                self._forget(embedding_id, location, removals)
            return "removed" if record.individual_id is None else "not_owned"
        if moved_from is not None:
            self._forget(embedding_id, moved_from, removals)
        image = IndexedImage(
            embedding_id, record.individual_id, _decoded(record, self.policy.dim), record.seq
        )
        upserts[target].append((embedding_id, image))
        return "updated" if moved_from is not None else None

    def _forget(self, embedding_id: str, location: KeyTuple, removals: dict[KeyTuple, list[str]]) -> None:
        removals[location].append(embedding_id)
        self._locations.pop(embedding_id, None)

    def _index_for(self, key: KeyTuple) -> VectorIndex:
        index = self._indexes.get(key)
        if index is None:
            index = self._indexes[key] = VectorIndex(key_model(key), self.policy, self.placement)
        return index

    # -- snapshots -----------------------------------------------------------------------------

    def export(self) -> GallerySnapshot:
        """A consistent copy: no write runs while it is taken, so it reflects exactly ``applied_seq``.

        Direct writes newer than ``applied_seq`` may be in it; replaying the log after
        ``applied_seq`` re-applies them idempotently.
        """
        with self._mutex:
            return GallerySnapshot(
                self.applied_seq,
                [(index.key, index.to_arrays()) for index in self._indexes.values() if index.size],
            )

    @classmethod
    def restore(
        cls, snapshot: GallerySnapshot, policy: IndexPolicy, placement: Placement, ownership: ShardOwnership
    ) -> Gallery:
        gallery = cls(policy, placement, ownership)
        for key, arrays in snapshot.indexes:
            if not ownership.owns(key.org_id, key.species_group):
                continue
            index = VectorIndex.from_arrays(key, arrays, policy, placement)
            gallery._indexes[key_tuple(key)] = index
            for embedding_id in index.embedding_ids():
                gallery._locations[embedding_id] = key_tuple(key)
        gallery.applied_seq = snapshot.applied_seq
        return gallery


def _decoded(record: EmbeddingRecord, dim: int) -> np.ndarray:
    try:
        vector = decode_vector(record.vector)
    except ValueError as exc:  # binascii.Error is a ValueError
        raise InvalidVector(
            f"embedding {record.embedding_id}: vector is not base64 float32 ({exc})"
        ) from None
    try:
        return normalised_rows(vector, dim)[0]
    except InvalidVector as exc:
        raise InvalidVector(f"embedding {record.embedding_id}: {exc}") from None


def _is_valid(record: EmbeddingRecord, dim: int) -> bool:
    """Records from the catalogue that cannot be indexed are logged and skipped, not fatal to a sync."""
    if record.individual_id is None:
        return True
    try:
        _decoded(record, dim)
    except InvalidVector as exc:
        log.error(
            "catalogue record skipped",
            extra={"fields": {"embedding_id": record.embedding_id, "reason": str(exc)}},
        )
        return False
    return True
