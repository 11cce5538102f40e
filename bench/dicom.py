"""DICOM benchmark: header de-identification files/s vs dicognito and a plain read + write.

Part 1 (header only): the eval files that need no pixel cleaning, i.e. those under
``pydicom/`` whose Modality is CT, MR, NM, RTDOSE, RTPLAN or RTSTRUCT (read from each
file's header), are read into memory once. Three contenders then run over all of them,
in memory (``BytesIO`` in and out, no disk):

* plain: ``pydicom.dcmread(force=True)`` + ``save_as``: the I/O floor of any pydicom tool;
* dicognito: the same read, ``dicognito.anonymizer.Anonymizer().anonymize(ds)``, the same
  write (dicognito does no pixel work, so this compares like with like);
* ours: ``anonymize_dicom(data, policy, Pseudonymizer(secret))`` with the default policy
  minus the two pixel options (``clean_pixel_data``, ``clean_recognizable_visual_features``).
  This includes what the engine always does: the full parse, the output re-read and check.

Every file is handled as a separate upload: a fresh ``Anonymizer`` / ``Pseudonymizer`` per
file for both tools (both cost ~20 us to make; no UID cache carries over between files).
Everything is warmed up first; then --rounds rounds, each running every contender over
all files --passes times (contender order rotates each round). Files/s are reported as
the median per contender; the ratios, ours/dicognito (target >= 1.5) and ours/plain
(target >= 0.6), as the median of each round's ratio: contenders of one round ran back
to back, and this shared machine's speed drifts by up to 2x across a run.

Part 2 (whole eval set, default policy, pixel cleaning on; skip with --no-pixels): one
untimed warm-up pass over the small files (loads the OCR / face models), then one pass
over every file. Per file: the engine's own ``timings_ms`` (pixels, header, total) and the
frames cleaned (from ``report["pixels"]``); totals give the header/pixel split of the
set's time and seconds per frame cleaned. Files the engine refuses (an exception with a
``.reason``: AnonymizationFailed, InvalidUpload) are listed as quarantined with the reason;
any other exception (e.g. the pixel module failing) is reported as an error and the run
carries on.

Never part of the test suite; exit code 0 whatever the figures. Example:
    .venv/bin/python bench/dicom.py --rounds 5 --json /tmp/dicom.json
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import io
import json
import os
import platform
import pstats
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import pydicom  # noqa: E402

DEFAULT_EVAL = ROOT.parent / "shared" / "eval" / "dicom"
HEADER_ONLY_MODALITIES = frozenset({"CT", "MR", "NM", "RTDOSE", "RTPLAN", "RTSTRUCT"})
SECRET = b"bench/dicom pseudonym secret, 32+ bytes"
TARGET_VS_DICOGNITO = 1.5
TARGET_VS_PLAIN = 0.6
WARM_UP_BYTES = 64 * 1024  # part 2 warm-up: every file up to this size
CONTENDERS = ("plain", "dicognito", "ours")

_Run = Callable[[bytes], object]


# --- loading ----------------------------------------------------------------------------


def _modality(data: bytes) -> str:
    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=True, stop_before_pixels=True,
                             specific_tags=["Modality"])
        return str(ds.get("Modality", "") or "").strip().upper()
    except Exception:  # noqa: BLE001 - an unreadable file is simply not in the set
        return ""


def load_files(eval_dir: Path) -> tuple[dict[str, bytes], list[str]]:
    """All eval files (relative path -> bytes), and the header-only subset's paths."""
    files = {p.relative_to(eval_dir).as_posix(): p.read_bytes()
             for p in sorted(eval_dir.rglob("*.dcm")) if p.is_file()}
    header_only = [rel for rel, data in files.items()
                   if rel.startswith("pydicom/") and _modality(data) in HEADER_ONLY_MODALITIES]
    return files, header_only


def header_only_policy(policy: Any) -> Any:
    from policies.dicom import PIXEL_OPTIONS

    dicom = dataclasses.replace(policy.dicom, options=policy.dicom.options - PIXEL_OPTIONS)
    return dataclasses.replace(policy, dicom=dicom)


# --- contenders -------------------------------------------------------------------------


def make_plain() -> _Run:
    def run(data: bytes) -> object:
        ds = pydicom.dcmread(io.BytesIO(data), force=True)
        out = io.BytesIO()
        ds.save_as(out)
        return out.getvalue()

    return run


def make_dicognito() -> _Run:
    from dicognito.anonymizer import Anonymizer

    def run(data: bytes) -> object:
        ds = pydicom.dcmread(io.BytesIO(data), force=True)
        Anonymizer().anonymize(ds)
        out = io.BytesIO()
        ds.save_as(out)
        return out.getvalue()

    return run


