"""Offline verification of an audit export (privacy contract, line 7).

Needs only the export and the log's verifier key. In order, it checks:

1. every checkpoint (the export's and any the auditor kept from earlier exports) is
   signed by the trusted key, and all name the same origin;
2. entries sit at positions 0..N-1 in order, and each entry hashes to its recorded leaf
   hash; the first bad one is named by position (edited, deleted, inserted, reordered);
3. no checkpoint is larger than the entries present (truncation), and the largest one
   covers every entry (nothing unsigned was appended);
4. the root of the first ``size`` entries equals every checkpoint's root. When the
   newest checkpoint matches but an older signed one does not, the log signed two
   histories: a fork, confirmed with an RFC 9162 consistency proof built from the
   entries, exactly as an online auditor holding only the two tree heads would check.

Roots come from one pass with ``RootBuilder``, snapshotted at each checkpoint size, so
verification is O(N) however many checkpoints there are.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from audit.checkpoint import Checkpoint, CheckpointError, VerifierKey, parse_and_verify, parse_vkey
from audit.export import Export, ExportEntry
from audit.merkle import (
    ProofError,
    RootBuilder,
    consistency_proof,
    leaf_hash,
    verify_consistency,
)


class VerificationError(Exception):
    """The export does not verify; ``position`` is the first bad entry when one is known."""

    def __init__(self, message: str, position: int | None = None) -> None:
        super().__init__(message)
        self.position = position


@dataclass(frozen=True)
class Signed:
    label: str  # where it came from, for messages: "checkpoint 2 in the export", a file
    checkpoint: Checkpoint


@dataclass(frozen=True)
class Result:
    size: int
    root: bytes
    checkpoint_sizes: tuple[int, ...] = ()  # every checkpoint found consistent, ascending
    warnings: list[str] = field(default_factory=list)


def _span(size: int) -> str:
    return f"entries 0..{size - 1}" if size else "the empty tree"


def trusted_key(export: Export, pubkey: str | None, warnings: list[str]) -> VerifierKey:
    """The key to check signatures with; the export's own key only as a weaker fallback."""
    if pubkey is None and export.public_key is None:
        raise VerificationError("no public key: pass --pubkey (the export carries none)")
    if pubkey is None:
        warnings.append(
            "trusting the public key inside the export: whoever can rewrite the export can "
            "replace it too; pass --pubkey with the key obtained from the log operator"
        )
    try:
        return parse_vkey(pubkey if pubkey is not None else str(export.public_key))
    except CheckpointError as exc:
        raise VerificationError(f"public key: {exc}") from None


def signed_checkpoints(
    export: Export, held: Sequence[tuple[str, str]], key: VerifierKey
) -> list[Signed]:
    """Verify every note's signature and require a single origin across all of them."""
    notes = [(f"checkpoint {i + 1} in the export", n) for i, n in enumerate(export.checkpoints)]
    notes += held
    if not notes:
        raise VerificationError("the export holds no signed checkpoint: nothing to verify")
    result = []
    for label, note in notes:
        try:
            result.append(Signed(label, parse_and_verify(note, key)))
        except CheckpointError as exc:
            raise VerificationError(f"{label}: {exc}") from None
    origins = {s.checkpoint.origin for s in result}
    if len(origins) > 1:
        raise VerificationError(f"checkpoints name different logs: {sorted(origins)}")
    return result


def _misplaced(entries: Sequence[ExportEntry], index: int) -> VerificationError:
    """Explain why the entry found at ``index`` does not carry position ``index``."""
    found = entries[index].position
    if found < index:
        return VerificationError(f"entry at position {found}: appears again after position "
                                 f"{index - 1} (an entry was inserted or moved)", found)
    if any(e.position == index for e in entries[index + 1 :]):
        return VerificationError(f"entry at position {index}: out of order, position {found} "
                                 "stands in its place (entries were reordered or an entry "
                                 "was inserted)", index)
    return VerificationError(f"entry at position {index}: missing, the next entry present is "
                             f"position {found} (entries were deleted)", index)


