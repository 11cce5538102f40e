"""Background execution of the pipeline.

Embedded default: a pool of worker *processes* started with ``spawn``. Each builds its
own runtime and loads the models once; the web process never runs a model (it decodes an
image once at upload, to refuse truncated files and bombs), so it stays small (a 2 GiB
upload streams through it in bounded memory)
and a native crash in a decoder cannot take the server down: the item being processed
is quarantined (``worker_crashed``) and the pool is rebuilt. A thread pool remains for
tests that replace pipeline functions in-process.

Items are claimed with a conditional UPDATE, so several web processes (gunicorn
workers) can each run a pool without handling one item twice; items left in
``processing`` by a crash are reclaimed once their claim is older than ``STALE_CLAIM``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import timedelta
from multiprocessing import get_context
from typing import TYPE_CHECKING, Any, Protocol

import structlog
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from gateway.config import Settings
from gateway.db.models import Item, utcnow

if TYPE_CHECKING:
    from gateway.runtime import Runtime

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


class ProcessJobs:
    """Runs the pipeline in ``workers`` spawned processes, each with its own runtime."""

    def __init__(self, settings: Settings, workers: int,
                 on_crash: Callable[[str], object]) -> None:
        self._settings = settings
        self._workers = workers
        self._on_crash = on_crash
        self._lock = threading.Lock()
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=self._workers, mp_context=get_context("spawn"),
                                   initializer=_init_worker, initargs=(self._settings,))

    def submit(self, item_id: str) -> None:
        with self._lock:
            future = self._pool.submit(_run_in_worker, item_id)
            future._gateway_pool = self._pool  # type: ignore[attr-defined]
        future.add_done_callback(lambda f: self._done(f, item_id))

    def _done(self, future: Future[Any], item_id: str) -> None:
        exc = future.exception()
        if isinstance(exc, BrokenProcessPool):
            log.error("pipeline.worker_crashed", item_id=item_id)
            with self._lock:
                if self._pool is getattr(future, "_gateway_pool", self._pool):
                    self._pool.shutdown(wait=False, cancel_futures=True)
                    self._pool = self._new_pool()
            self._on_crash(item_id)
        elif exc is not None:
            log.error("pipeline.crashed", error_type=type(exc).__name__)

    def shutdown(self) -> None:
        with self._lock:
            self._pool.shutdown(wait=True, cancel_futures=False)


_worker_runtime: Runtime | None = None


def _init_worker(settings: Settings) -> None:
    """In each spawned worker: configure logging, build the runtime, load the models."""
    global _worker_runtime
    from gateway.anonymize.detectors import registry
    from gateway.logs import configure_logging
    from gateway.runtime import build_runtime

    configure_logging(settings.log_format, settings.log_level)
    _worker_runtime = build_runtime(settings)
    registry.warm_up(_worker_runtime.policy.image)


def _run_in_worker(item_id: str) -> str:
    from gateway.pipeline import process_item

    assert _worker_runtime is not None, "worker initializer did not run"
    return process_item(_worker_runtime, item_id)


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
