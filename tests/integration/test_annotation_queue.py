"""The pull queue on the real database: overlap, leases and their expiry, release, skip,
submit, review, gold rate, progress, and many annotators pulling at once (on PostgreSQL
the acceptance size: 50 annotators, 2,000 tasks, overlap 2)."""

from __future__ import annotations

import contextlib
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from gateway.annotation import queue
from gateway.db.models import (
    Assignment,
    Dataset,
    Item,
    Principal,
    Project,
    Task,
    utcnow,
)
from gateway.errors import Conflict

pytestmark = pytest.mark.integration

LEASE = 600
T = TypeVar("T")


@dataclass
class Seeded:
    project_id: str
    annotators: list[str]
    item_ids: list[str]
    reviewer: str


def _principal(session: Session, role: str) -> str:
    p = Principal(name=f"{role}-{uuid.uuid4().hex[:12]}", role=role)
    session.add(p)
    session.flush()
    return p.id


def _items(session: Session, dataset_id: str, owner: str, n: int, status: str = "ready"
           ) -> list[str]:
    items = [Item(dataset_id=dataset_id, status=status, media_type="image/jpeg", size=1,
                  sha256="0" * 64, policy_sha256="0" * 64, uploaded_by=owner)
             for _ in range(n)]
    session.add_all(items)
    session.flush()
    return [i.id for i in items]


def seed(runtime: Any, *, items: int, overlap: int = 1, annotators: int = 3,
         gold: int = 0, gold_rate: float = 0.0, lease_seconds: int = LEASE) -> Seeded:
    """A dataset of ready items, a project over it with a task per item (the first
    ``gold`` of them gold), and annotators."""
    with runtime.session() as s:
        owner = _principal(s, "uploader")
        ds = Dataset(name="d", owner_id=owner, policy_id="default")
        s.add(ds)
        s.flush()
        item_ids = _items(s, ds.id, owner, items)
        project = Project(name="p", dataset_id=ds.id, owner_id=owner, label_schema="{}",
                          overlap=overlap, gold_rate=gold_rate,
                          lease_seconds=lease_seconds)
        s.add(project)
        s.flush()
        assert queue.add_tasks(s, project, [(i, 64, 48) for i in item_ids]) == items
        for task in s.scalars(select(Task).where(Task.item_id.in_(item_ids[:gold]))):
            queue.set_gold(s, task, '{"boxes": []}')
        seeded = Seeded(project.id, [_principal(s, "annotator") for _ in range(annotators)],
                        item_ids, _principal(s, "reviewer"))
        s.commit()
    return seeded


def lease(s: Session, seeded: Seeded, annotator: str, now: datetime,
          rng: random.Random | None = None) -> Assignment | None:
    project = s.get(Project, seeded.project_id)
    assert project is not None
    got = queue.lease_next(s, project, annotator, now=now, rng=rng or random.Random(0))
    return got.assignment if got is not None else None


def slots(s: Session, task_id: str) -> int:
    value = s.scalar(select(Task.slots_left).where(Task.id == task_id))
    assert value is not None
    return value


def reason(exc: pytest.ExceptionInfo[Conflict]) -> str:
    return str(exc.value.extensions["reason"])


# --------------------------------------------------------------------------- overlap
def test_overlap_gives_each_item_to_exactly_n_distinct_annotators(runtime: Any) -> None:
    seeded = seed(runtime, items=4, overlap=3, annotators=5)
    now = utcnow()
    with runtime.session() as s:
        got: dict[str, list[str]] = {a: [] for a in seeded.annotators}
        for _ in range(10):  # round robin, so everyone gets a share
            for annotator in seeded.annotators:
                a = lease(s, seeded, annotator, now)
                if a is not None:
                    got[annotator].append(a.task_id)
                    queue.submit(s, a, "{}", now=now)
        s.commit()
        for tasks in got.values():
            assert len(tasks) == len(set(tasks))  # never twice to one annotator
        per_task = Counter(t for tasks in got.values() for t in tasks)
        assert len(per_task) == 4 and set(per_task.values()) == {3}
        assert all(lease(s, seeded, a, now) is None for a in seeded.annotators)
        assert s.scalar(select(func.sum(Task.slots_left))
                        .where(Task.project_id == seeded.project_id)) == 0