def make_ours(policy: Any) -> _Run:
    from gateway.anonymize.dicom import Pseudonymizer, anonymize_dicom

    def run(data: bytes) -> object:
        return anonymize_dicom(data, policy, Pseudonymizer(SECRET))

    return run


def _reason(exc: BaseException) -> str:
    """The quarantine reason of a gateway error (AnonymizationFailed.reason, or the
    ``reason`` extension InvalidUpload carries), "" for any other exception."""
    reason = getattr(exc, "reason", None) or (getattr(exc, "extensions", None) or {}).get(
        "reason")
    return str(reason) if reason else ""


def would_clean_pixels(files: dict[str, bytes], paths: list[str], policy: Any) -> list[str]:
    """The files of ``paths`` the engine would send to pixel cleaning under ``policy``."""
    from gateway.anonymize.dicom import engine

    out = []
    for path in paths:
        try:
            ds = pydicom.dcmread(io.BytesIO(files[path]), force=True, stop_before_pixels=True)
            if engine._needs_text_cleaning(ds, policy) or engine._is_photographic(ds, policy):
                out.append(path)
        except Exception:  # noqa: BLE001, S112 - private helpers may change: informative only
            continue
    return out


def _guarded(run: _Run) -> Callable[[bytes], str]:
    """``run`` returning "" on success, else the failure reason (counted, not fatal)."""
    def call(data: bytes) -> str:
        try:
            run(data)
        except Exception as exc:  # noqa: BLE001 - quarantine or crash: report, go on
            return _reason(exc) or type(exc).__name__
        return ""

    return call


# --- part 1 -----------------------------------------------------------------------------


def header_only(files: dict[str, bytes], paths: list[str], policy: Any,
                rounds: int, passes: int) -> dict[str, Any]:
    datas = [files[p] for p in paths]
    runs = {"plain": _guarded(make_plain()), "dicognito": _guarded(make_dicognito()),
            "ours": _guarded(make_ours(policy))}
    failures: dict[str, dict[str, str]] = {name: {} for name in CONTENDERS}
    for name, run in runs.items():  # warm-up, untimed; also records what fails
        for _ in range(2):
            for path, data in zip(paths, datas, strict=True):
                reason = run(data)
                if reason:
                    failures[name][path] = reason
    rates: dict[str, list[float]] = {name: [] for name in CONTENDERS}
    for r in range(rounds):
        shift = r % len(CONTENDERS)
        for name in CONTENDERS[shift:] + CONTENDERS[:shift]:
            run = runs[name]
            start = time.perf_counter()
            for _ in range(passes):
                for data in datas:
                    run(data)
            elapsed = time.perf_counter() - start
            rates[name].append(len(datas) * passes / elapsed)
        print(f"  round {r + 1}: " + "  ".join(f"{n} {rates[n][-1]:7.1f}/s" for n in CONTENDERS),
              flush=True)
    per = {name: {"files_per_s": statistics.median(rates[name]),
                  "rounds_files_per_s": [round(x, 2) for x in rates[name]],
                  "failures": failures[name]} for name in CONTENDERS}
    # Each round's ratio compares contenders that ran back to back under the same machine
    # state; the median of those is steadier than a ratio of medians taken from rounds
    # far apart (the machine's speed drifts by 2x over a run here).
    ratios = {f"ours/{base}": statistics.median(
        o / b for o, b in zip(rates["ours"], rates[base], strict=True))
        for base in ("dicognito", "plain")}
    verdict = {"ours/dicognito >= 1.5": ratios["ours/dicognito"] >= TARGET_VS_DICOGNITO,
               "ours/plain >= 0.6": ratios["ours/plain"] >= TARGET_VS_PLAIN}
    return {"files": paths, "bytes": sum(map(len, datas)), "rounds": rounds, "passes": passes,
            "contenders": per, "ratios": ratios, "pass": verdict}


def print_header_only(result: dict[str, Any]) -> None:
    print(f"\n== Header only: median of {result['rounds']} interleaved rounds "
          f"({result['passes']} passes over {len(result['files'])} files each)")
    print(f"{'contender':<10} {'files/s':>9} {'ms/file':>8}  failures")
    for name in CONTENDERS:
        p = result["contenders"][name]
        fails = ", ".join(f"{k}: {v}" for k, v in p["failures"].items()) or "-"
        print(f"{name:<10} {p['files_per_s']:9.1f} {1000 / p['files_per_s']:8.2f}  {fails}")
    r, v = result["ratios"], result["pass"]
    print(f"ours/dicognito = {r['ours/dicognito']:.2f}x  (target >= {TARGET_VS_DICOGNITO}): "
          f"{'PASS' if v['ours/dicognito >= 1.5'] else 'FAIL'}")
    print(f"ours/plain     = {r['ours/plain']:.2f}x  (target >= {TARGET_VS_PLAIN}): "
          f"{'PASS' if v['ours/plain >= 0.6'] else 'FAIL'}")


