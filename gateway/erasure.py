"""Erasure by crypto-shredding: destroy a dataset's key, then its bytes.

Destroying the scope key is what makes the data unrecoverable, including any copy of a
blob in a backup: the bytes are deleted too, but that is housekeeping. The audit event
is the erasure certificate: which dataset, which key, how many objects, and a hash over
their ids, committed in the same transaction as the key's destruction.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from gateway.db.models import Dataset, Item, SealedBlob, utcnow
from gateway.errors import Gone
from gateway.runtime import Runtime
from gateway.sealing import DATASET, mark_destroyed


def erase_dataset(runtime: Runtime, session: Session,
                  dataset: Dataset) -> tuple[dict[str, str], list[str]]:
    """Shred ``dataset`` in ``session``; the caller records the certificate and commits.

    Returns the certificate (audit event refs) and the blob keys to delete after commit.
    """
    keys = runtime.scope_keys.destroy(session, DATASET, dataset.id)
    if not keys:
        raise Gone("the dataset was already erased", reason="already_erased")
    blobs = session.scalars(select(SealedBlob).where(
        SealedBlob.dataset_id == dataset.id, SealedBlob.state != "destroyed")).all()
    blob_keys = [b.blob_key for b in blobs if b.state == "stored"]
    ids = sorted(b.id for b in blobs)
    for blob in blobs:
        mark_destroyed(blob)
    session.execute(update(Item).where(Item.dataset_id == dataset.id)
                    .values(status="erased", original_id=None, derivative_id=None,
                            report_id=None, mapping_id=None, updated_at=utcnow()))
    dataset.erased_at = utcnow()
    certificate = {
        "scope_key": keys[0].id,
        "kek": keys[0].kek_id,
        "objects": str(len(ids)),
        "objects_sha256": hashlib.sha256("\n".join(ids).encode()).hexdigest(),
    }
    return certificate, blob_keys


def delete_bytes(runtime: Runtime, blob_keys: list[str]) -> None:
    """After the commit: remove the (already unreadable) bytes; orphans are collected later."""
    for key in blob_keys:
        try:
            runtime.store.delete(key)
        except Exception:  # noqa: BLE001, S112 - the key is gone; the collector retries
            continue