def test_add_tasks_skips_tasked_items_and_refuses_items_not_ready(runtime: Any) -> None:
    seeded = seed(runtime, items=2, overlap=2)
    with runtime.session() as s:
        project = s.get(Project, seeded.project_id)
        assert project is not None
        owner = project.owner_id
        extra = _items(s, project.dataset_id, owner, 1)
        sizes = [(i, 10, 10) for i in [*seeded.item_ids, *extra, *extra]]
        assert queue.add_tasks(s, project, sizes) == 1
        task = s.scalar(select(Task).where(Task.item_id == extra[0]))
        assert task is not None and task.slots_left == 2 and not task.gold
        quarantined = _items(s, project.dataset_id, owner, 1, status="quarantined")
        with pytest.raises(Conflict) as exc:
            queue.add_tasks(s, project, [(quarantined[0], 10, 10)])
        assert reason(exc) == "item_not_ready"


def test_items_no_longer_ready_are_not_offered(runtime: Any) -> None:
    seeded = seed(runtime, items=2)
    with runtime.session() as s:
        oldest = s.scalar(select(Task).where(Task.project_id == seeded.project_id)
                          .order_by(Task.created_at, Task.id).limit(1))
        assert oldest is not None
        item = s.get(Item, oldest.item_id)
        assert item is not None
        item.status = "erased"
        s.flush()
        a = lease(s, seeded, seeded.annotators[0], utcnow())
        assert a is not None and a.task_id != oldest.id
        assert lease(s, seeded, seeded.annotators[1], utcnow()) is None
        assert slots(s, oldest.id) == 1


# --------------------------------------------------------------------------- leases
def test_lease_expiry_returns_the_slot(runtime: Any) -> None:
    seeded = seed(runtime, items=1)
    first, second = seeded.annotators[:2]
    now = utcnow()
    with runtime.session() as s:
        a = lease(s, seeded, first, now)
        assert a is not None and a.state == "leased"
        assert slots(s, a.task_id) == 0
        s.commit()
        assert lease(s, seeded, second, now + timedelta(seconds=LEASE - 1)) is None
        later = now + timedelta(seconds=LEASE + 1)
        b = lease(s, seeded, second, later)  # the sweep inside lease_next frees the slot
        assert b is not None and b.task_id == a.task_id
        s.refresh(a)
        assert a.state == "expired" and slots(s, a.task_id) == 0
        assert lease(s, seeded, first, later) is None  # overlap 1: no slot left
        s.commit()


def test_expire_leases_counts_and_frees(runtime: Any) -> None:
    seeded = seed(runtime, items=3, overlap=2)
    now = utcnow()
    with runtime.session() as s:
        for _ in range(3):
            assert lease(s, seeded, seeded.annotators[0], now) is not None
        assert queue.expire_leases(s, seeded.project_id, now=now) == 0
        assert queue.expire_leases(s, seeded.project_id,
                                   now=now + timedelta(seconds=LEASE + 1)) == 3
        assert queue.progress(s, seeded.project_id)["slots_left"] == 6
        assert queue.expire_leases(s, seeded.project_id,
                                   now=now + timedelta(seconds=LEASE + 2)) == 0


def test_the_sweep_is_throttled_but_always_runs_before_saying_nothing_left(
        runtime: Any) -> None:
    """Between sweeps an expired lease keeps its slot while other work is offered; once
    nothing else is left the sweep runs at once, so the slot is never stranded."""
    seeded = seed(runtime, items=2, lease_seconds=1)
    first, second = seeded.annotators[:2]
    now = utcnow()
    with runtime.session() as s:
        a = lease(s, seeded, first, now)  # sweeps (first call for the project)
        assert a is not None
        soon = now + timedelta(seconds=2)  # a has expired; the next sweep is not due
        assert soon < now + timedelta(seconds=queue.SWEEP_SECONDS)
        b = lease(s, seeded, second, soon)
        assert b is not None and b.task_id != a.task_id  # the other task, no sweep
        s.refresh(a)
        assert a.state == "leased"
        c = lease(s, seeded, second, soon)  # nothing else left: sweep, then a's task
        assert c is not None and c.task_id == a.task_id
        s.refresh(a)
        assert a.state == "expired"
        s.commit()