def per_file(files: dict[str, bytes], paths: list[str], policy: Any,
             repeat: int = 20) -> list[tuple[str, float, float, float]]:
    """(path, plain ms, dicognito ms, ours ms), best of ``repeat``, to see where ours lags."""
    runs = [_guarded(make_plain()), _guarded(make_dicognito()), _guarded(make_ours(policy))]
    rows = []
    for path in paths:
        best = []
        for run in runs:
            times = []
            for _ in range(repeat):
                start = time.perf_counter()
                run(files[path])
                times.append(time.perf_counter() - start)
            best.append(min(times) * 1000)
        rows.append((path, *best))
    return rows


def profile_ours(files: dict[str, bytes], paths: list[str], policy: Any, passes: int,
                 top: int) -> str:
    run = make_ours(policy)
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(passes):
        for path in paths:
            try:
                run(files[path])
            except Exception:  # noqa: BLE001, S112 - failures are reported by part 1
                continue
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)
    return out.getvalue()


# --- part 2 -----------------------------------------------------------------------------


def _frames_cleaned(pixels: dict[str, Any]) -> int | None:
    """Frames the pixel cleaners processed, from their report (None: not reported)."""
    found: int | None = None
    for cleaner in pixels.values():
        if not isinstance(cleaner, dict):
            continue
        for key in ("frames_cleaned", "frames", "frames_processed", "frames_read"):
            value = cleaner.get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                found = max(found or 0, value)  # faces and text run over the same frames
                break
    return found


def _number_of_frames(data: bytes) -> int:
    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=True, stop_before_pixels=True)
        return int(ds.get("NumberOfFrames", 1) or 1)
    except Exception:  # noqa: BLE001
        return 1


def whole_set(files: dict[str, bytes], policy: Any) -> dict[str, Any]:
    from gateway.anonymize.dicom import Pseudonymizer, anonymize_dicom

    def attempt(data: bytes) -> tuple[Any, str, str]:
        try:
            return anonymize_dicom(data, policy, Pseudonymizer(SECRET)), "", ""
        except Exception as exc:  # noqa: BLE001 - report, carry on
            reason = _reason(exc)
            if reason:
                return None, reason, ""
            return None, "", f"{type(exc).__name__}: {exc}"[:200]

    t0 = time.perf_counter()
    for data in files.values():
        if len(data) <= WARM_UP_BYTES:
            attempt(data)
    print(f"  warm-up (files <= {WARM_UP_BYTES // 1024} KiB) {time.perf_counter() - t0:.1f} s",
          flush=True)
    rows: list[dict[str, Any]] = []
    for path, data in files.items():
        start = time.perf_counter()
        result, reason, error = attempt(data)
        wall_ms = (time.perf_counter() - start) * 1000
        row: dict[str, Any] = {"path": path, "bytes": len(data), "wall_ms": round(wall_ms, 1),
                               "quarantined": reason, "error": error}
        if result is not None:
            timings = result.report["timings_ms"]
            pixels = result.report.get("pixels")
            frames = None
            frames_source = ""
            if pixels:
                frames = _frames_cleaned(pixels)
                frames_source = "report"
                if frames is None:
                    frames, frames_source = _number_of_frames(data), "NumberOfFrames"
            row.update(pixels_ms=timings["pixels"], header_ms=timings["header"],
                       total_ms=timings["total"], frames_cleaned=frames or 0,
                       frames_source=frames_source,
                       cleaners=sorted(k for k, v in (pixels or {}).items()
                                       if isinstance(v, dict)))
        rows.append(row)
        status = (f"quarantined: {reason}" if reason else f"ERROR {error}" if error else
                  f"pixels {row['pixels_ms']:8.1f} ms  header {row['header_ms']:6.1f} ms  "
                  f"frames {row['frames_cleaned']:3d}")
        print(f"  {path:<42} {wall_ms:9.1f} ms  {status}", flush=True)
    done = [r for r in rows if "total_ms" in r]
    pixel_s = sum(r["pixels_ms"] for r in done) / 1000
    header_s = sum(r["header_ms"] for r in done) / 1000
    total_s = sum(r["total_ms"] for r in done) / 1000
    frames = sum(r["frames_cleaned"] for r in done)
    return {
        "files": len(rows), "anonymized": len(done), "rows": rows,
        "pixel_s": pixel_s, "header_s": header_s, "other_s": total_s - pixel_s - header_s,
        "total_s": total_s, "frames_cleaned": frames,
        "files_with_pixel_work": sum(1 for r in done if r["frames_cleaned"]),
        "s_per_frame": pixel_s / frames if frames else None,
        "quarantined": {r["path"]: r["quarantined"] for r in rows if r["quarantined"]},
        "errors": {r["path"]: r["error"] for r in rows if r["error"]},
    }


