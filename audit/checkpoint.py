"""Signed checkpoints: C2SP tlog-checkpoint bodies in C2SP signed-note envelopes.

A checkpoint commits the log to a tree size and root hash::

    <origin>
    <size>
    <base64 root>

    — <key name> <base64(4-byte key ID || 64-byte Ed25519 signature)>

Using the C2SP formats (https://c2sp.org/signed-note, https://c2sp.org/tlog-checkpoint)
instead of an ad-hoc JSON signature means an auditor can check our checkpoints with
existing tools (Go's golang.org/x/mod/sumdb/note, transparency-dev witnesses), and a
verifier key is one copy-pasteable line: ``<name>+<hex key ID>+<base64(0x01 || key)>``.

Ed25519 signatures carry no time, so nothing here reads a clock; the only randomness
(key generation) can be replaced by passing ``seed``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from audit.merkle import HASH_SIZE

ED25519 = 0x01  # signed-note signature type identifier byte
SIG_PREFIX = "\u2014 "  # em dash, space
MAX_NOTE_CHARS = 64 * 1024  # bound work on hostile input; 16 signatures fit easily
MAX_SIGNATURES = 64  # the spec asks verifiers to accept at least 16
_SIZE = re.compile(r"0|[1-9][0-9]{0,19}")
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")
_MAX_SIZE = 2**64 - 1


class CheckpointError(ValueError):
    """A checkpoint or key that is malformed, or whose signature does not verify."""


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()


@dataclass(frozen=True)
class VerifierKey:
    name: str
    key_id: bytes
    public_key: bytes

    def __str__(self) -> str:
        encoded = base64.b64encode(bytes([ED25519]) + self.public_key).decode()
        return f"{self.name}+{self.key_id.hex()}+{encoded}"


def _b64decode(text: str, what: str) -> bytes:
    """Strict standard base64: no stray characters and canonical padding bits."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise CheckpointError(f"{what} is not valid base64") from None
    if base64.b64encode(raw).decode() != text:
        raise CheckpointError(f"{what} is not canonical base64")
    return raw


def _check_name(name: str) -> None:
    if not name or any(c.isspace() or c == "+" for c in name) or _CONTROL.search(name):
        raise CheckpointError("key name must be non-empty, without spaces or '+'")


