"""Signed checkpoints: C2SP signed-note and tlog-checkpoint, interoperable byte for byte."""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest

from audit.checkpoint import (
    Checkpoint,
    CheckpointError,
    checkpoint_body,
    generate_signing_key,
    key_id,
    open_note,
    parse_and_verify,
    parse_vkey,
    sign_checkpoint,
    sign_note,
    vkey_for,
)

pytestmark = pytest.mark.unit

# The example key and note of golang.org/x/mod/sumdb/note (note_test.go), the reference
# implementation of signed notes: reproducing it proves Go tools accept our checkpoints.
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_SEED = base64.b64decode("AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz")[1:]
GO_TEXT = ("If you think cryptography is the answer to your problem,\n"
           "then you don't know what your problem is.\n")
GO_NOTE = (GO_TEXT + "\n\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUg"
           "YN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n")

NAME = "gateway.example/audit"
ROOT = bytes(range(32))


@pytest.fixture(scope="module")
def key() -> tuple[bytes, str]:
    return generate_signing_key(NAME, seed=b"\x07" * 32)


def test_go_reference_key_and_note_are_reproduced() -> None:
    assert vkey_for("PeterNeumann", GO_SEED) == GO_VKEY
    assert sign_note(GO_TEXT, "PeterNeumann", GO_SEED) == GO_NOTE
    assert open_note(GO_NOTE, GO_VKEY) == GO_TEXT
    with pytest.raises(CheckpointError):
        open_note(GO_NOTE.replace("cryptography", "cryptographY"), GO_VKEY)


def test_key_id_is_sha256_of_name_newline_type_and_key() -> None:
    vk = parse_vkey(GO_VKEY)
    assert vk.key_id.hex() == "c74f20a3" == key_id("PeterNeumann", vk.public_key).hex()


def test_generated_keys_are_random_unless_seeded() -> None:
    assert generate_signing_key(NAME)[0] != generate_signing_key(NAME)[0]
    assert generate_signing_key(NAME, seed=b"\x01" * 32) == generate_signing_key(
        NAME, seed=b"\x01" * 32)


@pytest.mark.parametrize("size", [0, 1, 20852163, 2**64 - 1])
def test_round_trip(key: tuple[bytes, str], size: int) -> None:
    private, vkey = key
    note = sign_checkpoint(NAME, size, ROOT, NAME, private)
    assert note.startswith(f"{NAME}\n{size}\n{base64.b64encode(ROOT).decode()}\n\n\u2014 {NAME} ")
    assert parse_and_verify(note, vkey) == Checkpoint(NAME, size, ROOT)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (f"\n5\n{base64.b64encode(ROOT).decode()}", f"\n6\n{base64.b64encode(ROOT).decode()}"),
        (base64.b64encode(ROOT).decode(), base64.b64encode(ROOT[::-1]).decode()),  # root
        (f"{NAME}\n5", f"{NAME}2\n5"),  # origin
    ],
    ids=["size", "root", "origin"],
)
def test_tampered_body_is_refused(key: tuple[bytes, str], old: str, new: str) -> None:
    private, vkey = key
    note = sign_checkpoint(NAME, 5, ROOT, NAME, private)
    assert old in note
    with pytest.raises(CheckpointError, match="does not verify"):
        parse_and_verify(note.replace(old, new, 1), vkey)


def test_signature_by_another_key_is_refused(key: tuple[bytes, str]) -> None:
    _, vkey = key
    other, _ = generate_signing_key(NAME)  # same name, another key: another key ID
    with pytest.raises(CheckpointError, match="not signed by key"):
        parse_and_verify(sign_checkpoint(NAME, 5, ROOT, NAME, other), vkey)
    with pytest.raises(CheckpointError, match="not signed by key"):
        parse_and_verify(sign_checkpoint(NAME, 5, ROOT, "someone.else", key[0]), vkey)


def test_forged_signature_under_our_key_id_is_refused(key: tuple[bytes, str]) -> None:
    private, vkey = key
    note = sign_checkpoint(NAME, 5, ROOT, NAME, private)
    body, sig = note.rsplit(" ", 1)
    raw = bytearray(base64.b64decode(sig))
    raw[10] ^= 1  # keeps the key ID, breaks the Ed25519 signature
    with pytest.raises(CheckpointError, match="does not verify"):
        parse_and_verify(f"{body} {base64.b64encode(bytes(raw)).decode()}\n", vkey)