def print_whole_set(result: dict[str, Any]) -> None:
    print(f"\n== Whole eval set, default policy: {result['anonymized']}/{result['files']} "
          "files anonymized")
    total = result["total_s"] or 1.0
    for key, label in (("header_s", "header (clean, write, verify)"),
                       ("pixel_s", "pixels (all cleaners)"),
                       ("other_s", "rest (parse, checks)")):
        print(f"  {label:<30} {result[key]:8.2f} s  {100 * result[key] / total:5.1f}%")
    print(f"  {'total':<30} {result['total_s']:8.2f} s  (engine timings_ms of the "
          f"{result['anonymized']} files anonymized, summed)")
    if result["s_per_frame"] is not None:
        print(f"  pixel cleaning: {result['frames_cleaned']} frames in "
              f"{result['files_with_pixel_work']} files, {result['s_per_frame']:.3f} s/frame")
    else:
        print("  pixel cleaning: no frame cleaned")
    for path, reason in result["quarantined"].items():
        print(f"  quarantined  {path}: {reason}")
    by_error: dict[str, list[str]] = {}
    for path, error in result["errors"].items():
        by_error.setdefault(error, []).append(path)
    for error, paths in by_error.items():
        print(f"  error in {len(paths)} file(s): {error}\n    {', '.join(paths)}")


# --- driver -----------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    eval_dir = Path(args.eval).resolve()
    if not (eval_dir / "pydicom").is_dir():
        raise SystemExit(f"no DICOM eval set at {eval_dir} (expected {eval_dir}/pydicom/); "
                         "pass --eval DIR")
    import dicognito

    from policies import load_policy

    files, paths = load_files(eval_dir)
    if not paths:
        raise SystemExit(f"no CT/MR/NM/RT files under {eval_dir / 'pydicom'}")
    policy = load_policy()
    header_policy = header_only_policy(policy)
    print(f"{len(files)} DICOM files under {eval_dir}; header-only set: {len(paths)} files "
          f"({sum(len(files[p]) for p in paths) / 1024:.0f} KiB, CT/MR/NM/RT under pydicom/); "
          f"pydicom {pydicom.__version__}, dicognito {dicognito.__version__}, "
          f"Python {platform.python_version()}, {os.cpu_count()} CPUs")
    report: dict[str, Any] = {"eval": str(eval_dir)}
    pixel_bound = would_clean_pixels(files, paths, policy)
    if pixel_bound:
        print(f"note: under the default policy the engine would also run pixel cleaning on "
              f"{len(pixel_bound)} of these (burned_in_text rules: ImageType SECONDARY, "
              f"Secondary Capture SOP class...): {', '.join(pixel_bound)}; part 1 uses the "
              "default policy without the pixel options, as the acceptance test says")
    part1 = header_only(files, paths, header_policy, args.rounds, args.passes)
    part1["pixel_cleaning_under_default_policy"] = pixel_bound
    print_header_only(part1)
    report["header_only"] = part1
    if args.per_file or not all(part1["pass"].values()):
        rows = per_file(files, paths, header_policy)
        print(f"\n  {'per file, best of 20 (ms)':<38} {'plain':>7} {'dicognito':>9} {'ours':>7}")
        for path, plain, dicog, ours in rows:
            print(f"  {path:<38} {plain:7.2f} {dicog:9.2f} {ours:7.2f}")
        report["header_only"]["per_file_ms"] = [
            {"path": p, "plain": a, "dicognito": b, "ours": c} for p, a, b, c in rows]
    if args.profile or not all(part1["pass"].values()):
        print("\n== cProfile of ours (header only), "
              f"{args.passes} passes over the header-only set")
        print(profile_ours(files, paths, header_policy, args.passes, args.profile_top))
    if not args.no_pixels:
        print("\n== Whole eval set (default policy, pixel cleaning on), one pass")
        part2 = whole_set(files, policy)
        print_whole_set(part2)
        report["whole_set"] = part2
    return report


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--eval", default=str(DEFAULT_EVAL),
                        help="the DICOM eval folder (default: ../shared/eval/dicom)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (median kept)")
    parser.add_argument("--passes", type=int, default=10,
                        help="passes over the header-only files per contender per round")
    parser.add_argument("--no-pixels", action="store_true",
                        help="skip part 2 (whole eval set with pixel cleaning)")
    parser.add_argument("--per-file", action="store_true",
                        help="per-file ms of each contender (always shown on FAIL)")
    parser.add_argument("--profile", action="store_true",
                        help="cProfile our header-only path (always done on FAIL)")
    parser.add_argument("--profile-top", type=int, default=30, help="rows per profile table")
    parser.add_argument("--json", default=None, metavar="PATH", help="write the figures here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report = run(args)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=str) + "\n", "utf-8")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
