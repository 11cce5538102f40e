"""Audit log benchmark: committed events/s with concurrent writers, and offline verify.

Part 1: W writer processes (like gunicorn workers) each commit E/W events, one event per
transaction, into a fresh PostgreSQL schema (fsync as the server is configured: the
output shows it), while the application's sequencer runs. Reports committed events/s,
then checks the log: positions 0..N-1 with no gaps, every event exactly once (no forks),
and the Merkle frontier's root equal to a root recomputed from the leaves.

Part 2 (when audit.verify is available): offline verification events/s of an export of
that log, against the time to merely read the same export (baseline, same run).

Never part of the test suite. Example:
    .venv/bin/python bench/audit.py --events 20000 --writers 8
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audit import Event  # noqa: E402
from audit.checkpoint import generate_signing_key, sign_checkpoint  # noqa: E402
from audit.export import read_export, write_export  # noqa: E402
from audit.merkle import root as merkle_root  # noqa: E402
from audit.store import (
    SqlAuditStore,  # noqa: E402
    audit_log,  # noqa: E402
)
from audit.verify import verify_export  # noqa: E402
from gateway.auditing import Sequencer, sequence_now  # noqa: E402
from gateway.db import migrate  # noqa: E402
from gateway.db.engine import make_engine  # noqa: E402

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _writer(url: str, schema: str, count: int, start: multiprocessing.Event) -> None:
    engine = make_engine(url, schema=schema)
    store = SqlAuditStore()
    events = [Event("system:item:processing", actor_role="system",
                    object_id=uuid.uuid4().hex) for _ in range(count)]
    with engine.connect() as conn:  # a worker keeps its connection, as a pool does
        start.wait()
        for event in events:
            with conn.begin():
                store.append(conn, event)
    engine.dispose()


def bench_writers(url: str, events: int, writers: int) -> tuple[str, Any]:
    schema = "bench_" + uuid.uuid4().hex[:10]
    engine = make_engine(url, schema=schema)
    migrate.upgrade(engine, schema=schema)
    with engine.connect() as conn:
        fsync = conn.execute(text("SHOW fsync")).scalar()
        sync = conn.execute(text("SHOW synchronous_commit")).scalar()
    print(f"PostgreSQL fsync={fsync} synchronous_commit={sync}; schema {schema}")
    store = SqlAuditStore()
    sequencer = Sequencer(engine, store, interval=0.05)
    start = multiprocessing.Event()
    per = events // writers
    procs = [multiprocessing.Process(target=_writer, args=(url, schema, per, start))
             for _ in range(writers)]
    for p in procs:
        p.start()
    time.sleep(2)  # let every writer connect and build its events first
    t0 = time.perf_counter()
    start.set()
    for p in procs:
        p.join()
    elapsed = time.perf_counter() - t0
    sequencer.stop()
    sequence_now(engine, store)
    total = per * writers
    print(f"{writers} writers committed {total} events in {elapsed:.1f} s: "
          f"{total / elapsed:,.0f} committed events/s")
    with engine.connect() as conn:
        n, lo, hi, distinct = conn.execute(select(
            func.count(), func.min(audit_log.c.position), func.max(audit_log.c.position),
            func.count(func.distinct(audit_log.c.seq)))).one()
        head = store.tree_head(conn)
        leaves = store.leaf_hashes(conn)
    gaps = (hi - lo + 1 - n) if n else 0
    forks = n - distinct
    print(f"log: size={head.size} positions {lo}..{hi}, gaps={gaps}, forks={forks}, "
          f"root matches leaves: {merkle_root(leaves) == head.root}")
    return schema, engine


def bench_verify(engine: Any, folder: Path, repeat: int = 3) -> None:
    """Export the log just written, then time verification against parsing alone."""
    store = SqlAuditStore()
    private, vkey = generate_signing_key("bench/audit")
    with engine.connect() as conn:
        head = store.tree_head(conn)
        note = sign_checkpoint("bench/audit", head.size, head.root, "bench/audit", private)
        path = folder / "export.jsonl"
        with path.open("w", encoding="utf-8") as fp:
            write_export(store.records(conn, head.size), [note], vkey, fp)
    parse = verify = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        with path.open(encoding="utf-8") as fp:
            export = read_export(fp)
        t1 = time.perf_counter()
        result = verify_export(export, vkey)
        t2 = time.perf_counter()
        parse, verify = min(parse, t1 - t0), min(verify, t2 - t0)
    n = head.size
    print(f"offline verify of {n} events: {n / verify:,.0f} events/s (parse + verify), "
          f"parse alone {n / parse:,.0f} events/s; verify/parse time ratio "
          f"{verify / parse:.2f}; result size={result.size}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--keep", action="store_true", help="keep the schema afterwards")
    args = parser.parse_args()
    schema, engine = bench_writers(args.url, args.events, args.writers)
    with tempfile.TemporaryDirectory() as folder:
        bench_verify(engine, Path(folder))
    if not args.keep:
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    return 0


if __name__ == "__main__":
    sys.exit(main())
