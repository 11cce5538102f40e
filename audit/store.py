"""SQL storage of the audit log: written in the caller's transaction, sequenced after.

Two steps, as transparency logs do it (Trillian's sequencer, Tessera's integrator):

1. ``append`` inserts the event in the transaction of the action it records, so the two
   commit or roll back together (privacy contract, line 3). It takes no lock: concurrent
   writers commit in parallel and share the database's fsyncs.
2. ``sequence`` (run continuously by the application, and before every read) takes the
   one lock on the head row, gives the committed events it finds the next dense
   positions, extends the Merkle frontier and commits once for the whole batch. Positions
   therefore have no forks and no gaps, whatever the number of writers.

A trigger on ``audit_events`` queues every new row in ``audit_pending`` (installed by
the gateway's migrations with the rest of the schema), so writers pay one INSERT.
``audit_events`` and ``audit_log`` are insert-only (database triggers refuse UPDATE,
DELETE and TRUNCATE; see the gateway's migrations). That makes the log tamper-*evident*
with the Merkle tree and signed checkpoints, not tamper-proof: a database superuser can
still disable triggers, which verification against a checkpoint then exposes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    insert,
    select,
    update,
)

from audit.events import Event
from audit.merkle import RootBuilder, leaf_hash

audit_metadata = MetaData()

_SEQ = BigInteger().with_variant(Integer, "sqlite")  # SQLite autoincrements INTEGER only

audit_head = Table(
    "audit_head",
    audit_metadata,
    Column("id", Integer, primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("frontier", Text, nullable=False, server_default="[]"),  # RootBuilder.state()
)

audit_events = Table(
    "audit_events",
    audit_metadata,
    Column("seq", _SEQ, primary_key=True, autoincrement=True),
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

audit_pending = Table(  # the sequencer's queue; rows leave it when they get a position
    "audit_pending",
    audit_metadata,
    Column("seq", _SEQ, primary_key=True, autoincrement=False),
)

audit_log = Table(
    "audit_log",
    audit_metadata,
    Column("position", BigInteger, primary_key=True, autoincrement=False),
    Column("seq", _SEQ, ForeignKey("audit_events.seq"), nullable=False, unique=True),
    Column("leaf_hash", String(64), nullable=False),
)


_COLUMNS = ("event_id", "time", "action", "outcome", "actor_id", "object_id", "dataset_id",
            "entry", "leaf_hash")
_INSERT = f"INSERT INTO audit_events ({', '.join(_COLUMNS)}) VALUES ({{}})"  # noqa: S608 - constant column names
_INSERT_QMARK = _INSERT.format(", ".join("?" * len(_COLUMNS)))
_INSERT_FORMAT = _INSERT.format(", ".join(["%s"] * len(_COLUMNS)))


audit_checkpoints = Table(  # signed tree heads, insert-only like the log
    "audit_checkpoints",
    audit_metadata,
    Column("id", _SEQ, primary_key=True, autoincrement=True),
    Column("size", BigInteger, nullable=False, index=True),
    Column("root", String(64), nullable=False),
    Column("note", Text, nullable=False),
    Column("created_at", String(32), nullable=False),
)


@dataclass(frozen=True)
class AuditRecord:
    position: int
    event: Event
    leaf_hash: str
    entry: str  # the exact canonical text that was hashed

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


@dataclass(frozen=True)
class TreeHead:
    size: int
    root: bytes


class SqlAuditStore:
    """The audit log in the application's database (SQLite or PostgreSQL)."""

    def append(self, conn: Connection, event: Event) -> None:
        """Insert ``event`` in the caller's transaction: one statement, no lock.

        A trigger queues it in ``audit_pending``; :meth:`sequence` gives it its position
        once the transaction has committed.
        """
        entry = event.canonical()
        values = (event.event_id, event.time, event.action, event.outcome, event.actor_id,
                  event.object_id, event.dataset_id, entry.decode("ascii"),
                  leaf_hash(entry).hex())
        # The hottest statement of the service: sent as prepared driver-level SQL, which
        # costs half of what a compiled Core insert does per call (bench/audit.py).
        style = conn.dialect.paramstyle
        if style == "qmark":
            conn.exec_driver_sql(_INSERT_QMARK, values)
        elif style in ("pyformat", "format"):
            conn.exec_driver_sql(_INSERT_FORMAT, values)
        else:
            conn.execute(insert(audit_events).values(dict(zip(_COLUMNS, values, strict=True))))

    def sequence(self, conn: Connection, batch: int = 10_000) -> int:
        """Give committed, unsequenced events the next positions; the caller commits.

        Holds the head row's lock for the batch: one sequencer at a time.
        """
        head = conn.execute(
            select(audit_head.c.size, audit_head.c.frontier)
            .where(audit_head.c.id == 1).with_for_update()
        ).one()
        rows = conn.execute(
            select(audit_events.c.seq, audit_events.c.leaf_hash)
            .join(audit_pending, audit_pending.c.seq == audit_events.c.seq)
            .order_by(audit_events.c.seq).limit(batch)
        ).all()
        if not rows:
            return 0
        size = head.size
        tree = RootBuilder.restore(size, json.loads(head.frontier))
        for row in rows:
            tree.append(bytes.fromhex(row.leaf_hash))
        conn.execute(insert(audit_log), [
            {"position": size + i, "seq": row.seq, "leaf_hash": row.leaf_hash}
            for i, row in enumerate(rows)
        ])
        conn.execute(delete(audit_pending).where(
            audit_pending.c.seq.in_([row.seq for row in rows])))
        conn.execute(update(audit_head).where(audit_head.c.id == 1).values(
            size=size + len(rows),
            frontier=json.dumps(tree.state()),
        ))
        return len(rows)

    def size(self, conn: Connection) -> int:
        return int(conn.execute(select(audit_head.c.size).where(audit_head.c.id == 1))
                   .scalar_one())

    def tree_head(self, conn: Connection) -> TreeHead:
        head = conn.execute(select(audit_head.c.size, audit_head.c.frontier)
                            .where(audit_head.c.id == 1)).one()
        tree = RootBuilder.restore(int(head.size), json.loads(head.frontier))
        return TreeHead(size=tree.size, root=tree.root())

    def leaf_hashes(self, conn: Connection, start: int = 0, stop: int | None = None
                    ) -> list[bytes]:
        stmt = select(audit_log.c.leaf_hash).where(audit_log.c.position >= start)
        if stop is not None:
            stmt = stmt.where(audit_log.c.position < stop)
        return [bytes.fromhex(h) for h in
                conn.execute(stmt.order_by(audit_log.c.position)).scalars()]

    def add_checkpoint(self, conn: Connection, size: int, root: bytes, note: str,
                       created_at: str) -> None:
        conn.execute(insert(audit_checkpoints).values(size=size, root=root.hex(), note=note,
                                                      created_at=created_at))

    def checkpoints(self, conn: Connection, limit: int | None = None) -> list[str]:
        """Signed notes, newest first (all of them unless ``limit``)."""
        stmt = select(audit_checkpoints.c.note).order_by(audit_checkpoints.c.id.desc())
        if limit is not None:
            stmt = stmt.limit(limit)
        return list(conn.execute(stmt).scalars())

    def latest_checkpoint_size(self, conn: Connection) -> int | None:
        return conn.execute(select(audit_checkpoints.c.size)
                            .order_by(audit_checkpoints.c.id.desc()).limit(1)).scalar()

    def records(self, conn: Connection, stop: int, batch: int = 5000) -> Iterator[AuditRecord]:
        """Every entry at positions < ``stop``, in order, fetched in batches (exports)."""
        after = -1
        while after + 1 < stop:
            page = self.query(conn, AuditQuery(after=after, limit=min(batch, stop - after - 1)))
            if not page:
                return
            yield from page
            after = page[-1].position

    def query(self, conn: Connection, q: AuditQuery) -> Sequence[AuditRecord]:
        e, lg = audit_events, audit_log
        stmt = (select(lg.c.position, e.c.entry, e.c.leaf_hash)
                .join(e, e.c.seq == lg.c.seq).where(lg.c.position > q.after))
        for column, value in ((e.c.actor_id, q.actor_id), (e.c.action, q.action),
                              (e.c.object_id, q.object_id), (e.c.dataset_id, q.dataset_id),
                              (e.c.outcome, q.outcome)):
            if value is not None:
                stmt = stmt.where(column == value)
        if q.since is not None:
            stmt = stmt.where(e.c.time >= q.since)
        if q.until is not None:
            stmt = stmt.where(e.c.time < q.until)
        rows = conn.execute(stmt.order_by(lg.c.position).limit(q.limit)).all()
        return [AuditRecord(row.position, Event.from_canonical(row.entry.encode()),
                            row.leaf_hash, row.entry) for row in rows]
