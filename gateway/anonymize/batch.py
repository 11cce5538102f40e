"""Offline batch anonymization: files in, anonymized files out, no server.

Images need no keys. DICOM files (recognized by content) need the deployment's pseudonym
secret, so that UIDs and patient pseudonyms match what the server produces: the CLI
passes a callable that reads it from the configured key provider (or ``--secret-file``).

``gateway anonymize PATH... --out DIR`` is built from the small steps here:

* :func:`plan` walks the inputs (folders recursively, hidden entries and non-regular
  files skipped) and maps every file to the same relative path under ``--out``; it
  refuses (:class:`UsageError`) anything that could overwrite an input.
* :func:`run` anonymizes the planned files: in-process for a single file, otherwise in a
  spawn-context process pool whose initializer receives the parsed policy and warms the
  models once per worker.
* :func:`anonymize_file` is one item: read, ``anonymize_image``, write atomically (a
  temporary file in the target folder, then ``os.replace``), so an output is either
  complete or absent.

Outcomes, deliberately simple:

* ``ok``: the engine returned an image; it was written.
* ``skipped``: not ours to judge: the engine does not recognize the content as an image
  (``unsupported_type``; the type is sniffed from the bytes, never the extension), a
  hidden file (``hidden``) or not a regular file (``not_regular_file``).
* ``quarantined``: an image we could not anonymize safely: ``AnonymizationFailed`` with
  its reason (``leak_gate``, ``detector_error``, ...), an image the engine refuses as
  invalid or corrupt (its reason: ``corrupt``, ``empty``, ``multi_frame``,
  ``too_many_pixels``, ...), or an I/O error. No output file exists for it (a stale one
  left by an earlier run at the same path is removed).

Nothing from file content reaches the report or messages: only relative paths, reason
codes and the engine's own report (regions, timings, names of removed metadata).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import stat
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.anonymize.detectors import registry
from gateway.anonymize.dicom import HEAD, Pseudonymizer, anonymize_dicom, looks_like_dicom
from gateway.anonymize.image import anonymize_image
from gateway.errors import AnonymizationFailed, InvalidUpload, UnsupportedMediaType
from policies import Policy, load_policy

OK = "ok"
QUARANTINED = "quarantined"
SKIPPED = "skipped"


class UsageError(Exception):
    """The command line cannot be carried out (bad paths, overwrite risk)."""


class BatchAborted(Exception):
    """A worker process died; items after it were not processed (outputs stay complete)."""


@dataclass(frozen=True)
class Job:
    """One input file and where its anonymized copy goes."""

    source: Path
    target: Path
    rel: str  # relative path, the same for input and output (POSIX separators)


@dataclass(frozen=True)
class Outcome:
    input: str
    output: str | None
    status: str  # OK | QUARANTINED | SKIPPED
    reason: str | None = None
    report: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"input": self.input, "output": self.output, "status": self.status,
                "reason": self.reason, "report": self.report}


@dataclass(frozen=True)
class Plan:
    jobs: list[Job]
    skipped: list[Outcome]  # hidden / non-regular entries found while walking


@dataclass
class BatchResult:
    policy: Policy
    items: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0

    def count(self, status: str) -> int:
        return sum(1 for item in self.items if item.status == status)

    @property
    def ok(self) -> bool:
        return self.count(QUARANTINED) == 0

    def summary(self) -> dict[str, Any]:
        """Counts and throughput; images/s counts every image the engine handled."""
        handled = self.count(OK) + self.count(QUARANTINED)
        rate = handled / self.seconds if self.seconds > 0 else 0.0
        return {"processed": self.count(OK), "quarantined": self.count(QUARANTINED),
                "skipped": self.count(SKIPPED), "seconds": round(self.seconds, 3),
                "images_per_second": round(rate, 3)}

    def as_dict(self) -> dict[str, Any]:
        return {"policy": {"id": self.policy.id, "sha256": self.policy.sha256},
                "summary": self.summary(),
                "items": [item.as_dict() for item in self.items]}

    def summary_line(self) -> str:
        s = self.summary()
        return (f"{s['processed']} anonymized, {s['quarantined']} quarantined, "
                f"{s['skipped']} skipped in {s['seconds']:.1f} s "
                f"({s['images_per_second']:.2f} images/s)")


# --------------------------------------------------------------------------- planning


def plan(inputs: Sequence[Path], out: Path) -> Plan:
    """Map every input file to its output; refuse anything that could overwrite an input."""
    if not inputs:
        raise UsageError("no input paths given")
    out_abs = _absolute(out)
    if out_abs.exists() and not out_abs.is_dir():
        raise UsageError(f"--out {out} exists and is not a folder")
    jobs: list[Job] = []
    skipped: list[Outcome] = []
    for arg in inputs:
        if not arg.exists():
            raise UsageError(f"no such file or folder: {arg}")
        if arg.is_dir():
            root = _absolute(arg)
            if out_abs == root or root in out_abs.parents:
                raise UsageError(f"--out {out} is inside the input folder {arg}")
            for rel, kind in _walk(root):
                if kind == "file":
                    jobs.append(Job(root / rel, out_abs / rel, rel.as_posix()))
                else:
                    skipped.append(Outcome(rel.as_posix(), None, SKIPPED, kind))
        elif arg.is_file():
            jobs.append(Job(_absolute(arg), out_abs / arg.name, arg.name))
        else:
            skipped.append(Outcome(arg.name, None, SKIPPED, "not_regular_file"))
    _refuse_collisions(jobs)
    return Plan(jobs, skipped)


def _absolute(path: Path) -> Path:
    return Path(os.path.realpath(path))


def _walk(root: Path, rel: Path = Path()) -> Iterator[tuple[Path, str]]:
    """Yield (relative path, "file" | skip reason) in sorted order; no symlinks followed."""
    with os.scandir(root / rel) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        path = rel / entry.name
        if entry.is_dir(follow_symlinks=False):
            if not entry.name.startswith("."):  # .git, .cache, ...: not descended
                yield from _walk(root, path)
        elif entry.name.startswith("."):
            yield path, "hidden"
        elif entry.is_file(follow_symlinks=False):
            yield path, "file"
        else:  # symlink, fifo, socket, device
            yield path, "not_regular_file"


def check_report_path(report: Path, plan_: Plan) -> None:
    """The report must not replace an input file."""
    if _absolute(report) in {job.source for job in plan_.jobs}:
        raise UsageError(f"--report {report} would overwrite an input")
    if _absolute(report).is_dir():
        raise UsageError(f"--report {report} is a folder")


def _refuse_collisions(jobs: Iterable[Job]) -> None:
    sources = {job.source for job in jobs}
    seen: dict[Path, str] = {}
    for job in jobs:
        if job.target in sources:
            raise UsageError(f"--out would overwrite the input {job.rel}")
        if job.target in seen:
            raise UsageError(f"two inputs map to the same output {job.rel}")
        seen[job.target] = job.rel


# --------------------------------------------------------------------------- one item


def anonymize_file(job: Job, policy: Policy, secret: Callable[[], bytes] | None = None) -> Outcome:
    """Anonymize one file; never raises for a bad item, only returns its outcome.

    The engine is chosen by content: DICOM (Part 10 or a bare dataset) goes to the DICOM
    engine with the pseudonym secret ``secret()`` returns, anything else to the image one.
    """
    try:
        data = job.source.read_bytes()
    except OSError:
        return _quarantine(job, "read_failed")
    try:
        if looks_like_dicom(data[:HEAD]):
            if secret is None:
                return _quarantine(job, "pseudonym_secret_unavailable")
            dicom = anonymize_dicom(data, policy, Pseudonymizer(
                secret(), policy.dicom.date_shift_days))
            result_data, report = dicom.data, dicom.report
        else:
            image = anonymize_image(data, policy.image)
            result_data, report = image.data, image.report
    except UnsupportedMediaType:
        _remove_stale(job.target)
        return Outcome(job.rel, None, SKIPPED, "unsupported_type")
    except AnonymizationFailed as exc:
        return _quarantine(job, exc.reason)
    except InvalidUpload as exc:
        return _quarantine(job, str(exc.extensions.get("reason", exc.code)))
    except Exception:  # an engine bug: fail closed; its text may echo content
        return _quarantine(job, "internal_error")
    try:
        write_atomic(job.target, result_data)
    except OSError:
        return _quarantine(job, "write_failed")
    return Outcome(job.rel, job.rel, OK, None, report)


def _quarantine(job: Job, reason: str) -> Outcome:
    _remove_stale(job.target)
    return Outcome(job.rel, None, QUARANTINED, reason)


def _remove_stale(target: Path) -> None:
    """An output from an earlier run must not pass for this run's result."""
    try:
        if stat.S_ISREG(target.lstat().st_mode):
            target.unlink()
    except OSError:
        pass


