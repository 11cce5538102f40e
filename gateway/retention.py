"""Retention of sealed originals: keep, discard after processing, or expire after N days.

A purge marks the original destroyed and records ``system:original:purged`` in the same
transaction; the bytes are deleted after the commit (the orphan collector retries any
that a crash leaves behind).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from audit import Event
from gateway.auditing import record
from gateway.db.models import Item, SealedBlob, utcnow
from gateway.erasure import delete_bytes
from gateway.runtime import Runtime
from gateway.sealing import mark_destroyed

FINAL = ("ready", "quarantined")


def purge_original(runtime: Runtime, session: Session, item: Item, why: str) -> str | None:
    """Destroy ``item``'s original in ``session`` (caller commits); returns its blob key."""
    blob = session.get(SealedBlob, item.original_id) if item.original_id else None
    if blob is None or blob.state != "stored":
        return None
    key = blob.blob_key
    mark_destroyed(blob)
    record(session, runtime.audit, Event(
        action="system:original:purged", actor_role="system", object_type="item",
        object_id=item.id, dataset_id=item.dataset_id, content_sha256=blob.sha256,
        reason=why, refs={"original": blob.id},
    ))
    return key


def expire_originals(runtime: Runtime, now: datetime | None = None) -> int:
    """Purge originals older than the policy's ``expire_after_days``; returns how many."""
    retention = runtime.policy.retention
    if retention.originals != "expire" or retention.expire_after_days is None:
        return 0
    cutoff = (now or utcnow()) - timedelta(days=retention.expire_after_days)
    with runtime.session() as session:
        items = session.scalars(
            select(Item).join(SealedBlob, SealedBlob.id == Item.original_id)
            .where(SealedBlob.state == "stored", SealedBlob.created_at < cutoff,
                   Item.status.in_(FINAL))
        ).all()
        keys = [k for item in items if (k := purge_original(runtime, session, item, "expired"))]
        session.commit()
    delete_bytes(runtime, keys)
    return len(keys)
