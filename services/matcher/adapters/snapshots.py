"""Snapshots of a shard's indexes, and organisations' threshold overrides, in the object store.

Layout (keys under ``matcher/``)::

    matcher/<shard>/manifest.json                 the current snapshot: applied_seq + its objects
    matcher/<shard>/snapshots/<seq>-<token>/<n>.npz   one per index (faiss.serialize_index + id maps)
    matcher/thresholds/<org>.json                 an organisation's threshold overrides (all shards)

A snapshot's index objects are written first and the manifest last, in one put: a matcher killed
half-way through leaves the previous manifest, still whole, in place. Objects of older snapshots
are deleted once the new manifest is written. Arrays are stored with ``allow_pickle=False``.
"""

from __future__ import annotations

import io
import json
import logging
import secrets
from datetime import UTC, datetime
from urllib.parse import quote

import numpy as np

from finprint.objectstore import ObjectNotFound, ObjectStore, ObjectStoreError
from finprint.schemas.embeddings import IndexKey
from finprint.schemas.matcher import OrgThresholds
from services.matcher.domain.gallery import GallerySnapshot

log = logging.getLogger("finprint.matcher.snapshots")

PREFIX = "matcher"
FORMAT = 1
THRESHOLDS_PREFIX = f"{PREFIX}/thresholds/"


class SnapshotStore:
    def __init__(self, store: ObjectStore, shard_name: str) -> None:
        self.store = store
        self.shard_prefix = f"{PREFIX}/{shard_name}/"
        self.manifest_key = self.shard_prefix + "manifest.json"

    def save(self, snapshot: GallerySnapshot) -> str:
        """Write the snapshot; a newer one already in place (another replica's) is kept instead."""
        current = self._manifest()
        if current is not None and int(current["applied_seq"]) > snapshot.applied_seq:
            return self.manifest_key
        folder = f"{self.shard_prefix}snapshots/{snapshot.applied_seq:020d}-{secrets.token_hex(4)}/"
        entries = []
        try:
            for number, (key, arrays) in enumerate(snapshot.indexes):
                object_key = f"{folder}{number}.npz"
                self.store.put(object_key, _to_npz(arrays))
                entries.append({"key": key.model_dump(), "object": object_key, "size": len(arrays["seqs"])})
            manifest = {
                "format": FORMAT,
                "applied_seq": snapshot.applied_seq,
                "created_at": datetime.now(UTC).isoformat(),
                "indexes": entries,
            }
            self.store.put(self.manifest_key, json.dumps(manifest).encode(), "application/json")
        except ObjectStoreError:
            # The previous manifest is still whole; what this attempt wrote would only fill the disk
            # (a full disk fails every round: each would leave its objects behind).
            self._delete_folder(folder, [entry["object"] for entry in entries])
            raise
        self._delete_older_than(folder)
        return self.manifest_key

    def _delete_folder(self, folder: str, written: list[str]) -> None:
        try:
            for key in {*written, *self.store.list(folder)}:
                self.store.delete(key)
        except ObjectStoreError as exc:
            log.warning("objects of a failed snapshot left behind", extra={"fields": {"folder": folder,
                                                                                       "reason": str(exc)}})

    def load(self) -> GallerySnapshot | None:
        """The last snapshot, or None when this shard has none (or one of another format)."""
        manifest = self._manifest()
        if manifest is None:
            return None
        if manifest.get("format") != FORMAT:
            log.warning(
                "snapshot of another format ignored", extra={"fields": {"format": manifest.get("format")}}
            )
            return None
        indexes = [
            (IndexKey.model_validate(entry["key"]), _from_npz(self.store.get(entry["object"])))
            for entry in manifest["indexes"]
        ]
        return GallerySnapshot(applied_seq=int(manifest["applied_seq"]), indexes=indexes)

    def _manifest(self) -> dict | None:
        try:
            return json.loads(self.store.get(self.manifest_key))
        except ObjectNotFound:
            return None

    def _delete_older_than(self, current_folder: str) -> None:
        for key in self.store.list(self.shard_prefix + "snapshots/"):
            if not key.startswith(current_folder):
                self.store.delete(key)

    # -- threshold overrides -------------------------------------------------------------------

    def save_thresholds(self, overrides: OrgThresholds) -> None:
        self.store.put(
            _thresholds_key(overrides.org_id), overrides.model_dump_json().encode(), "application/json"
        )

    def load_thresholds(self) -> dict[str, OrgThresholds]:
        overrides = {}
        for key in self.store.list(THRESHOLDS_PREFIX):
            try:
                value = OrgThresholds.model_validate_json(self.store.get(key))
            except ObjectNotFound:
                continue  # deleted between the listing and the read
            overrides[value.org_id] = value
        return overrides


def _thresholds_key(org_id: str) -> str:
    return THRESHOLDS_PREFIX + quote(org_id, safe="") + ".json"


def _to_npz(arrays: dict[str, np.ndarray | bytes]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **{name: np.asarray(value) for name, value in arrays.items()})
    return buffer.getvalue()


def _from_npz(data: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}