def key_id(name: str, public_key: bytes) -> bytes:
    """SHA-256(name || 0x0A || 0x01 || public key)[:4], as signed-note recommends."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([ED25519]) + public_key).digest()[:4]


def _private_key(private_key: bytes) -> Ed25519PrivateKey:
    if not isinstance(private_key, bytes) or len(private_key) != 32:
        raise CheckpointError("an Ed25519 private key is 32 bytes")
    return Ed25519PrivateKey.from_private_bytes(private_key)


def vkey_for(name: str, private_key: bytes) -> str:
    """The verifier key line for a signing key, to publish to auditors."""
    _check_name(name)
    public = _private_key(private_key).public_key().public_bytes_raw()
    return str(VerifierKey(name, key_id(name, public), public))


def generate_signing_key(name: str, seed: bytes | None = None) -> tuple[bytes, str]:
    """A new Ed25519 key: (32 private bytes to keep secret, verifier key to publish)."""
    private = secrets.token_bytes(32) if seed is None else seed
    return private, vkey_for(name, private)


def parse_vkey(vkey: str) -> VerifierKey:
    """Parse ``<name>+<hex key ID>+<base64(0x01 || key)>`` and check the ID matches."""
    parts = vkey.strip().split("+", 2)  # base64 may itself contain '+'
    if len(parts) != 3:
        raise CheckpointError("verifier key must read <name>+<key id>+<base64 key>")
    name, hex_id, encoded = parts
    _check_name(name)
    if not re.fullmatch(r"[0-9a-f]{8}", hex_id):
        raise CheckpointError("verifier key id must be 8 lowercase hex digits")
    raw = _b64decode(encoded, "verifier key")
    if len(raw) != 33 or raw[0] != ED25519:
        raise CheckpointError("verifier key is not an Ed25519 (type 0x01) key")
    if key_id(name, raw[1:]) != bytes.fromhex(hex_id):
        raise CheckpointError("verifier key id does not match its name and key")
    return VerifierKey(name, bytes.fromhex(hex_id), raw[1:])


def checkpoint_body(origin: str, size: int, root: bytes) -> str:
    """The tlog-checkpoint note text: origin, decimal size, base64 root, each ending in LF."""
    if not origin or "\n" in origin or _CONTROL.search(origin):
        raise CheckpointError("origin must be one non-empty line without control characters")
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= _MAX_SIZE:
        raise CheckpointError("size must be an integer in 0..2^64-1")
    if len(root) != HASH_SIZE:
        raise CheckpointError(f"root must be {HASH_SIZE} bytes")
    return f"{origin}\n{size}\n{base64.b64encode(root).decode()}\n"


def sign_note(text: str, name: str, private_key: bytes) -> str:
    """Sign ``text`` (ending in a newline) as a signed note with one Ed25519 signature."""
    _check_name(name)
    if not text.endswith("\n") or _CONTROL.search(text):
        raise CheckpointError("note text must end with a newline and hold no control characters")
    key = _private_key(private_key)
    ident = key_id(name, key.public_key().public_bytes_raw())
    signature = base64.b64encode(ident + key.sign(text.encode())).decode()
    return f"{text}\n{SIG_PREFIX}{name} {signature}\n"


def sign_checkpoint(origin: str, size: int, root: bytes, name: str, private_key: bytes) -> str:
    """A signed note committing to (origin, size, root) under the key ``name``."""
    return sign_note(checkpoint_body(origin, size, root), name, private_key)


def _split_note(note: str) -> tuple[str, list[str]]:
    if len(note) > MAX_NOTE_CHARS:
        raise CheckpointError("note is too large")
    if _CONTROL.search(note):
        raise CheckpointError("note contains control characters")
    if not note.endswith("\n"):
        raise CheckpointError("note must end with a newline")
    cut = note.rfind("\n\n")
    if cut < 0:
        raise CheckpointError("note has no blank line before its signatures")
    lines = note[cut + 2 : -1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise CheckpointError("note has too many signatures")
    return note[: cut + 1], lines


def _parse_signature(line: str) -> tuple[str, bytes]:
    if not line.startswith(SIG_PREFIX):
        raise CheckpointError("malformed signature line")
    name, sep, encoded = line[len(SIG_PREFIX) :].partition(" ")
    if not sep:
        raise CheckpointError("malformed signature line")
    _check_name(name)
    raw = _b64decode(encoded, "signature")
    if len(raw) < 5:
        raise CheckpointError("signature is too short")
    return name, raw


def _verify_signatures(body: str, lines: list[str], key: VerifierKey) -> None:
    """Ignore other keys' signatures (witnesses, rotation) but require one from ``key``.

    A signature that claims our key (same name and ID) but fails is fatal, as the
    spec recommends: it is either corruption or forgery, never noise.
    """
    verifier = Ed25519PublicKey.from_public_bytes(key.public_key)
    verified = False
    for line in lines:
        name, raw = _parse_signature(line)
        if name != key.name or raw[:4] != key.key_id:
            continue
        try:
            verifier.verify(raw[4:], body.encode())
        except InvalidSignature:
            raise CheckpointError(f"signature by {key.name} does not verify") from None
        verified = True
    if not verified:
        raise CheckpointError(f"note is not signed by key {key.name}+{key.key_id.hex()}")


def _parse_body(body: str) -> Checkpoint:
    lines = body[:-1].split("\n")
    if len(lines) < 3 or any(not line for line in lines):
        raise CheckpointError("checkpoint body needs origin, size and root on non-empty lines")
    origin, size_text, root_text, *extensions = lines
    if not _SIZE.fullmatch(size_text) or int(size_text) > _MAX_SIZE:
        raise CheckpointError("checkpoint size is not a decimal without leading zeros")
    root = _b64decode(root_text, "checkpoint root")
    if len(root) != HASH_SIZE:
        raise CheckpointError(f"checkpoint root must be {HASH_SIZE} bytes")
    return Checkpoint(origin, int(size_text), root, tuple(extensions))


def open_note(note: str, vkey: str | VerifierKey) -> str:
    """The text of ``note`` once a signature by ``vkey`` verifies; CheckpointError if not."""
    if not isinstance(note, str):
        raise CheckpointError("note must be text")
    key = vkey if isinstance(vkey, VerifierKey) else parse_vkey(vkey)
    text, lines = _split_note(note)
    _verify_signatures(text, lines, key)
    return text


def parse_and_verify(note: str, vkey: str | VerifierKey) -> Checkpoint:
    """Verify ``note`` against ``vkey`` first, then parse its body as a checkpoint.

    The body is read only after the signature checks, because signed-note says
    unverified text must be ignored.
    """
    return _parse_body(open_note(note, vkey))
