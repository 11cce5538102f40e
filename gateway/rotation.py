"""Key rotation: re-wrap every dataset key under the current key-encryption key.

Blobs are never re-encrypted: only the small wrapped scope keys change. With the local
keyring a new KEK is made first and the old one retired (it still unwraps, never wraps);
with KMS, point GATEWAY_KMS_KEY_ID at the new key and run the same command.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from audit import Event
from gateway.auditing import record
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
    refs = {"kek": kek, "rewrapped": str(count)}
    record(session, runtime.audit, Event(action="admin:key:rotated", actor_role="system",
                                         object_type="key", object_id=kek[-64:], refs=refs))
    return refs
