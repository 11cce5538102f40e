"""The pull queue: annotators lease tasks one at a time, for a while, and hand them back.

A task carries ``slots_left``: how many more distinct annotators may still take it
(``overlap`` at the start). A lease takes a slot; expiry, release, skip and rejection
give it back; a submission keeps it. One assignment row per (task, annotator), guarded
by a unique constraint, so nobody is ever offered the same task twice, whatever became
of their first lease, and overlapping annotators never see each other's rows.

Concurrency (PostgreSQL, READ COMMITTED): the candidate task is locked with
``FOR UPDATE SKIP LOCKED`` so concurrent annotators spread over different rows instead
of queueing on the oldest one, and every slot change is a conditional UPDATE that only
succeeds from the expected state, so each transition (and its slot) happens exactly
once even when two requests race. On SQLite the engine opens every transaction with
``BEGIN IMMEDIATE``: writers are serialized and the row lock is a no-op.

Functions flush but never commit: the HTTP layer commits them with its audit event.
Every ``now`` is normalized to aware UTC because SQLite stores datetimes as text without
their offset; all time comparisons happen in SQL, on values written the same way.
"""

from __future__ import annotations

import functools
import random
import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple, TypeVar, cast

from sqlalchemy import Table, bindparam, case, func, literal_column, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.expression import ColumnClause

from gateway.db.models import Assignment, Item, Project, Task, new_id
from gateway.errors import Conflict

STATES = ("leased", "submitted", "accepted", "rejected", "released", "expired", "skipped")

# Refresh objects already loaded in the session from the RETURNING row; no evaluation of
# the WHERE clause in Python (it would compare SQLite's naive datetimes with aware ones).
_RETURNING: dict[str, Any] = {"synchronize_session": False, "populate_existing": True}
_CHUNK = 500  # ids per IN (...) list: well below SQLite's bound-parameter limit
_ANALYZE_AFTER = 100  # tasks added at once (autovacuum's own threshold is 50 + 10%)

T = TypeVar("T")


# --------------------------------------------------------------------------- tasks
# Ended leases after which the same annotator may be offered the task again.
RETURNABLE = ("released", "expired")


def add_tasks(session: Session, project: Project, items: list[tuple[str, int, int]]) -> int:
    """Create a task per (item_id, width, height) not yet tasked; returns how many.

    Fails closed: an item that is not a ready item of the project's dataset is refused
    (Conflict ``item_not_ready``) rather than skipped, so nothing unanonymized is queued.
    """
    sizes: dict[str, tuple[int, int]] = {}
    for item_id, width, height in items:
        sizes.setdefault(item_id, (width, height))
    ids = list(sizes)
    ready = _existing(session, ids, lambda chunk: select(Item.id).where(
        Item.id.in_(chunk), Item.dataset_id == project.dataset_id, Item.status == "ready"))
    if len(ready) != len(ids):
        raise Conflict("only ready items of the project's dataset can become tasks",
                       reason="item_not_ready")
    tasked = _existing(session, ids, lambda chunk: select(Task.item_id).where(
        Task.project_id == project.id, Task.item_id.in_(chunk)))
    fresh = [item_id for item_id in ids if item_id not in tasked]
    session.add_all(Task(project_id=project.id, item_id=item_id, width=sizes[item_id][0],
                         height=sizes[item_id][1], slots_left=project.overlap, gold=False)
                    for item_id in fresh)
    session.flush()
    if len(fresh) >= _ANALYZE_AFTER and session.get_bind().dialect.name == "postgresql":
        # Fresh statistics now, not when autovacuum gets round to it: with the table's old
        # ones (a few open tasks) the planner would fetch and sort every open task for
        # each pick instead of walking the queue's index to the first free one. A small
        # batch cannot make them that wrong, and is not worth sampling the table for.
        session.execute(text("ANALYZE tasks"))
    return len(fresh)


def set_gold(session: Session, task: Task, answer_json: str) -> None:
    """Mark a task as gold with its known answer (validated by the caller)."""
    task.gold = True
    task.gold_answer = answer_json
    session.flush()


# --------------------------------------------------------------------------- leasing
class Lease(NamedTuple):
    assignment: Assignment
    task: Task


