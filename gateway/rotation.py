"""Key rotation: re-wrap every dataset key under the current key-encryption key.

Blobs are never re-encrypted: only the small wrapped scope keys change. With the local
keyring a new KEK is made first (the old one becomes decrypt-only), every scope key is
re-wrapped, and then the old KEK's material is destroyed: anything still wrapped by it
(a rolled-back row, an old database backup) no longer opens. With KMS, point
GATEWAY_KMS_KEY_ID at the new key, run the same command, then schedule the old key's
deletion in KMS.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from audit import Event
from gateway.auditing import record
from gateway.db.models import ScopeKey
from gateway.runtime import Runtime

_PROBE_CONTEXT = b"gateway/probe/v1"


def current_kek(runtime: Runtime) -> str:
    """The id the provider wraps new keys under (asked, not assumed: KMS resolves aliases)."""
    return runtime.keys.wrap(bytes(32), _PROBE_CONTEXT).key_id


def rotate_keys(runtime: Runtime, session: Session) -> dict[str, str]:
    """Rotate (local keyring) and re-wrap; records ``admin:key:rotated``. Caller commits."""
    rotate = getattr(runtime.keys, "rotate", None)
    if callable(rotate):
        rotate()
    kek = current_kek(runtime)
    count = runtime.scope_keys.rewrap(session, kek)
    session.flush()
    retired = _destroy_unused(runtime, session, kek)
    refs = {"kek": kek, "rewrapped": str(count), "retired": str(len(retired))}
    record(session, runtime.audit, Event(action="admin:key:rotated", actor_role="system",
                                         object_type="key", object_id=kek[-64:], refs=refs))
    return refs


def _destroy_unused(runtime: Runtime, session: Session, current: str) -> list[str]:
    """Destroy the local keyring's retired KEKs that no live scope key depends on."""
    key_ids = getattr(runtime.keys, "key_ids", None)
    destroy = getattr(runtime.keys, "destroy", None)
    if not callable(key_ids) or not callable(destroy):
        return []  # KMS: the old key's deletion is scheduled in KMS itself
    in_use = set(session.scalars(select(ScopeKey.kek_id).where(
        ScopeKey.destroyed_at.is_(None))).all())
    retired = [k for k, state in key_ids().items()
               if state == "retired" and k != current and k not in in_use]
    for key_id in retired:
        destroy(key_id)
    return retired