def test_a_lease_row_in_another_state_refuses_a_second_lease(runtime: Any) -> None:
    """The upsert only revives released or expired rows: a concurrent request of the
    same annotator that got there first wins, this one is refused."""
    seeded = seed(runtime, items=1)
    first = seeded.annotators[0]
    now = utcnow()
    with runtime.session() as s:
        a = lease(s, seeded, first, now)
        assert a is not None
        project = s.get(Project, seeded.project_id)
        task = s.get(Task, a.task_id)
        assert project is not None and task is not None
        with pytest.raises(Conflict) as refused:
            queue._new_lease(s, project, task, first, now)
        assert refused.value.extensions["reason"] == "lease_in_progress"
        s.rollback()


def test_the_pick_uses_the_open_tasks_index_in_a_generic_plan(runtime: Any) -> None:
    """Prepared statements end up with a generic plan; it must still walk the partial
    index of open tasks (the query says ``slots_left > 0`` literally), or every pick
    would scan and sort all of the project's tasks. (A table of a few rows is rightly
    read whole; adding tasks refreshes the statistics, so the planner knows the size.)"""
    if runtime.engine.dialect.name != "postgresql":
        pytest.skip("plans are PostgreSQL's")
    from psycopg import sql as psycopg_sql

    seeded = seed(runtime, items=1000, overlap=1)
    dialect = runtime.engine.dialect.__class__(paramstyle="numeric_dollar")
    compiled = queue._take_statement(False, True).compile(dialect=dialect)
    values = {**compiled.params, "b_project": seeded.project_id,
              "b_annotator": seeded.annotators[0]}
    args = [values[name] for name in compiled.positiontup or ()]
    with runtime.engine.connect() as conn:
        conn.exec_driver_sql(f"PREPARE pick AS {compiled.string}")
        conn.exec_driver_sql("SET plan_cache_mode = force_generic_plan")
        raw = conn.connection.dbapi_connection
        literals = ", ".join(psycopg_sql.Literal(a).as_string(raw) for a in args)
        plan = "\n".join(row[0] for row in conn.exec_driver_sql(
            f"EXPLAIN EXECUTE pick({literals})"))
        conn.rollback()
    assert "ix_tasks_open" in plan, plan
    assert "Sort" not in plan, plan


def test_renew_extends_a_live_lease_and_refuses_an_expired_one(runtime: Any) -> None:
    seeded = seed(runtime, items=2)
    now = utcnow()
    with runtime.session() as s:
        a = lease(s, seeded, seeded.annotators[0], now)
        assert a is not None
        queue.renew(s, a, now=now + timedelta(seconds=LEASE - 10))
        s.commit()
        # the renewed lease outlives the first expiry: no sweep takes it
        assert queue.expire_leases(s, seeded.project_id,
                                   now=now + timedelta(seconds=LEASE + 10)) == 0
        late = now + timedelta(seconds=2 * LEASE)
        with pytest.raises(Conflict) as exc:
            queue.renew(s, a, now=late)
        assert reason(exc) == "lease_expired"
        queue.submit(s, a, "{}", now=now)
        with pytest.raises(Conflict) as exc:
            queue.renew(s, a, now=now)
        assert reason(exc) == "not_leased"


def test_release_returns_the_slot(runtime: Any) -> None:
    seeded = seed(runtime, items=1)
    first, second = seeded.annotators[:2]
    now = utcnow()
    with runtime.session() as s:
        a = lease(s, seeded, first, now)
        assert a is not None
        queue.release(s, a, now=now)
        assert a.state == "released" and slots(s, a.task_id) == 1
        with pytest.raises(Conflict) as exc:
            queue.release(s, a, now=now)  # a second release gives nothing back
        assert reason(exc) == "not_leased" and slots(s, a.task_id) == 1
        b = lease(s, seeded, second, now)
        assert b is not None and b.task_id == a.task_id


def test_a_released_or_expired_task_may_come_back_to_the_same_annotator(
        runtime: Any) -> None:
    seeded = seed(runtime, items=1)
    first = seeded.annotators[0]
    now = utcnow()
    with runtime.session() as s:
        a = lease(s, seeded, first, now)
        assert a is not None
        queue.release(s, a, now=now)
        again = lease(s, seeded, first, now)
        # the same row leased again: still one row per (task, annotator)
        assert again is not None and again.id == a.id and again.state == "leased"
        assert slots(s, a.task_id) == 0
        later = now + timedelta(seconds=LEASE + 1)
        third = lease(s, seeded, first, later)  # the lease expired: offered again
        assert third is not None and third.id == a.id
        rows = s.scalar(select(func.count(Assignment.id)).where(
            Assignment.task_id == a.task_id))
        assert rows == 1