def lease_next(session: Session, project: Project, annotator_id: str, *, now: datetime,
               rng: random.Random) -> Lease | None:
    """Lease the oldest task this annotator never had; None when nothing is left for them.

    Gold is preferred with probability ``gold_rate`` (falling back to the other kind).
    The first two picks skip rows other transactions hold, so concurrent annotators do
    not wait on each other. If both come back empty, the last pick waits for those rows:
    otherwise an annotator could be told "nothing left" only because the remaining tasks
    were briefly locked by leases that end up leaving a slot free, and at the tail of
    the queue such a slot would be stranded.

    Expired leases are swept at most every ``SWEEP_SECONDS`` per project on this path
    (the sweep is a write every request would otherwise make), and always before saying
    "nothing left": a slot held by a dead lease is never stranded, at worst offered a
    few seconds after its expiry while other work is waiting anyway.
    """
    now = _utc(now)
    swept = _SWEEPS.due(project.id, now)
    if swept:
        expire_leases(session, project.id, now=now)
    want_gold = project.gold_rate > 0 and rng.random() < project.gold_rate
    while True:
        for gold, skip_locked in ((want_gold, True), (not want_gold, True), (None, False)):
            task = _take_slot(session, project.id, annotator_id, gold=gold,
                              skip_locked=skip_locked)
            if task is not None:
                return Lease(_new_lease(session, project, task, annotator_id, now), task)
        if swept or expire_leases(session, project.id, now=now) == 0:
            return None
        swept = True


class _SweepClock:
    """When each project's expired leases were last swept by this process."""

    def __init__(self, every: timedelta) -> None:
        self._every, self._last, self._lock = every, dict[str, datetime](), threading.Lock()

    def due(self, project_id: str, now: datetime) -> bool:
        with self._lock:
            last = self._last.get(project_id)
            if last is not None and last <= now < last + self._every:
                return False
            self._last[project_id] = now
            return True


SWEEP_SECONDS = 5
_SWEEPS = _SweepClock(timedelta(seconds=SWEEP_SECONDS))
# A literal, not a bound parameter: a prepared statement's generic plan can only use the
# partial index (WHERE slots_left > 0) if the query says "> 0" in so many words. The
# same for the constant states (no expanding IN parameter either).
_ZERO: ColumnClause[Any] = literal_column("0")
_RETURNABLE_SQL: list[ColumnClause[Any]] = [literal_column(f"'{state}'") for state in RETURNABLE]
# The hot statements are written on the tables and loaded as ORM objects with
# ``from_statement``: the ORM's bulk UPDATE/INSERT machinery costs more than the SQL.
_TASKS = cast(Table, Task.__table__)
_ASSIGNMENTS = cast(Table, Assignment.__table__)


def _take_slot(session: Session, project_id: str, annotator_id: str, *, gold: bool | None,
               skip_locked: bool) -> Task | None:
    """Pick the oldest open task of a still-ready item that this annotator has no row for,
    and take one of its slots, in one statement: ``UPDATE ... WHERE id = (SELECT ... FOR
    UPDATE SKIP LOCKED)``. The ``slots_left > 0`` condition on the update makes "never
    beyond the overlap" hold by itself, whatever the isolation level or lock support.

    Fail closed: a task whose item is no longer ready (erased, withdrawn) is never offered.
    The pick walks the partial index of open tasks (``ix_tasks_open``) in queue order; the
    annotator's own row and the item's status are per-row subplans (index probes), never
    joins the planner could turn into a scan of every assignment; ``add_tasks`` refreshes
    the statistics, so the planner knows the queue is long and walks it in index order
    (with stale ones it fetched and sorted every open task for each pick).
    """
    stmt = _take_statement(gold, skip_locked)
    return session.scalars(stmt, {"b_project": project_id, "b_annotator": annotator_id},
                           execution_options=_RETURNING).first()


@functools.cache
def _take_statement(gold: bool | None, skip_locked: bool) -> Any:
    """Built once per variant (building it costs more than running it), with the project
    and annotator as bound parameters (named apart from the columns: SQLAlchemy keeps
    column names for an UPDATE's or INSERT's own values)."""
    candidate = aliased(Task)  # the inner pick, not correlated with the outer UPDATE
    held = (select(Assignment.id).where(Assignment.task_id == candidate.id,
                                        Assignment.annotator_id == bindparam("b_annotator"),
                                        Assignment.state.not_in(_RETURNABLE_SQL))
            .limit(1).scalar_subquery())
    item_status = select(Item.status).where(Item.id == candidate.item_id).scalar_subquery()
    pick = select(candidate.id).where(candidate.project_id == bindparam("b_project"),
                                      candidate.slots_left > _ZERO, held.is_(None),
                                      item_status == "ready")
    if gold is not None:
        pick = pick.where(candidate.gold.is_(gold))
    pick = (pick.order_by(candidate.created_at, candidate.id).limit(1)
            .with_for_update(of=candidate, skip_locked=skip_locked))
    take = (update(_TASKS)
            .where(_TASKS.c.id == pick.scalar_subquery(), _TASKS.c.slots_left > 0)
            .values(slots_left=_TASKS.c.slots_left - 1).returning(*_TASKS.c))
    return select(Task).from_statement(take)


