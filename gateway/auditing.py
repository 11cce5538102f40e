"""Write audit events in the caller's transaction (privacy contract, line 3)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from audit import Event, SqlAuditStore


def record(session: Session, store: SqlAuditStore, event: Event) -> int:
    """Append ``event`` inside ``session``'s open transaction; it commits with the action."""
    return store.append(session.connection(), event)