def test_unknown_signatures_such_as_witnesses_are_ignored(key: tuple[bytes, str]) -> None:
    private, vkey = key
    witness, _ = generate_signing_key("witness.example")
    ours = sign_checkpoint(NAME, 5, ROOT, NAME, private)
    theirs = sign_checkpoint(NAME, 5, ROOT, "witness.example", witness)
    cosigned = ours + theirs.rsplit("\n\n", 1)[1]
    assert parse_and_verify(cosigned, vkey).size == 5


def _signed(text: str, key: tuple[bytes, str]) -> str:
    return sign_note(text, NAME, key[0])


B64 = base64.b64encode(ROOT).decode()
assert B64.endswith("8=")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (f"{NAME}\n05\n{B64}\n", "leading zeros"),
        (f"{NAME}\n-5\n{B64}\n", "leading zeros"),
        (f"{NAME}\n{2**64}\n{B64}\n", "leading zeros"),  # above uint64
        (f"{NAME}\n5\n", "origin, size and root"),
        (f"{NAME}\n5\n{B64}\n\nextension after an empty line\n", "non-empty lines"),
        (f"{NAME}\n5\n{base64.b64encode(ROOT[:31]).decode()}\n", "32 bytes"),
        (f"{NAME}\n5\n{B64[:-2]}\n", "not valid base64"),
        (f"{NAME}\n5\n{B64[:-2]}9=\n", "not canonical base64"),  # '8=' with a padding bit set
    ],
)
def test_validly_signed_but_malformed_body_is_refused(
    key: tuple[bytes, str], body: str, message: str
) -> None:
    with pytest.raises(CheckpointError, match=message):
        parse_and_verify(_signed(body, key), key[1])


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda n: n[:-1], "end with a newline"),
        (lambda n: n.replace("\n\n", "\n"), "no blank line"),
        (lambda n: n.replace("\u2014", "-"), "malformed signature line"),
        (lambda n: n.replace(f"\u2014 {NAME} ", f"\u2014 {NAME}"), "malformed signature line"),
        (lambda n: n.replace("\n5\n", "\n5\r\n"), "control characters"),
        (lambda n: n + "\n", "malformed signature line"),  # trailing blank line
        (lambda n: n[:-5] + "!!!!\n", "not valid base64"),
        (lambda n: n + n.rsplit("\n\n", 1)[1] * 64, "too many signatures"),
        (lambda n: n.replace(NAME, "x" * 70_000, 1), "too large"),
    ],
)
def test_malformed_note_is_refused(
    key: tuple[bytes, str], mangle: Callable[[str], str], message: str
) -> None:
    note = sign_checkpoint(NAME, 5, ROOT, NAME, key[0])
    with pytest.raises(CheckpointError, match=message):
        parse_and_verify(mangle(note), key[1])


def test_a_note_must_be_text(key: tuple[bytes, str]) -> None:
    with pytest.raises(CheckpointError, match="text"):
        parse_and_verify(sign_checkpoint(NAME, 5, ROOT, NAME, key[0]).encode(), key[1])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "vkey",
    [
        "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # wrong key ID
        "PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # upper-case ID
        "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",
        "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # type 0x65
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a3",
        "",
    ],
)
def test_malformed_verifier_keys_are_refused(vkey: str) -> None:
    with pytest.raises(CheckpointError):
        parse_vkey(vkey)


def test_signing_refuses_what_it_could_not_verify(key: tuple[bytes, str]) -> None:
    with pytest.raises(CheckpointError):
        checkpoint_body("two\nlines", 1, ROOT)
    with pytest.raises(CheckpointError):
        checkpoint_body(NAME, -1, ROOT)
    with pytest.raises(CheckpointError):
        checkpoint_body(NAME, 1, ROOT[:31])
    with pytest.raises(CheckpointError):
        sign_checkpoint(NAME, 1, ROOT, "bad+name", key[0])
    with pytest.raises(CheckpointError):
        sign_checkpoint(NAME, 1, ROOT, NAME, b"short")
