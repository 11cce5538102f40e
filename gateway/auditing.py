"""Write audit events in the caller's transaction (privacy contract, line 3), and keep
the log sequenced: a background thread gives committed events their positions, and
every read of the log sequences first, so readers see everything committed."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

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
    seconds also runs ``periodic`` (the scheduled checkpoint)."""

    def __init__(self, engine: Engine, store: SqlAuditStore, interval: float = 0.2,
                 periodic: Callable[[], object] | None = None, period: float = 300) -> None:
        self._engine, self._store, self._interval = engine, store, interval
        self._periodic, self._period = periodic, period
        self._last = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="audit-sequencer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
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
