"""The tamper suite: every way of falsifying an export is caught, and named.

Synthetic logs of 20-200 events, signed with the modules under test, no database. Each
attack runs TRIALS randomized times (seeded, so a failure replays) and must be detected
every time. Where the attacker leaves the rows' positions as they were (editing a file
or a table row by row), the verifier must name the very position tampered with. Where
the attacker rewrites the log consistently (renumbered positions, recomputed leaf
hashes), only the signed roots can tell, so detection is asserted without a position.
"""

from __future__ import annotations

import functools
import io
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import pytest

from audit.checkpoint import generate_signing_key, sign_checkpoint
from audit.events import ACTIONS, Event
from audit.export import ExportEntry, read_export, write_export
from audit.merkle import RootBuilder
from audit.verify import VerificationError, verify_export

pytestmark = pytest.mark.unit

TRIALS = 200
ORIGIN = "gateway.example/audit"
PRIVATE, VKEY = generate_signing_key(ORIGIN, seed=b"\x11" * 32)
_ACTIONS = sorted(ACTIONS)


def event(rng: random.Random) -> Event:
    return Event(
        rng.choice(_ACTIONS),
        outcome=rng.choice(("ok", "ok", "denied", "error")),
        actor_id=f"u{rng.randrange(40)}",
        object_id=f"{rng.getrandbits(64):016x}",
        time=f"2026-03-{rng.randrange(1, 29):02d}T12:00:00.000000Z",
        event_id=f"{rng.getrandbits(128):032x}",
    )


def entry(position: int, ev: Event) -> ExportEntry:
    return ExportEntry.from_canonical(position, ev.canonical())


def sign(items: list[ExportEntry], sizes: set[int], private: bytes = PRIVATE) -> list[str]:
    """Checkpoints at ``sizes``, with roots computed from the items' recorded leaf hashes."""
    builder, notes = RootBuilder(), []
    for item in items:
        builder.append(bytes.fromhex(item.leaf_hash))
        if builder.size in sizes:
            notes.append(sign_checkpoint(ORIGIN, builder.size, builder.root(), ORIGIN, private))
    return notes


@dataclass
class Log:
    items: list[ExportEntry]
    notes: list[str]

    def renumbered(self) -> list[ExportEntry]:
        return [e._replace(position=i) for i, e in enumerate(self.items)]


@functools.cache
def pool() -> list[bytes]:
    """Canonical events to draw logs from: Event.canonical() is too slow to call 400,000
    times in a unit test, and random draws from a pool are random logs all the same."""
    rng = random.Random("pool")
    return [event(rng).canonical() for _ in range(1000)]


def genuine(rng: random.Random) -> Log:
    """A random log of 20-200 distinct events, signed at its full size and one other."""
    n = rng.randint(20, 200)
    items = [ExportEntry.from_canonical(i, c) for i, c in enumerate(rng.sample(pool(), n))]
    return Log(items, sign(items, {n, rng.randint(1, n)}))


def check(
    log: Log, vkey: str | None = VKEY, held: Sequence[str] = (), export_key: str = VKEY
) -> VerificationError | None:
    """Round-trip through the JSONL file format, then verify; the error, if any.

    ``vkey`` is the key the auditor trusts (None: the export's own ``export_key``).
    """
    fp = io.StringIO()
    write_export(log.items, log.notes, export_key, fp)
    export = read_export(io.StringIO(fp.getvalue()))
    try:
        verify_export(export, vkey, [(f"held {i}", n) for i, n in enumerate(held)])
    except VerificationError as exc:
        return exc
    return None


def trials(attack: Callable[[random.Random], None]) -> None:
    for seed in range(TRIALS):
        attack(random.Random(f"{attack.__name__}:{seed}"))


def test_genuine_logs_verify() -> None:
    def genuine_log(rng: random.Random) -> None:
        log = genuine(rng)
        assert check(log) is None
        assert check(log, held=log.notes) is None

    trials(genuine_log)


# -- row by row: positions travel with the rows, the exact position is named ----------


