"""The ``audit`` command: ``audit verify EXPORT [--pubkey VKEY_OR_FILE] [--checkpoint FILE ...]``.

Written for compliance officers, not developers: every outcome is one plain line, never
a traceback. Exit status 0 means verified, 1 means the export failed verification (or
could not be read as an export), 2 means the command was used wrongly (argparse's own
convention, kept for missing files and malformed keys given on the command line).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from audit.checkpoint import CheckpointError, parse_vkey
from audit.export import ExportError, read_export
from audit.verify import VerificationError, verify_export

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """A problem with the command line rather than with the export."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="audit", description="Tamper-evident audit log tools (offline, no gateway needed)."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    verify = commands.add_parser(
        "verify", help="verify an audit export offline",
        description="Check every entry, signature and checkpoint of an audit export.",
    )
    verify.add_argument("export", help="the export file (JSONL)")
    verify.add_argument(
        "--pubkey", metavar="VKEY_OR_FILE",
        help="the log's verifier key (name+id+key) or a file holding it; without it the "
        "key inside the export is trusted, which is weaker",
    )
    verify.add_argument(
        "--checkpoint", metavar="FILE", action="append", default=[],
        help="a signed checkpoint kept from an earlier export (a note file, or the earlier "
        "export itself); repeatable",
    )
    verify.add_argument("--quiet", action="store_true", help="print only the result line")
    return parser


def _read_text(path: str, what: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {what} {path}: {exc.__class__.__name__}") from None


def _pubkey(value: str | None) -> str | None:
    """A verifier key given inline, or the first line of the file that holds it."""
    if value is None:
        return None
    text = _read_text(value, "public key file").strip() if Path(value).is_file() else value
    try:
        return str(parse_vkey(text))
    except CheckpointError as exc:
        raise UsageError(f"--pubkey: {exc}") from None


def _held(paths: Sequence[str]) -> list[tuple[str, str]]:
    """Checkpoints the auditor kept: note files, or every checkpoint of an earlier export."""
    held: list[tuple[str, str]] = []
    for path in paths:
        text = _read_text(path, "checkpoint file")
        if not text.startswith("{"):
            held.append((f"checkpoint {path}", text))
            continue
        try:
            earlier = read_export(text.splitlines(keepends=True))
        except ExportError as exc:
            raise VerificationError(f"earlier export {path}: {exc}") from None
        if not earlier.checkpoints:
            raise UsageError(f"earlier export {path} holds no checkpoint to compare with")
        held += [(f"checkpoint {i + 1} of {path}", n) for i, n in enumerate(earlier.checkpoints)]
    return held


def run_verify(args: argparse.Namespace) -> int:
    pubkey = _pubkey(args.pubkey)
    held = _held(args.checkpoint)
    started = time.perf_counter()
    try:
        with open(args.export, encoding="utf-8") as fp:
            export = read_export(fp)
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read export {args.export}: {exc.__class__.__name__}") from None
    except ExportError as exc:
        raise VerificationError(f"export is malformed: {exc}") from None
    result = verify_export(export, pubkey, held)
    elapsed = time.perf_counter() - started
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if not args.quiet:
        rate = result.size / elapsed if elapsed > 0 else 0.0
        sizes = ", ".join(map(str, result.checkpoint_sizes))
        print(f"verified {result.size} entries in {elapsed:.2f}s ({rate:,.0f}/s); consistent "
              f"with every signed checkpoint (sizes: {sizes})", file=sys.stderr)
    print(f"OK size={result.size} root={result.root.hex()}")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``audit`` console script; returns the exit status."""
    args = _parser().parse_args(argv)  # exits with status 2 on a usage error
    try:
        return run_verify(args)
    except UsageError as exc:
        print(f"audit: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except VerificationError as exc:
        print(f"FAILED: {exc}")
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("audit: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug must still not show an auditor a traceback
        print(f"FAILED: internal error while verifying ({exc.__class__.__name__})")
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
