"""RFC 9162 (Certificate Transparency v2) Merkle trees: hashes, roots, proofs.

leaf = SHA-256(0x00 || entry), node = SHA-256(0x01 || left || right); the tree hash of
n leaves splits at the largest power of two below n (RFC 9162 section 2.1.1). The
0x00/0x01 prefixes keep a leaf from ever being passed off as an interior node.

Everything here is iterative: an auditor verifying millions of entries must not hit
Python's recursion limit, and roots are computed in O(n) with a stack of perfect
subtree hashes (``RootBuilder``), the same shape a log uses to append.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()  # MTH({}) = SHA-256() (RFC 9162 2.1.1)


class ProofError(ValueError):
    """A proof, size, index or hash that does not verify; the message says which."""


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


class RootBuilder:
    """Incremental tree hash: append leaf hashes, read the root at any size.

    The stack holds the roots of the perfect subtrees the tree decomposes into, largest
    first, one per set bit of the size; appending merges equal-sized neighbours like a
    binary counter carries, so n appends cost n-1 node hashes in total.
    """

    __slots__ = ("_size", "_stack")

    def __init__(self) -> None:
        self._stack: list[bytes] = []
        self._size = 0

    @property
    def size(self) -> int:
        return self._size

    def append(self, leaf: bytes) -> None:
        stack, n, h, sha256 = self._stack, self._size, leaf, hashlib.sha256
        while n & 1:
            h = sha256(b"\x01" + stack.pop() + h).digest()  # node_hash, inlined: hot loop
            n >>= 1
        stack.append(h)
        self._size += 1

    def extend(self, leaves: Iterable[bytes]) -> None:
        for leaf in leaves:
            self.append(leaf)

    def state(self) -> list[str]:
        """The subtree roots (hex, largest first): with the size, all a log must persist."""
        return [h.hex() for h in self._stack]

    @classmethod
    def restore(cls, size: int, state: list[str]) -> RootBuilder:
        if len(state) != bin(size).count("1"):
            raise ValueError("frontier does not match the tree size")
        builder = cls()
        builder._stack, builder._size = [bytes.fromhex(h) for h in state], size
        return builder

    def root(self) -> bytes:
        """Fold the subtree roots right to left: the RFC's split at the largest power of 2."""
        if not self._stack:
            return EMPTY_ROOT
        h = self._stack[-1]
        for left in reversed(self._stack[:-1]):
            h = node_hash(left, h)
        return h


def root(leaf_hashes: Iterable[bytes]) -> bytes:
    """MTH of the given leaf hashes, in O(n) time and O(log n) memory."""
    builder = RootBuilder()
    builder.extend(leaf_hashes)
    return builder.root()


def _split(n: int) -> int:
    """The largest power of two strictly below n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int) -> list[bytes]:
    """PATH(index, D[n]) of RFC 9162 2.1.3.1, lowest sibling first.

    Walks down from the root keeping the half that holds ``index`` and recording the
    other half's hash; the sibling ranges are disjoint, so the whole proof is O(n).
    """
    if not 0 <= index < len(leaf_hashes):
        raise ProofError(f"index {index} is outside a tree of size {len(leaf_hashes)}")
    path: list[bytes] = []
    lo, hi = 0, len(leaf_hashes)
    while hi - lo > 1:
        mid = lo + _split(hi - lo)
        if index < mid:
            path.append(root(leaf_hashes[mid:hi]))
            hi = mid
        else:
            path.append(root(leaf_hashes[lo:mid]))
            lo = mid
    return path[::-1]


def consistency_proof(leaf_hashes: Sequence[bytes], old_size: int) -> list[bytes]:
    """PROOF(old_size, D[n]) of RFC 9162 2.1.4.1 (SUBPROOF unrolled into a loop)."""
    new_size = len(leaf_hashes)
    if not 0 < old_size <= new_size:
        raise ProofError(f"need 0 < old size <= new size, got {old_size} and {new_size}")
    tail: list[bytes] = []
    lo, hi, m, whole_old_tree = 0, new_size, old_size, True
    while m != hi - lo:
        mid = lo + _split(hi - lo)
        if m <= mid - lo:
            tail.append(root(leaf_hashes[mid:hi]))
            hi = mid
        else:
            tail.append(root(leaf_hashes[lo:mid]))
            m -= mid - lo
            lo, whole_old_tree = mid, False
    head = [] if whole_old_tree else [root(leaf_hashes[lo:hi])]
    return head + tail[::-1]


def _check_hash(value: bytes, what: str) -> None:
    if not isinstance(value, bytes | bytearray) or len(value) != HASH_SIZE:
        raise ProofError(f"{what} must be {HASH_SIZE} bytes")


def _check_size(value: int, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ProofError(f"{what} must be a non-negative integer")


def _mismatch(computed: bytes, expected: bytes, what: str) -> None:
    if computed != expected:
        raise ProofError(f"{what} does not match the proof")


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf_hash`` sits at ``index`` of the tree ``root`` of ``size`` leaves.

    RFC 9162 2.1.3.2. Raises ProofError; returns None on success so a caller cannot
    mistake a falsy return for a pass.
    """
    _check_size(index, "index")
    _check_size(size, "tree size")
    if index >= size:
        raise ProofError(f"index {index} is not below tree size {size}")
    _check_hash(leaf_hash, "leaf hash")
    for item in proof:
        _check_hash(item, "proof element")
    fn, sn, r = index, size - 1, leaf_hash
    for p in proof:
        if sn == 0:
            raise ProofError("inclusion proof is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("inclusion proof is too short")
    _mismatch(r, root, "root")


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree ``new_root`` of ``new_size`` extends ``old_root`` of ``old_size``.

    RFC 9162 2.1.4.2. Equal sizes need an empty proof and equal roots; a proof from the
    empty tree is refused as meaningless (every tree extends it, so it proves nothing),
    which is also what the transparency-dev/merkle reference does.
    """
    _check_size(old_size, "old size")
    _check_size(new_size, "new size")
    if old_size > new_size:
        raise ProofError(f"old size {old_size} is larger than new size {new_size}")
    if old_size == 0:
        raise ProofError("a consistency proof from the empty tree is meaningless")
    if old_size == new_size:
        if proof:
            raise ProofError("equal sizes need an empty consistency proof")
        _mismatch(old_root, new_root, "old root")
        return
    if not proof:
        raise ProofError("consistency proof is empty")
    _check_hash(old_root, "old root")
    _check_hash(new_root, "new root")
    for item in proof:
        _check_hash(item, "proof element")
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is the seed
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is too long")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("consistency proof is too short")
    _mismatch(fr, old_root, "old root")
    _mismatch(sr, new_root, "new root")