def test_edit_is_named_by_position() -> None:
    def edit(rng: random.Random) -> None:
        log = genuine(rng)
        k = rng.randrange(len(log.items))
        ev = Event.from_canonical(log.items[k].entry.encode())
        outcome = "ok" if ev.outcome != "ok" else "denied"
        forged = replace(ev, actor_id="someone-else", outcome=outcome)
        log.items[k] = log.items[k]._replace(entry=forged.canonical().decode())
        error = check(log)
        assert error is not None and error.position == k
        assert f"entry at position {k}: leaf hash does not match its content" in str(error)

    trials(edit)


def test_delete_is_named_by_position() -> None:
    def delete(rng: random.Random) -> None:
        log = genuine(rng)
        k = rng.randrange(len(log.items))
        del log.items[k]
        error = check(log)
        assert error is not None and error.position == k, error
        assert ("truncated" if k == len(log.items) else "missing") in str(error)

    trials(delete)


def test_reorder_is_named_by_position() -> None:
    def reorder(rng: random.Random) -> None:
        log = genuine(rng)
        i, j = sorted(rng.sample(range(len(log.items)), 2))
        log.items[i], log.items[j] = log.items[j], log.items[i]
        error = check(log)
        assert error is not None and error.position == i, error
        assert f"entry at position {i}: out of order" in str(error)

    trials(reorder)


def test_insert_is_named_by_position() -> None:
    def insert(rng: random.Random) -> None:
        log = genuine(rng)
        k = rng.randint(0, len(log.items))  # anywhere, including after the last entry
        log.items.insert(k, entry(k, event(rng)))  # a well-formed event claiming position k
        error = check(log)
        assert error is not None and error.position == k, error

    trials(insert)


def test_truncation_is_detected() -> None:
    def truncate(rng: random.Random) -> None:
        log = genuine(rng)
        latest = log.notes[-1]
        keep = rng.randrange(len(log.items))
        del log.items[keep:]
        error = check(log)
        assert error is not None and error.position == keep and "truncated" in str(error)
        # A careful attacker also drops the checkpoints that betray the cut and stops
        # at a signed size; the checkpoint the auditor kept from before still does.
        log.notes = sign(log.items, {keep} if keep else set())
        error = check(log, held=[latest])
        assert error is not None and "truncated" in str(error)

    trials(truncate)


# -- consistent rewrites: only signatures and held checkpoints can tell ----------------


def rewrite(rng: random.Random, log: Log, upto: int) -> int:
    """Edit one entry below ``upto`` and recompute every leaf hash: a perfect forgery."""
    k = rng.randrange(upto)
    ev = Event.from_canonical(log.items[k].entry.encode())
    log.items[k] = entry(k, replace(ev, reason="forged.history"))
    return k


def test_consistent_rewrite_without_resigning_is_detected() -> None:
    def edit_and_rehash(rng: random.Random) -> None:
        log = genuine(rng)
        rewrite(rng, log, len(log.items))
        error = check(log)
        assert error is not None and "do not hash to its signed root" in str(error)
        i, j = sorted(rng.sample(range(len(log.items)), 2))
        log.items[i], log.items[j] = log.items[j], log.items[i]  # and reorder, renumbered
        log.items = log.renumbered()
        assert check(log) is not None

    trials(edit_and_rehash)


def test_fork_resigned_with_the_same_key_is_exposed_by_a_held_checkpoint() -> None:
    def fork(rng: random.Random) -> None:
        log = genuine(rng)
        seen = rng.randint(1, len(log.items))  # what the auditor saw in an earlier export
        held = sign(log.items, {seen})
        rewrite(rng, log, seen)
        log.notes = sign(log.items, {len(log.items), rng.randint(1, len(log.items))})
        assert check(log) is None  # internally consistent: only the held checkpoint tells
        error = check(log, held=held)
        assert error is not None and str(error).startswith("fork: held 0"), error

    trials(fork)


def test_resigning_with_another_key_is_refused() -> None:
    def another_key(rng: random.Random) -> None:
        log = genuine(rng)
        held = log.notes[-1:]
        rewrite(rng, log, len(log.items))
        forger, forger_vkey = generate_signing_key(ORIGIN)  # same name, another key
        log.notes = sign(log.items, {len(log.items)}, forger)
        error = check(log, VKEY)  # the auditor has the real key
        assert error is not None and "not signed by key" in str(error)
        # Even trusting the key the forger put in the export, the held checkpoint fails.
        error = check(log, None, held=held, export_key=forger_vkey)
        assert error is not None and "held 0: note is not signed by key" in str(error)

    trials(another_key)
