"""The audit store on the real database: same-transaction writes, dense positions under
concurrent writers, a Merkle frontier that matches the leaves, append-only tables."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from audit import Event, leaf_hash
from audit.merkle import node_hash
from audit.store import AuditQuery, SqlAuditStore, audit_events, audit_log
from gateway.auditing import Sequencer, sequence_now
from gateway.config import load_settings
from gateway.db import migrate
from gateway.runtime import build_runtime

pytestmark = pytest.mark.integration


@pytest.fixture
def rt(gateway_config: dict[str, Any]) -> Any:
    runtime = build_runtime(load_settings(gateway_config))
    migrate.upgrade(runtime.engine, schema=gateway_config.get("database_schema"))
    yield runtime
    runtime.close()


def _mth(leaves: list[bytes]) -> bytes:
    """RFC 9162 MTH, recursively: an independent reference for the frontier."""
    import hashlib

    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return node_hash(_mth(leaves[:k]), _mth(leaves[k:]))


def test_rolled_back_action_leaves_no_event(rt: Any) -> None:
    store = SqlAuditStore()
    with rt.engine.connect() as conn:
        with conn.begin():
            store.append(conn, Event("uploader:dataset:created"))
        trans = conn.begin()
        store.append(conn, Event("uploader:dataset:created"))
        trans.rollback()
        with conn.begin():
            store.append(conn, Event("uploader:dataset:viewed"))
    assert sequence_now(rt.engine, store) == 2
    with rt.engine.connect() as conn:
        actions = [r.event.action for r in store.query(conn, AuditQuery())]
        assert store.size(conn) == 2
    assert actions == ["uploader:dataset:created", "uploader:dataset:viewed"]


def test_leaf_hash_covers_the_canonical_entry(rt: Any) -> None:
    store = SqlAuditStore()
    event = Event("uploader:item:uploaded", object_id="ab" * 16, content_sha256="cd" * 32)
    with rt.engine.begin() as conn:
        store.append(conn, event)
    sequence_now(rt.engine, store)
    with rt.engine.connect() as conn:
        row = conn.execute(select(audit_events)).one()
    assert row.entry.encode() == event.canonical()
    assert row.leaf_hash == leaf_hash(event.canonical()).hex()


def test_concurrent_writers_get_dense_unique_positions(rt: Any) -> None:
    store = SqlAuditStore()
    writers, per_writer = 8, 40
    errors: list[BaseException] = []
    done = threading.Event()

    def write() -> None:
        try:
            for _ in range(per_writer):
                with rt.engine.begin() as conn:
                    store.append(conn, Event("system:item:processing"))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    def sequencer() -> None:  # runs while the writers write, as in production
        while not done.is_set():
            sequence_now(rt.engine, store)

    threads = [threading.Thread(target=write) for _ in range(writers)]
    seq_thread = threading.Thread(target=sequencer)
    seq_thread.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    seq_thread.join()
    sequence_now(rt.engine, store)
    assert not errors
    total = writers * per_writer
    with rt.engine.connect() as conn:
        positions = conn.execute(select(audit_log.c.position)).scalars().all()
        seqs = conn.execute(select(audit_log.c.seq)).scalars().all()
        head = store.tree_head(conn)
        leaves = store.leaf_hashes(conn)
    assert sorted(positions) == list(range(total))  # no gaps, no forks
    assert len(set(seqs)) == total  # every event exactly once
    assert head.size == total and head.root == _mth(leaves)


def test_frontier_root_matches_reference_at_every_size(rt: Any) -> None:
    store = SqlAuditStore()
    leaves: list[bytes] = []
    for n in range(1, 34):
        event = Event("uploader:item:viewed", object_id=f"{n:032x}")
        with rt.engine.begin() as conn:
            store.append(conn, event)
        leaves.append(leaf_hash(event.canonical()))
        sequence_now(rt.engine, store)
        with rt.engine.connect() as conn:
            assert store.tree_head(conn).root == _mth(leaves), n


def test_query_filters_and_pages(rt: Any) -> None:
    store = SqlAuditStore()
    a, b = "a" * 32, "b" * 32
    with rt.engine.begin() as conn:
        for i in range(5):
            store.append(conn, Event("uploader:item:viewed", object_id=a if i % 2 else b,
                                     outcome="ok" if i < 4 else "denied"))
    sequence_now(rt.engine, store)
    with rt.engine.connect() as conn:
        only_a = store.query(conn, AuditQuery(object_id=a))
        assert [r.position for r in only_a] == [1, 3]
        denied = store.query(conn, AuditQuery(outcome="denied"))
        assert [r.position for r in denied] == [4]
        page1 = store.query(conn, AuditQuery(limit=2))
        page2 = store.query(conn, AuditQuery(limit=2, after=page1[-1].position))
        assert [r.position for r in page1 + page2] == [0, 1, 2, 3]


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_events SET action = 'x'",  # editing history
        "DELETE FROM audit_events",  # deleting history
        "UPDATE audit_log SET position = position + 1",  # reordering
        "DELETE FROM audit_log",
    ],
)
def test_tables_are_append_only(rt: Any, statement: str) -> None:
    store = SqlAuditStore()
    with rt.engine.begin() as conn:
        store.append(conn, Event("uploader:item:viewed"))
    sequence_now(rt.engine, store)
    with pytest.raises(DBAPIError, match="append-only"), rt.engine.begin() as conn:
        conn.execute(text(statement))


def test_truncate_is_refused_on_postgresql(rt: Any) -> None:
    if rt.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no TRUNCATE")
    with pytest.raises(DBAPIError, match="append-only"), rt.engine.begin() as conn:
        conn.execute(text("TRUNCATE audit_log, audit_events, audit_pending"))


def test_one_sequencer_per_host_leads_and_another_takes_over(rt: Any, tmp_path: Any) -> None:
    """Web workers each start a sequencer; the lock file lets exactly one work, and when
    it stops (its process exits) another takes over and sequences what came since."""
    store = SqlAuditStore()
    lock = tmp_path / "audit-sequencer.lock"
    first = Sequencer(rt.engine, store, interval=0.02, lock_path=lock)
    second = Sequencer(rt.engine, store, interval=0.02, lock_path=lock)
    try:
        deadline = time.monotonic() + 10
        while not (first.leading or second.leading) and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.1)
        assert [first.leading, second.leading].count(True) == 1
        leader, other = (first, second) if first.leading else (second, first)
        leader.stop()
        with rt.engine.begin() as conn:
            store.append(conn, Event("uploader:dataset:created"))
        while time.monotonic() < deadline:
            with rt.engine.connect() as conn:
                if store.size(conn) == 1:
                    break
            time.sleep(0.02)
        assert other.leading
        with rt.engine.connect() as conn:
            assert store.size(conn) == 1  # sequenced by the new leader
    finally:
        first.stop()
        second.stop()