def test_skip_returns_the_slot_and_is_never_reoffered(runtime: Any) -> None:
    seeded = seed(runtime, items=2)
    first, second = seeded.annotators[:2]
    now = utcnow()
    with runtime.session() as s:
        a = lease(s, seeded, first, now)
        assert a is not None
        queue.skip(s, a, now=now)
        assert a.state == "skipped" and slots(s, a.task_id) == 1
        b = lease(s, seeded, first, now)
        assert b is not None and b.task_id != a.task_id
        queue.skip(s, b, now=now)
        assert lease(s, seeded, first, now) is None  # both skipped: nothing left for them
        c = lease(s, seeded, second, now)
        assert c is not None and c.task_id == a.task_id


def test_submit_after_expiry_is_refused(runtime: Any) -> None:
    seeded = seed(runtime, items=1)
    now = utcnow()
    with runtime.session() as s:
        a = lease(s, seeded, seeded.annotators[0], now)
        assert a is not None
        with pytest.raises(Conflict) as exc:
            queue.submit(s, a, "{}", now=now + timedelta(seconds=LEASE + 1))
        assert reason(exc) == "lease_expired"
        assert a.state == "leased" and a.annotation is None
        queue.submit(s, a, '{"ok": 1}', now=now + timedelta(seconds=LEASE))  # inclusive
        assert a.state == "submitted" and a.annotation == '{"ok": 1}'
        assert slots(s, a.task_id) == 0
        with pytest.raises(Conflict) as exc:
            queue.submit(s, a, "{}", now=now)
        assert reason(exc) == "not_leased"


def test_naive_utc_now_is_accepted(runtime: Any) -> None:
    seeded = seed(runtime, items=1)
    naive = utcnow().replace(tzinfo=None)
    with runtime.session() as s:
        a = lease(s, seeded, seeded.annotators[0], naive)
        assert a is not None
        queue.renew(s, a, now=naive + timedelta(seconds=5))
        queue.submit(s, a, "{}", now=naive + timedelta(seconds=6))


# --------------------------------------------------------------------------- review
def test_reject_returns_the_slot_accept_does_not(runtime: Any) -> None:
    seeded = seed(runtime, items=2)
    one, two, three = seeded.annotators
    now = utcnow()
    with runtime.session() as s:
        a = lease(s, seeded, one, now)
        b = lease(s, seeded, two, now)
        assert a is not None and b is not None and a.task_id != b.task_id
        with pytest.raises(Conflict) as exc:
            queue.review(s, a, seeded.reviewer, True, None, now=now)
        assert reason(exc) == "not_submitted"
        queue.submit(s, a, "{}", now=now)
        queue.submit(s, b, "{}", now=now)
        queue.review(s, a, seeded.reviewer, True, "fine", now=now)
        queue.review(s, b, seeded.reviewer, False, "missed a box", now=now)
        assert (a.state, slots(s, a.task_id)) == ("accepted", 0)
        assert (b.state, slots(s, b.task_id)) == ("rejected", 1)
        assert b.reviewed_by == seeded.reviewer and b.review_comment == "missed a box"
        with pytest.raises(Conflict) as exc:
            queue.review(s, b, seeded.reviewer, True, None, now=now)
        assert reason(exc) == "not_submitted" and slots(s, b.task_id) == 1
        assert lease(s, seeded, two, now) is None  # the rejected annotator never again
        c = lease(s, seeded, three, now)
        assert c is not None and c.task_id == b.task_id


# --------------------------------------------------------------------------- gold
def test_gold_is_served_at_the_configured_rate(runtime: Any) -> None:
    seeded = seed(runtime, items=400, gold=200, gold_rate=0.25, annotators=1)
    now, rng = utcnow(), random.Random(1234)
    with runtime.session() as s:
        gold_ids = set(s.scalars(select(Task.id).where(Task.gold.is_(True))))
        served = []
        for _ in range(200):
            a = lease(s, seeded, seeded.annotators[0], now, rng)
            assert a is not None
            served.append(a.task_id in gold_ids)
        assert 0.18 <= sum(served) / len(served) <= 0.32