def write_atomic(target: Path, data: bytes) -> None:
    """Write ``data`` to ``target`` completely or not at all (temp file + os.replace)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), 0o666 & ~_umask())
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# --------------------------------------------------------------------------- running


def prepare_policy(source: str | None) -> Policy:
    """Load and check the policy; PolicyError and DetectorUnavailable propagate."""
    policy = load_policy(source)
    registry.check_policy(policy.image)
    return policy


def run(plan_: Plan, policy_source: str | None, workers: int | None = None,
        secret: Callable[[], bytes] | None = None) -> BatchResult:
    """Anonymize every planned file; outcomes are sorted by input path.

    ``secret`` gives the pseudonym secret; it is asked for once, and only when an input
    is DICOM (an image-only run needs no keys).
    """
    policy = prepare_policy(policy_source)
    n = min(workers or os.cpu_count() or 1, len(plan_.jobs))
    key = _secret_if_needed(plan_, secret)
    start = time.perf_counter()
    if n <= 1:
        registry.warm_up(policy.image)
        outcomes = [anonymize_file(job, policy, key) for job in plan_.jobs]
    else:
        outcomes = _run_pool(plan_.jobs, policy, n, key)
    seconds = time.perf_counter() - start
    items = sorted([*plan_.skipped, *outcomes], key=lambda item: item.input)
    return BatchResult(policy, items, seconds)


def _secret_if_needed(plan_: Plan,
                      secret: Callable[[], bytes] | None) -> Callable[[], bytes] | None:
    if secret is None or not any(_is_dicom(job.source) for job in plan_.jobs):
        return None
    value = secret()  # raises UsageError if it cannot be had
    return lambda: value


def _is_dicom(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            return looks_like_dicom(fh.read(HEAD))
    except OSError:
        return False


_worker_policy: Policy | None = None
_worker_secret: bytes | None = None


def _init_worker(policy: Policy, secret: bytes | None) -> None:
    """Pool initializer: take the parsed policy and load its models once per worker.

    The policy travels already parsed (a frozen dataclass), so every worker runs exactly
    the policy whose id and hash the report records, even if its file changes meanwhile.
    """
    global _worker_policy, _worker_secret
    registry.warm_up(policy.image)
    _worker_policy = policy
    _worker_secret = secret


def _work(job: Job) -> Outcome:
    if _worker_policy is None:
        raise RuntimeError("worker used without its initializer")
    secret = _worker_secret
    return anonymize_file(job, _worker_policy, None if secret is None else lambda: secret)


def _run_pool(jobs: list[Job], policy: Policy, workers: int,
              secret: Callable[[], bytes] | None) -> list[Outcome]:
    ctx = multiprocessing.get_context("spawn")
    initargs = (policy, secret() if secret is not None else None)
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx,
                             initializer=_init_worker, initargs=initargs) as pool:
        try:
            return list(pool.map(_work, jobs, chunksize=1))
        except BrokenProcessPool:
            raise BatchAborted("a worker process died; the run is incomplete") from None


def write_report(path: Path, result: BatchResult) -> None:
    text = json.dumps(result.as_dict(), indent=2, sort_keys=False) + "\n"
    write_atomic(_absolute(path), text.encode("utf-8"))