def scan_entries(entries: Sequence[ExportEntry], sizes: set[int]) -> dict[int, bytes]:
    """One pass: check positions and leaf hashes, snapshot the root at each size in ``sizes``.

    The hot loop of verification: one SHA-256 per entry plus the builder's amortized one.
    """
    builder = RootBuilder()
    snapshots = {0: builder.root()} if 0 in sizes else {}
    sha256, append = hashlib.sha256, builder.append
    for index, item in enumerate(entries):
        if item.position != index:
            raise _misplaced(entries, index)
        digest = sha256(b"\x00" + item.entry.encode()).digest()
        if digest.hex() != item.leaf_hash:
            raise VerificationError(
                f"entry at position {index}: leaf hash does not match its content", index
            )
        append(digest)
        if index + 1 in sizes:
            snapshots[index + 1] = builder.root()
    return snapshots


def _check_coverage(signed: list[Signed], count: int) -> int:
    largest = max(s.checkpoint.size for s in signed)
    if largest > count:
        raise VerificationError(
            f"truncated: a checkpoint covers {largest} entries but the export holds {count} "
            f"(entries at positions {count}..{largest - 1} are missing)", count)
    if largest < count:
        raise VerificationError(
            f"entry at position {largest}: not covered by any signed checkpoint (the newest "
            f"covers positions 0..{largest - 1}); entries were appended after signing", largest)
    return largest


def _fork(old: Signed, new: Signed, entries: Sequence[ExportEntry], computed: bytes) -> str:
    """Describe a fork, confirmed by an RFC 9162 consistency proof from the entries.

    Leaf hashes are recomputed here rather than kept from the scan: forks are rare and
    the scan is the hot path.
    """
    o, n = old.checkpoint, new.checkpoint
    detail = "the signed roots are inconsistent"
    if 0 < o.size < n.size:
        leaves = [leaf_hash(e.entry.encode()) for e in entries[: n.size]]
        try:
            proof = consistency_proof(leaves, o.size)
            verify_consistency(o.size, n.size, o.root, n.root, proof)
        except ProofError as exc:
            detail = f"consistency proof from size {o.size} to {n.size} fails: {exc}"
    return (f"fork: {old.label} (size={o.size} root={o.root.hex()}) and {new.label} "
            f"(size={n.size} root={n.root.hex()}) are both signed by the log key, but "
            f"{_span(o.size)} hash to {computed.hex()}; {detail}")


def check_roots(
    signed: list[Signed], snapshots: dict[int, bytes], entries: Sequence[ExportEntry]
) -> None:
    """Compare each checkpoint with the entries; tell edits-after-signing from forks."""
    ordered = sorted(signed, key=lambda s: s.checkpoint.size)
    matching = [s for s in ordered if snapshots[s.checkpoint.size] == s.checkpoint.root]
    for s in ordered:
        size = s.checkpoint.size
        if snapshots[size] == s.checkpoint.root:
            continue
        later = [m for m in matching if m.checkpoint.size >= size]
        if later:
            raise VerificationError(_fork(s, later[-1], entries, snapshots[size]))
        good = max((m.checkpoint.size for m in matching if m.checkpoint.size < size), default=0)
        raise VerificationError(
            f"{s.label} (size={size}): {_span(size)} do not hash to its signed root; "
            "entries were changed, inserted, removed or reordered after it was signed"
            + (f" (entries 0..{good - 1} still match a checkpoint: the change is at or after "
               f"position {good})" if good else ""))


def verify_export(
    export: Export, pubkey: str | None = None, held: Sequence[tuple[str, str]] = ()
) -> Result:
    """Verify ``export`` offline; raise VerificationError naming the first problem.

    ``held`` are (label, signed note) pairs the auditor kept from earlier exports.
    """
    warnings: list[str] = []
    key = trusted_key(export, pubkey, warnings)
    if pubkey is not None and export.public_key not in (None, str(key)):
        warnings.append("the export names a different public key than --pubkey; ignored")
    signed = signed_checkpoints(export, held, key)
    snapshots = scan_entries(export.entries, {s.checkpoint.size for s in signed})
    size = _check_coverage(signed, len(export.entries))
    check_roots(signed, snapshots, export.entries)
    sizes = tuple(sorted({s.checkpoint.size for s in signed}))
    return Result(size, snapshots[size], sizes, warnings)
