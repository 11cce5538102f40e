"""SQL storage of the audit log, written in the caller's transaction.

``append`` takes the caller's open connection, so an event commits or rolls back
together with the state change it records (privacy contract, line 3).

Positions come from a one-row head table bumped with ``UPDATE ... RETURNING``: the
row lock serializes writers on PostgreSQL and the write lock does on SQLite, and a
rolled-back transaction rolls its increment back too, so positions have no forks
and no gaps under concurrent writers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    select,
    update,
)

from audit.events import Event
from audit.merkle import leaf_hash

audit_metadata = MetaData()

audit_head = Table(
    "audit_head",
    audit_metadata,
    Column("id", Integer, primary_key=True),
    Column("size", BigInteger, nullable=False),
)

audit_events = Table(
    "audit_events",
    audit_metadata,
    Column("position", BigInteger, primary_key=True, autoincrement=False),
    Column("event_id", String(32), nullable=False, unique=True),
    Column("time", String(32), nullable=False),
    Column("action", String(64), nullable=False),
    Column("outcome", String(8), nullable=False),
    Column("actor_id", String(64)),
    Column("object_id", String(64)),
    Column("dataset_id", String(64)),
    Column("entry", Text, nullable=False),  # the canonical bytes the leaf hash covers
    Column("leaf_hash", String(64), nullable=False),
    Index("ix_audit_events_object_id", "object_id"),
    Index("ix_audit_events_dataset_id", "dataset_id"),
    Index("ix_audit_events_actor_id", "actor_id"),
    Index("ix_audit_events_action", "action"),
    Index("ix_audit_events_time", "time"),
)


@dataclass(frozen=True)
class AuditRecord:
    position: int
    event: Event
    leaf_hash: str

    def as_dict(self) -> dict[str, object]:
        body: dict[str, object] = {"position": self.position, "leaf_hash": self.leaf_hash}
        body.update({k: v for k, v in vars(self.event).items() if v is not None})
        return body


@dataclass(frozen=True)
class AuditQuery:
    actor_id: str | None = None
    action: str | None = None
    object_id: str | None = None
    dataset_id: str | None = None
    outcome: str | None = None
    since: str | None = None  # ISO 8601, inclusive
    until: str | None = None  # ISO 8601, exclusive
    after: int = -1  # cursor: return positions greater than this
    limit: int = 100


class SqlAuditStore:
    """The audit log in the application's database (SQLite or PostgreSQL)."""

    def initialize(self, conn: Connection) -> None:
        """Create the head row if missing (migrations call this once)."""
        if conn.execute(select(audit_head.c.size).where(audit_head.c.id == 1)).first() is None:
            conn.execute(audit_head.insert().values(id=1, size=0))

    def append(self, conn: Connection, event: Event) -> int:
        """Append ``event`` in the caller's transaction and return its position."""
        size = conn.execute(
            update(audit_head)
            .where(audit_head.c.id == 1)
            .values(size=audit_head.c.size + 1)
            .returning(audit_head.c.size)
        ).scalar_one()
        position = size - 1
        entry = event.canonical()
        conn.execute(
            audit_events.insert().values(
                position=position,
                event_id=event.event_id,
                time=event.time,
                action=event.action,
                outcome=event.outcome,
                actor_id=event.actor_id,
                object_id=event.object_id,
                dataset_id=event.dataset_id,
                entry=entry.decode("ascii"),
                leaf_hash=leaf_hash(entry).hex(),
            )
        )
        return position

    def size(self, conn: Connection) -> int:
        return int(conn.execute(select(audit_head.c.size).where(audit_head.c.id == 1)).scalar_one())

    def query(self, conn: Connection, q: AuditQuery) -> Sequence[AuditRecord]:
        t = audit_events
        stmt = select(t.c.position, t.c.entry, t.c.leaf_hash).where(t.c.position > q.after)
        if q.actor_id is not None:
            stmt = stmt.where(t.c.actor_id == q.actor_id)
        if q.action is not None:
            stmt = stmt.where(t.c.action == q.action)
        if q.object_id is not None:
            stmt = stmt.where(t.c.object_id == q.object_id)
        if q.dataset_id is not None:
            stmt = stmt.where(t.c.dataset_id == q.dataset_id)
        if q.outcome is not None:
            stmt = stmt.where(t.c.outcome == q.outcome)
        if q.since is not None:
            stmt = stmt.where(t.c.time >= q.since)
        if q.until is not None:
            stmt = stmt.where(t.c.time < q.until)
        rows = conn.execute(stmt.order_by(t.c.position).limit(q.limit)).all()
        return [
            AuditRecord(row.position, Event.from_canonical(row.entry.encode()), row.leaf_hash)
            for row in rows
        ]
