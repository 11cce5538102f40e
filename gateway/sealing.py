"""Sealed blobs as database rows: the bridge between the vault, the key hierarchy and models.

Writing a blob is recorded before it starts (state ``pending``, committed on its own), and
turned ``stored`` in the transaction of the action that uses it. A crash in between
leaves a pending row that :func:`collect_orphans` finds and removes with its blob, so
nothing half-written is ever referenced, and nothing stays behind unaccounted for.

The row id is the object id bound into the associated data, so a row pointing at another
row's blob (swap, move, rollback) fails to open.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import timedelta

import structlog
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from audit import Event
from gateway.auditing import record
from gateway.db.models import SealedBlob, new_id, utcnow
from gateway.errors import Gone
from gateway.runtime import Runtime
from gateway.storage.vault import SealContext, SealedObject, Vault, new_blob_key

DATASET = "dataset"
log = structlog.get_logger("gateway.sealing")


def blob_context(dataset_id: str, kind: str, version: int = 1) -> SealContext:
    return SealContext(object_id=new_id(), dataset_id=dataset_id, kind=kind, version=version)


def _context(blob: SealedBlob) -> SealContext:
    return SealContext(
        object_id=blob.id, dataset_id=blob.dataset_id, kind=blob.kind, version=blob.version
    )


def _sealed(blob: SealedBlob) -> SealedObject:
    return SealedObject(blob_key=blob.blob_key, key_id=blob.key_id,
                        wrapped_key=blob.wrapped_key, size=blob.size, sha256=blob.sha256)


def seal_blob(runtime: Runtime, chunks: Iterable[bytes], ctx: SealContext) -> SealedBlob:
    """Seal ``chunks`` into the store under the dataset's key.

    Returns a detached row with the final values; the caller makes it ``stored`` with
    :func:`keep_blob` in the transaction that references it, or :func:`discard_blob`.
    """
    wrapper = runtime.scope_keys.for_scope(DATASET, ctx.dataset_id)
    pending = SealedBlob(id=ctx.object_id, dataset_id=ctx.dataset_id, kind=ctx.kind,
                         version=ctx.version, store=runtime.store.name,
                         blob_key=new_blob_key(), key_id=wrapper.key_id, wrapped_key=b"",
                         size=0, sha256="", state="pending")
    with runtime.session() as session:
        session.add(pending)
        session.commit()
    try:
        sealed = Vault(runtime.store, wrapper).seal(chunks, ctx, blob_key=pending.blob_key)
    except BaseException:
        discard_blob(runtime, pending)
        raise
    pending.wrapped_key, pending.size, pending.sha256 = (sealed.wrapped_key, sealed.size,
                                                         sealed.sha256)
    pending.state = "stored"
    return pending


def keep_blob(session: Session, blob: SealedBlob) -> SealedBlob:
    """Record the sealed blob as stored, in ``session``'s transaction."""
    return session.merge(blob)


def discard_blob(runtime: Runtime, blob: SealedBlob) -> None:
    """Remove a blob that will not be used: the bytes first, then its record.

    Runs on failure paths, so it never raises: if the store or database is unreachable
    (often the very failure being handled), the pending record stays for the collector.
    """
    try:
        runtime.store.delete(blob.blob_key)
        with runtime.session() as session:
            session.execute(delete(SealedBlob).where(SealedBlob.id == blob.id,
                                                     SealedBlob.state == "pending"))
            session.commit()
    except Exception as exc:  # noqa: BLE001
        log.warning("blob.discard_deferred", blob_id=blob.id, error_type=type(exc).__name__)


def open_blob(runtime: Runtime, blob: SealedBlob, session: Session | None = None
              ) -> Iterator[bytes]:
    """Stream a stored blob's plaintext; ``session``: the caller's open one, if any."""
    if blob.state != "stored":
        raise Gone("this content is no longer kept", reason="destroyed")
    wrapper = runtime.scope_keys.by_id(blob.key_id, session)
    return Vault(runtime.store, wrapper).open(_sealed(blob), _context(blob))


def mark_destroyed(blob: SealedBlob) -> None:
    """Retire a stored blob's record (caller commits, then deletes the bytes)."""
    blob.state = "destroyed"
    blob.destroyed_at = utcnow()
    blob.wrapped_key = b""


def collect_orphans(runtime: Runtime, grace: timedelta = timedelta(hours=1)) -> int:
    """Delete blobs whose writer died: pending longer than ``grace``, or destroyed but present.

    Returns how many blobs were removed.
    """
    cutoff = utcnow() - grace
    with runtime.session() as session:
        rows = session.scalars(select(SealedBlob).where(
            ((SealedBlob.state == "pending") & (SealedBlob.created_at < cutoff))
            | (SealedBlob.state == "destroyed"))).all()
        session.expunge_all()
    removed = 0
    for row in rows:
        if runtime.store.exists(row.blob_key):
            runtime.store.delete(row.blob_key)
            removed += 1
        if row.state == "pending":
            with runtime.session() as session:
                session.execute(delete(SealedBlob).where(SealedBlob.id == row.id,
                                                         SealedBlob.state == "pending"))
                session.commit()
    if removed:
        with runtime.session() as session:
            record(session, runtime.audit, Event(
                action="system:storage:collected", actor_role="system", object_type="blob",
                refs={"removed": str(removed)}))
            session.commit()
    return removed