def _new_lease(session: Session, project: Project, task: Task, annotator_id: str,
               now: datetime) -> Assignment:
    """A new lease row, or this annotator's own released or expired row leased again (a
    task handed back, or left to expire, may come back to the same person; one skipped,
    submitted or reviewed never does): one upsert on the unique (task, annotator) row,
    which is the last word on double leases. It updates nothing when the row is in any
    other state: only a concurrent request of the same annotator that took this task an
    instant earlier gets there, and this one is refused (its slot rolls back with it)."""
    expires = now + timedelta(seconds=project.lease_seconds)
    stmt = _lease_statement(session.get_bind().dialect.name)
    lease = session.scalars(stmt, {
        "b_id": new_id(), "b_task": task.id, "b_project": project.id,
        "b_annotator": annotator_id, "b_expires": expires, "b_now": now},
        execution_options=_RETURNING).first()
    if lease is None:
        raise Conflict("another lease request of yours is in progress; retry",
                       reason="lease_in_progress")
    return lease


@functools.cache
def _lease_statement(dialect: str) -> Any:
    """The upsert, built once per dialect (PostgreSQL and SQLite spell ON CONFLICT alike)."""
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    table = _ASSIGNMENTS
    upsert = (insert(table)
              .values(id=bindparam("b_id"), task_id=bindparam("b_task"),
                      project_id=bindparam("b_project"), annotator_id=bindparam("b_annotator"),
                      state="leased", lease_expires_at=bindparam("b_expires"),
                      created_at=bindparam("b_now"), updated_at=bindparam("b_now"))
              .on_conflict_do_update(
                  index_elements=[table.c.task_id, table.c.annotator_id],
                  set_={"state": "leased", "lease_expires_at": bindparam("b_expires"),
                        "updated_at": bindparam("b_now")},
                  where=table.c.state.in_(_RETURNABLE_SQL))
              .returning(*table.c))
    return select(Assignment).from_statement(upsert)


def expire_leases(session: Session, project_id: str, *, now: datetime) -> int:
    """Turn leases past their expiry into ``expired`` and give their slots back.

    One conditional UPDATE ... RETURNING: a lease being submitted, released or expired
    by a concurrent request is counted by exactly one of them.
    """
    now = _utc(now)
    stmt = (update(Assignment)
            .where(Assignment.project_id == project_id, Assignment.state == "leased",
                   Assignment.lease_expires_at < now)
            .values(state="expired", updated_at=now).returning(Assignment))
    expired = session.scalars(stmt, execution_options=_RETURNING).all()
    _give_back(session, [a.task_id for a in expired])
    return len(expired)


# --------------------------------------------------------------------------- one lease
def renew(session: Session, assignment: Assignment, *, now: datetime) -> None:
    """Extend a live lease by the project's ``lease_seconds`` from ``now``."""
    now = _utc(now)
    project = session.get(Project, assignment.project_id)
    assert project is not None
    if not _move(session, assignment, "leased", now, live=True,
                 lease_expires_at=now + timedelta(seconds=project.lease_seconds)):
        raise _lease_refusal(session, assignment)


def release(session: Session, assignment: Assignment, *, now: datetime) -> None:
    """Hand a leased task back unworked so another annotator can take the slot. An expired
    but unswept lease may be released too: the conditional move gives its slot back
    exactly once, whichever of release and sweep gets there first."""
    _end_lease(session, assignment, "released", now)


def skip(session: Session, assignment: Assignment, *, now: datetime) -> None:
    """Decline a task: its slot goes back, and the row stays, so it is never re-offered
    to this annotator."""
    _end_lease(session, assignment, "skipped", now)