def test_gold_falls_back_both_ways(runtime: Any) -> None:
    seeded = seed(runtime, items=2, gold=1, gold_rate=1.0, annotators=1)
    now = utcnow()
    with runtime.session() as s:
        gold = s.scalar(select(Task).where(Task.gold.is_(True)))
        a = lease(s, seeded, seeded.annotators[0], now)
        b = lease(s, seeded, seeded.annotators[0], now)  # no gold left: non-gold
        assert a is not None and b is not None and gold is not None
        assert a.task_id == gold.id and b.task_id != gold.id
        assert gold.gold_answer == '{"boxes": []}'
    seeded = seed(runtime, items=1, gold=1, gold_rate=0.0, annotators=1)
    with runtime.session() as s:
        assert lease(s, seeded, seeded.annotators[0], now) is not None  # only gold: gold


# --------------------------------------------------------------------------- progress
def test_progress_counts(runtime: Any) -> None:
    seeded = seed(runtime, items=3, overlap=2, gold=1)
    one, two, _ = seeded.annotators
    now = utcnow()
    with runtime.session() as s:
        empty = queue.progress(s, seeded.project_id)
        assert empty == {"tasks": 3, "gold_tasks": 1, "slots_left": 6, "leased": 0,
                         "submitted": 0, "accepted": 0, "rejected": 0, "released": 0,
                         "expired": 0, "skipped": 0}
        a, b, c, d = (lease(s, seeded, one, now), lease(s, seeded, one, now),
                      lease(s, seeded, two, now), lease(s, seeded, two, now))
        assert a and b and c and d
        queue.submit(s, a, "{}", now=now)
        queue.review(s, a, seeded.reviewer, False, None, now=now)
        queue.submit(s, b, "{}", now=now)
        queue.skip(s, c, now=now)
        p = queue.progress(s, seeded.project_id)
        assert (p["slots_left"], p["leased"], p["submitted"], p["rejected"],
                p["skipped"]) == (4, 1, 1, 1, 1)


# --------------------------------------------------------------------------- concurrency
@dataclass
class Tally:
    leases: int = 0
    retries: int = 0


# The runtime's pool holds 30 connections (gateway/db/engine.py). Like an HTTP server's
# worker threads, the simulated annotators share it: at most this many are inside a
# transaction at once, leaving room for the audit sequencer. Without the gate, 50 threads
# racing for 30 connections can starve one past the pool's 30 s checkout timeout on a
# loaded machine.
_IN_FLIGHT = threading.BoundedSemaphore(24)


def _in_transaction(runtime: Any, tally: Tally, work: Callable[[Session], T]) -> T:
    """Run ``work(session)`` and commit; retry the whole transaction on a transient
    database error (SQLite busy, PostgreSQL deadlock/serialization), like the HTTP layer."""
    for attempt in range(20):
        try:
            with _IN_FLIGHT, runtime.session() as s:
                result = work(s)
                s.commit()
                return result
        except OperationalError:
            tally.retries += 1
            time.sleep(0.01 * (attempt + 1))
    raise AssertionError("transaction kept failing")


def _take(seeded: Seeded, annotator: str, rng: random.Random) -> Callable[[Session], str | None]:
    def work(s: Session) -> str | None:
        a = lease(s, seeded, annotator, utcnow(), rng)
        return a.id if a else None
    return work


def _act(assignment_id: str, action: str) -> Callable[[Session], None]:
    """submit | release | skip. On a slow machine a short lease may run out first: the
    submission is refused, or the sweep got there before the release; either way the
    slot is back once, which is what the final checks verify."""
    def work(s: Session) -> None:
        a = s.get(Assignment, assignment_id)
        assert a is not None
        with contextlib.suppress(Conflict):
            if action == "submit":
                queue.submit(s, a, "{}", now=utcnow())
            else:
                getattr(queue, action)(s, a, now=utcnow())
    return work


def _run(runtime: Any, seeded: Seeded, worker: Callable[[str, Tally], None]
         ) -> tuple[float, Tally]:
    """One thread per annotator, each with its own sessions; returns the wall time and
    the summed tally."""
    tallies = {a: Tally() for a in seeded.annotators}
    errors: list[BaseException] = []

    def run(annotator: str) -> None:
        try:
            worker(annotator, tallies[annotator])
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(a,)) for a in seeded.annotators]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    elapsed = time.perf_counter() - started
    assert not any(t.is_alive() for t in threads)
    assert not errors, errors[:3]
    assert sum(1 for t in tallies.values() if t.leases) > 1  # the work was shared
    return elapsed, Tally(sum(t.leases for t in tallies.values()),
                          sum(t.retries for t in tallies.values()))


