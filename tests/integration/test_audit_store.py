"""The audit store on the real database: same-transaction writes, no forks, no gaps."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import select

from audit import AuditQuery, Event, SqlAuditStore, leaf_hash
from audit.store import audit_events
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


def test_rolled_back_action_leaves_no_event(rt: Any) -> None:
    store = SqlAuditStore()
    with rt.engine.connect() as conn:
        with conn.begin():
            store.append(conn, Event("uploader:dataset:created"))
        trans = conn.begin()
        store.append(conn, Event("uploader:dataset:created"))
        trans.rollback()
        with conn.begin():
            position = store.append(conn, Event("uploader:dataset:viewed"))
            assert store.size(conn) == 2
    # the rolled-back increment left no gap: the next event took position 1
    assert position == 1


def test_leaf_hash_covers_the_canonical_entry(rt: Any) -> None:
    store = SqlAuditStore()
    event = Event("uploader:item:uploaded", object_id="ab" * 16, content_sha256="cd" * 32)
    with rt.engine.begin() as conn:
        store.append(conn, event)
        row = conn.execute(select(audit_events)).one()
    assert row.entry.encode() == event.canonical()
    assert row.leaf_hash == leaf_hash(event.canonical()).hex()


def test_concurrent_writers_get_dense_unique_positions(rt: Any) -> None:
    store = SqlAuditStore()
    writers, per_writer = 8, 40
    errors: list[BaseException] = []

    def write() -> None:
        try:
            for _ in range(per_writer):
                with rt.engine.begin() as conn:
                    store.append(conn, Event("system:item:processing"))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write) for _ in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with rt.engine.connect() as conn:
        positions = conn.execute(select(audit_events.c.position)).scalars().all()
        assert store.size(conn) == writers * per_writer
    assert sorted(positions) == list(range(writers * per_writer))


def test_query_filters_and_pages(rt: Any) -> None:
    store = SqlAuditStore()
    a, b = "a" * 32, "b" * 32
    with rt.engine.begin() as conn:
        for i in range(5):
            store.append(conn, Event("uploader:item:viewed", object_id=a if i % 2 else b,
                                     outcome="ok" if i < 4 else "denied"))
    with rt.engine.connect() as conn:
        only_a = store.query(conn, AuditQuery(object_id=a))
        assert [r.position for r in only_a] == [1, 3]
        denied = store.query(conn, AuditQuery(outcome="denied"))
        assert [r.position for r in denied] == [4]
        page1 = store.query(conn, AuditQuery(limit=2))
        page2 = store.query(conn, AuditQuery(limit=2, after=page1[-1].position))
        assert [r.position for r in page1 + page2] == [0, 1, 2, 3]
