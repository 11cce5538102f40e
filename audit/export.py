"""The audit export an auditor receives, and its reader.

JSONL, UTF-8, one JSON object per line, in this order::

    {"type": "public_key", "vkey": "<name>+<key id>+<base64 key>"}     (at most one)
    {"type": "checkpoint", "note": "<signed note text>"}               (zero or more)
    {"position": 0, "leaf_hash": "<hex>", "entry": "<canonical JSON>"} (one per entry,
    ...                                                                  positions 0..N-1)

Header records come first so a verifier knows every checkpoint size before it streams
the entries, and can snapshot the root at each of them in one pass. ``entry`` is the
canonical event JSON exactly as hashed (leaf = SHA-256(0x00 || UTF-8 bytes of entry));
``leaf_hash`` is what the log recorded, kept so a changed entry is named by position.

The reader checks shape only (fields, types, order of sections); whether the content is
authentic is verify.py's job, so that a damaged entry is reported by position with a
reason rather than as a parse error. A CSV with the entry columns is offered for people
reading the log in a spreadsheet; verification reads JSONL only.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from json.scanner import make_scanner
from typing import IO, Any, NamedTuple, Protocol, cast

from audit.merkle import leaf_hash

# The C scanner behind json.loads, called directly: it skips three Python frames per
# line, about 40% of parsing time on a 200,000-entry export. Trailing text is checked
# by hand below, which is all json.loads would add.
_SCAN = make_scanner(cast(Any, json.JSONDecoder()))  # typeshed types ctx oddly


class ExportError(ValueError):
    """An export file that is not well-formed; the message names the line."""


class ExportEntry(NamedTuple):
    position: int
    leaf_hash: str  # hex, as recorded by the log
    entry: str  # canonical event JSON, exactly the hashed bytes

    @classmethod
    def from_canonical(cls, position: int, entry: bytes) -> ExportEntry:
        return cls(position, leaf_hash(entry).hex(), entry.decode("ascii"))


class EntryLike(Protocol):
    """Anything with an export entry's fields, e.g. audit.store.AuditRecord."""

    @property
    def position(self) -> int: ...
    @property
    def leaf_hash(self) -> str: ...
    @property
    def entry(self) -> str: ...


@dataclass
class Export:
    public_key: str | None = None
    checkpoints: list[str] = field(default_factory=list)
    entries: list[ExportEntry] = field(default_factory=list)


def _dump(record: dict[str, object]) -> str:
    return json.dumps(record, ensure_ascii=True, separators=(",", ":")) + "\n"


def write_export(
    entries: Iterable[EntryLike], checkpoints: Iterable[str], vkey: str | None, fp: IO[str]
) -> int:
    """Write header records, then entries in the order given; return the entry count.

    Entries stream straight through, so a large log never has to fit in memory.
    """
    if vkey is not None:
        fp.write(_dump({"type": "public_key", "vkey": vkey}))
    for note in checkpoints:
        fp.write(_dump({"type": "checkpoint", "note": note}))
    count = 0
    for item in entries:
        fp.write(_dump({"position": item.position, "leaf_hash": item.leaf_hash,
                        "entry": item.entry}))
        count += 1
    return count


def write_csv(entries: Iterable[EntryLike], fp: IO[str]) -> None:
    """The entry columns as CSV for people; not read back by the verifier."""
    writer = csv.writer(fp, lineterminator="\n")
    writer.writerow(["position", "leaf_hash", "entry"])
    for item in entries:
        writer.writerow([item.position, item.leaf_hash, item.entry])


def _entry(record: dict[str, object], lineno: int) -> ExportEntry:
    """Shape checks only, kept cheap: this runs once per entry of a possibly huge log.

    ``leaf_hash`` is not pattern-checked here: verify compares it with a computed hex
    digest, which only a well-formed value can equal.
    """
    try:
        position, hashed, entry = record["position"], record["leaf_hash"], record["entry"]
    except KeyError:
        position = None
    if len(record) != 3 or position is None:
        raise ExportError(f"line {lineno}: an entry has exactly position, leaf_hash, entry")
    if type(position) is not int or position < 0:
        raise ExportError(f"line {lineno}: position must be a non-negative integer")
    if type(hashed) is not str or type(entry) is not str:
        raise ExportError(f"line {lineno}: leaf_hash and entry must be strings")
    return ExportEntry(position, hashed, entry)


def _header(export: Export, record: dict[str, object], lineno: int) -> None:
    kind = record.get("type")
    if kind == "public_key" and record.keys() == {"type", "vkey"}:
        if export.public_key is not None:
            raise ExportError(f"line {lineno}: a second public_key record")
        if not isinstance(record["vkey"], str):
            raise ExportError(f"line {lineno}: vkey must be a string")
        export.public_key = record["vkey"]
    elif kind == "checkpoint" and record.keys() == {"type", "note"}:
        if not isinstance(record["note"], str):
            raise ExportError(f"line {lineno}: note must be a string")
        export.checkpoints.append(record["note"])
    else:
        raise ExportError(f"line {lineno}: unknown record type {str(kind)[:40]!r}")


def read_export(fp: Iterable[str]) -> Export:
    """Parse an export from an open text file (or any iterable of lines).

    ExportError names the first malformed line.
    """
    export = Export()
    for lineno, line in enumerate(fp, start=1):
        try:
            record, end = _SCAN(line, 0)
        except (ValueError, StopIteration):
            raise ExportError(f"line {lineno}: not valid JSON") from None
        if line[end:].strip():
            raise ExportError(f"line {lineno}: text after the JSON object")
        if not isinstance(record, dict):
            raise ExportError(f"line {lineno}: not a JSON object")
        if "type" in record:
            if export.entries:
                raise ExportError(f"line {lineno}: header records must precede the entries")
            _header(export, record, lineno)
        else:
            export.entries.append(_entry(record, lineno))
    return export