def _assert_complete(runtime: Any, seeded: Seeded, tasks: int, overlap: int) -> None:
    """Zero double leases, zero lost tasks: every task ends with exactly ``overlap``
    submissions from distinct annotators and no slot left."""
    with runtime.session() as s:
        rows = s.execute(select(Assignment.task_id, Assignment.annotator_id, Assignment.state)
                         .where(Assignment.project_id == seeded.project_id)).all()
        left = s.scalars(select(Task.slots_left)
                         .where(Task.project_id == seeded.project_id)).all()
    assert len({(t, a) for t, a, _ in rows}) == len(rows)  # never twice to one annotator
    submitted = Counter(t for t, _, state in rows if state == "submitted")
    assert len(submitted) == tasks and set(submitted.values()) == {overlap}
    assert "leased" not in {state for _, _, state in rows}
    assert len(left) == tasks and set(left) == {0}


def _report(runtime: Any, label: str, elapsed: float, tally: Tally) -> None:
    print(f"\n{runtime.engine.dialect.name} {label}: {tally.leases} leases in {elapsed:.1f}s "
          f"({tally.leases / elapsed:.0f} leases/s), {tally.retries} retried transactions")


def test_many_annotators_no_double_lease_no_lost_task(runtime: Any) -> None:
    """The acceptance run on PostgreSQL: 50 annotators pull and submit 2,000 tasks with
    overlap 2 (SQLite, which serializes writers, gets a smaller one)."""
    postgres = runtime.engine.dialect.name == "postgresql"
    annotators, tasks, overlap = (50, 2000, 2) if postgres else (8, 200, 2)
    seeded = seed(runtime, items=tasks, overlap=overlap, annotators=annotators)

    def worker(annotator: str, tally: Tally) -> None:
        rng = random.Random(annotator)
        while (assignment_id := _in_transaction(runtime, tally,
                                                _take(seeded, annotator, rng))) is not None:
            tally.leases += 1
            _in_transaction(runtime, tally, _act(assignment_id, "submit"))

    elapsed, tally = _run(runtime, seeded, worker)
    _report(runtime, f"{annotators} annotators x {tasks} tasks x overlap {overlap}",
            elapsed, tally)
    assert tally.leases == tasks * overlap  # every lease was submitted: none beyond overlap
    _assert_complete(runtime, seeded, tasks, overlap)


def test_release_skip_and_expiry_under_contention_lose_nothing(runtime: Any) -> None:
    """Annotators who release, skip and abandon leases (each abandons its first, which
    then expires): the slots come back and every task still ends fully annotated."""
    postgres = runtime.engine.dialect.name == "postgresql"
    annotators, tasks, overlap = (20, 300, 2) if postgres else (6, 60, 2)
    seeded = seed(runtime, items=tasks, overlap=overlap, annotators=annotators,
                  lease_seconds=2)

    def settled(s: Session) -> bool:
        p = queue.progress(s, seeded.project_id)
        return p["slots_left"] == 0 and p["leased"] == 0

    def worker(annotator: str, tally: Tally) -> None:
        rng = random.Random(seeded.annotators.index(annotator))
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assignment_id = _in_transaction(runtime, tally, _take(seeded, annotator, rng))
            if assignment_id is None:
                if _in_transaction(runtime, tally, settled):
                    return
                time.sleep(0.05)  # leases in flight may still come back
                continue
            tally.leases += 1
            if tally.leases == 1:
                continue  # abandoned: only expiry returns it
            roll = rng.random()
            action = "release" if roll < 0.1 else "skip" if roll < 0.2 else "submit"
            _in_transaction(runtime, tally, _act(assignment_id, action))
        raise AssertionError("the queue never settled")

    elapsed, tally = _run(runtime, seeded, worker)
    _report(runtime, f"churn, {annotators} annotators x {tasks} tasks", elapsed, tally)
    _assert_complete(runtime, seeded, tasks, overlap)
    with runtime.session() as s:
        p = queue.progress(s, seeded.project_id)
    # every abandoned first lease expired and came back (the set is complete); released
    # and expired rows may be leased again by their annotator, so rows <= leases
    assert p["skipped"] > 0
    assert sum(p[state] for state in queue.STATES) <= tally.leases
