"""Write audit events in the caller's transaction (privacy contract, line 3), and keep
the log sequenced: a background thread gives committed events their positions, and
every read of the log sequences first, so readers see everything committed."""

from __future__ import annotations

import fcntl
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import structlog
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from audit import Event
from audit.store import SqlAuditStore

log = structlog.get_logger("gateway.audit")


def record(session: Session, store: SqlAuditStore, event: Event) -> None:
    """Append ``event`` inside ``session``'s open transaction; it commits with the action."""
    store.append(session.connection(), event)


def sequence_now(engine: Engine, store: SqlAuditStore) -> int:
    """Give every committed event its position; returns how many were sequenced."""
    total = 0
    while True:
        with engine.begin() as conn:
            done = store.sequence(conn)
        total += done
        if done == 0:
            return total


class Sequencer:
    """Sequences the log every ``interval`` seconds until stopped; every ``period``
    seconds also runs ``periodic`` (the scheduled checkpoint).

    With ``lock_path``, only one Sequencer per host works at a time (the holder of an
    exclusive ``flock`` on that file; the web server's worker processes all start one):
    the others poll the lock and take over when its holder exits, however it exits.
    Sequencing is correct with any number of sequencers (they serialize on the log's
    head row); one is simply enough, and spares the others' queries and checkpoints.
    """

    def __init__(self, engine: Engine, store: SqlAuditStore, interval: float = 1.0,
                 periodic: Callable[[], object] | None = None, period: float = 300,
                 lock_path: Path | None = None) -> None:
        self._engine, self._store, self._interval = engine, store, interval
        self._periodic, self._period = periodic, period
        self._lock_path = lock_path
        self._lock_file: BinaryIO | None = None
        self._last = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="audit-sequencer", daemon=True)
        self._thread.start()

    @property
    def leading(self) -> bool:
        return self._lock_path is None or self._lock_file is not None

    def _lead(self) -> bool:
        if self.leading:
            return True
        assert self._lock_path is not None
        handle = self._lock_path.open("ab")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        self._lock_file = handle
        self._last = time.monotonic()
        return True

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            if not self._lead():
                continue
            try:
                sequence_now(self._engine, self._store)
                if self._periodic and time.monotonic() - self._last >= self._period:
                    self._last = time.monotonic()
                    self._periodic()
            except Exception as exc:  # noqa: BLE001 - keep going; the next round retries
                log.error("audit.sequencer_failed", error_type=type(exc).__name__)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        if self._lock_file is not None:
            self._lock_file.close()  # releases the lock for another process