def _end_lease(session: Session, assignment: Assignment, state: str, now: datetime) -> None:
    now = _utc(now)
    if not _move(session, assignment, "leased", now, state=state):
        raise Conflict("the assignment is not leased", reason="not_leased")
    _give_back(session, [assignment.task_id])


def submit(session: Session, assignment: Assignment, annotation_json: str, *,
           now: datetime) -> None:
    """Store a (validated) annotation; the slot stays taken. Refused once the lease has
    expired, even before the sweep: the task may already be promised to someone else."""
    now = _utc(now)
    if not _move(session, assignment, "leased", now, live=True,
                 state="submitted", annotation=annotation_json, submitted_at=now):
        raise _lease_refusal(session, assignment)


def review(session: Session, assignment: Assignment, reviewer_id: str, accept: bool,
           comment: str | None, *, now: datetime) -> None:
    """Accept or reject a submission. A rejection gives the slot back, so the item goes to
    another annotator (never the same one: their row stays)."""
    now = _utc(now)
    state = "accepted" if accept else "rejected"
    if not _move(session, assignment, "submitted", now, state=state, reviewed_by=reviewer_id,
                 review_comment=comment):
        raise Conflict("the assignment is not awaiting review", reason="not_submitted")
    if not accept:
        _give_back(session, [assignment.task_id])


# --------------------------------------------------------------------------- reporting
def progress(session: Session, project_id: str) -> dict[str, int]:
    """Task and slot totals and assignments per state (leases past expiry but not yet
    swept still count as leased: reading does not write)."""
    tasks, gold, slots = session.execute(
        select(func.count(Task.id), func.coalesce(func.sum(case((Task.gold, 1), else_=0)), 0),
               func.coalesce(func.sum(Task.slots_left), 0))
        .where(Task.project_id == project_id)).one()
    rows = session.execute(select(Assignment.state, func.count(Assignment.id))
                           .where(Assignment.project_id == project_id)
                           .group_by(Assignment.state)).all()
    by_state = {state: int(count) for state, count in rows}
    return {"tasks": int(tasks), "gold_tasks": int(gold), "slots_left": int(slots),
            **{state: by_state.get(state, 0) for state in STATES}}


# --------------------------------------------------------------------------- helpers
def _move(session: Session, assignment: Assignment, from_state: str, now: datetime, *,
          live: bool = False, **values: Any) -> bool:
    """Conditional state change of one assignment (``live``: only while its lease has not
    expired); True if this call made it. The in-session object is refreshed from the
    RETURNING row."""
    stmt = _move_statement(from_state, live, tuple(sorted(values)))
    params = {"b_id": assignment.id, "b_now": now,
              **{f"b_{key}": value for key, value in values.items()}}
    return session.scalars(stmt, params, execution_options=_RETURNING).first() is not None


@functools.cache
def _move_statement(from_state: str, live: bool, keys: tuple[str, ...]) -> Any:
    """One UPDATE per kind of transition, built once, values as bound parameters."""
    table = _ASSIGNMENTS
    stmt = update(table).where(table.c.id == bindparam("b_id"), table.c.state == from_state)
    if live:
        stmt = stmt.where(table.c.lease_expires_at >= bindparam("b_now"))
    stmt = stmt.values(updated_at=bindparam("b_now"),
                       **{key: bindparam(f"b_{key}") for key in keys})
    return select(Assignment).from_statement(stmt.returning(*table.c))


def _lease_refusal(session: Session, assignment: Assignment) -> Conflict:
    session.refresh(assignment)
    if assignment.state != "leased":
        return Conflict("the assignment is not leased", reason="not_leased")
    return Conflict("the lease has expired", reason="lease_expired")


def _give_back(session: Session, task_ids: Iterable[str]) -> None:
    """One slot back per entry; tasks in id order so concurrent sweeps lock alike."""
    for task_id, count in sorted(Counter(task_ids).items()):
        stmt = (update(Task).where(Task.id == task_id)
                .values(slots_left=Task.slots_left + count).returning(Task))
        session.scalars(stmt, execution_options=_RETURNING).all()


def _existing(session: Session, ids: Sequence[str], query: Any) -> set[str]:
    found: set[str] = set()
    for chunk in _chunks(ids, _CHUNK):
        found.update(session.scalars(query(chunk)))
    return found


def _chunks(values: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


def _utc(moment: datetime) -> datetime:
    """Aware UTC (a naive value is taken as UTC): SQLite keeps only the digits, so every
    stored or compared datetime must be in the same zone to order correctly."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
