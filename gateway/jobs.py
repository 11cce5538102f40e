"""Background execution of the pipeline.

Embedded default: an in-process thread pool. Items are claimed with a conditional
UPDATE, so several processes (gunicorn workers) can run the same pool side by side
without handling one item twice; items left in ``processing`` by a crash are
reclaimed once their claim is older than ``STALE_CLAIM``.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import timedelta
from typing import Protocol

import structlog
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from gateway.db.models import Item, utcnow

log = structlog.get_logger("gateway.jobs")

STALE_CLAIM = timedelta(minutes=15)


class JobRunner(Protocol):
    def submit(self, item_id: str) -> None: ...

    def shutdown(self) -> None: ...


class ThreadJobs:
    """Runs ``handler(item_id)`` on a bounded pool of threads."""

    def __init__(self, handler: Callable[[str], object], workers: int) -> None:
        self._handler = handler
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pipeline")

    def submit(self, item_id: str) -> None:
        future = self._pool.submit(self._handler, item_id)
        future.add_done_callback(_log_crash)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=False)


def _log_crash(future: Future[object]) -> None:
    exc = future.exception()
    if exc is not None:  # the handler quarantines on its own; this is a last resort
        log.error("pipeline.crashed", error_type=type(exc).__name__)


def pending_items(sessions: sessionmaker[Session]) -> list[str]:
    """Items to (re)submit at start: never claimed, or claimed by a worker that died."""
    stale_before = utcnow() - STALE_CLAIM
    with sessions() as session:
        session.execute(
            update(Item)
            .where(Item.status == "processing", Item.updated_at < stale_before)
            .values(status="received", updated_at=utcnow())
        )
        ids = session.scalars(select(Item.id).where(Item.status == "received")).all()
        session.commit()
    return list(ids)
