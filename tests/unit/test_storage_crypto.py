"""gateway.storage.crypto: sealing streams, wrapping keys, and failing opaquely."""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import DecryptionError, StorageError
from gateway.storage import crypto

pytestmark = pytest.mark.unit

KIB, MIB = 1 << 10, 1 << 20
CHUNK = 16 * KIB  # Cobblestone plaintext chunk
SEALED_CHUNK = CHUNK + 16  # ... and its ciphertext (tag appended)
HEADER = len(crypto.MAGIC) + 56  # magic + Cobblestone header
KEY = bytes(range(32))
CONTEXT = b"gateway/test context"


def data(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def split(blob: bytes, size: int) -> list[bytes]:
    return [blob[i : i + size] for i in range(0, len(blob), size)]


def seal(plaintext: bytes, key: bytes = KEY, context: bytes = CONTEXT) -> bytes:
    return b"".join(crypto.seal_stream(key, context, [plaintext]))


def open_all(sealed: bytes, key: bytes = KEY, context: bytes = CONTEXT) -> bytes:
    return b"".join(crypto.open_stream(key, context, [sealed]))


# Sizes around every boundary: Cobblestone's 16 KiB chunks, the 64 KiB gather threshold
# and the 1 MiB pieces handed to the library.
BOUNDARIES = [0, 1, 3, 4, 5, CHUNK - 1, CHUNK, CHUNK + 1, 64 * KIB - 1, 64 * KIB, 64 * KIB + 1]
BOUNDARIES += [MIB - 1, MIB, MIB + 1, 2 * MIB, 3 * MIB, 3 * MIB + CHUNK]


@settings(max_examples=60, deadline=None)
@given(
    size=st.one_of(st.sampled_from(BOUNDARIES), st.integers(0, 3 * MIB + CHUNK)),
    seed=st.integers(0, 2**32),
    in_split=st.integers(1, 2 * MIB),
    out_split=st.integers(1, 2 * MIB),
)
def test_seal_open_round_trip(size: int, seed: int, in_split: int, out_split: int) -> None:
    plaintext = data(size, seed)
    # at most ~512 pieces either way, so tiny splits stay fast on multi-MiB inputs
    chunks = split(plaintext, max(in_split, size // 512))
    sealed = b"".join(crypto.seal_stream(KEY, CONTEXT, chunks))
    assert sealed.startswith(crypto.MAGIC)
    pieces = split(sealed, max(out_split, len(sealed) // 512))
    assert b"".join(crypto.open_stream(KEY, CONTEXT, pieces)) == plaintext


def test_accepts_any_bytes_like_chunks() -> None:
    plaintext = data(200 * KIB)
    chunks: list[Any] = [
        bytearray(plaintext[:10]),
        memoryview(plaintext)[10 : 100 * KIB],
        plaintext[100 * KIB :],
    ]
    assert open_all(b"".join(crypto.seal_stream(KEY, CONTEXT, chunks))) == plaintext


def test_mixed_small_and_large_chunks() -> None:
    # Small reads are gathered in a reused 1 MiB buffer, large ones pass through: the
    # order must survive every switch between the two and every buffer flush.
    rng = random.Random(7)
    sizes = [rng.choice([1, 100, 8 * KIB, 64 * KIB - 1, 64 * KIB, 300 * KIB]) for _ in range(120)]
    plaintext = data(sum(sizes), seed=7)
    chunks, start = [], 0
    for size in sizes:
        chunks.append(plaintext[start : start + size])
        start += size
    sealed = b"".join(crypto.seal_stream(KEY, CONTEXT, chunks))
    assert b"".join(crypto.open_stream(KEY, CONTEXT, split(sealed, 5000))) == plaintext


def test_sealing_is_randomized() -> None:
    assert seal(b"same") != seal(b"same")


MIDDLE_SIZE = 5 * CHUNK + 1234  # five full chunks and a partial last one


@pytest.mark.parametrize(
    "position",
    [
        0,  # magic
        3,  # last magic byte
        4,  # first byte of the Cobblestone header (nonce/salt)
        HEADER - 1,  # last header byte
        HEADER,  # first ciphertext byte
        HEADER + SEALED_CHUNK - 1,  # tag of the first chunk
        HEADER + 2 * SEALED_CHUNK + 999,  # middle
        -17,  # last full chunk's tag neighbourhood
        -1,  # last byte
    ],
)
def test_bit_flip_anywhere_is_refused(position: int) -> None:
    sealed = bytearray(seal(data(MIDDLE_SIZE)))
    sealed[position] ^= 0x01
    with pytest.raises(DecryptionError):
        open_all(bytes(sealed))


@pytest.mark.parametrize(
    "keep",
    [
        lambda n: n - 1,  # one byte short
        lambda n: n - SEALED_CHUNK,  # a whole chunk short
        lambda n: HEADER,  # header only
        lambda n: len(crypto.MAGIC),  # magic only
        lambda n: 3,  # not even the magic
        lambda n: 0,  # empty
    ],
)
def test_truncation_is_refused(keep: Callable[[int], int]) -> None:
    sealed = seal(data(MIDDLE_SIZE))
    with pytest.raises(DecryptionError):
        open_all(sealed[: keep(len(sealed))])


def test_dropping_the_final_chunk_at_a_chunk_boundary_is_refused() -> None:
    # A multiple of the chunk size ends with an empty final chunk (just a tag): without it
    # every remaining chunk is authentic, and only finalize() can notice.
    plaintext = data(4 * CHUNK)
    sealed = seal(plaintext)
    assert len(sealed) == HEADER + 4 * SEALED_CHUNK + 16
    stream = crypto.open_stream(KEY, CONTEXT, [sealed[:-16]])
    released = b""
    with pytest.raises(DecryptionError):
        for piece in stream:
            released += piece
    assert plaintext.startswith(released)  # only authenticated plaintext was released


@pytest.mark.parametrize("extra", [b"\x00", b"GWS1", b"x" * SEALED_CHUNK])
def test_appended_bytes_are_refused(extra: bytes) -> None:
    with pytest.raises(DecryptionError):
        open_all(seal(data(MIDDLE_SIZE)) + extra)


def test_two_concatenated_streams_are_refused() -> None:
    with pytest.raises(DecryptionError):
        open_all(seal(b"first") + seal(b"second"))


def test_wrong_context_is_refused() -> None:
    sealed = seal(b"bound to its context")
    with pytest.raises(DecryptionError):
        open_all(sealed, context=CONTEXT + b"x")
    with pytest.raises(DecryptionError):
        open_all(sealed, context=b"")


@pytest.mark.parametrize("key", [bytes(32), bytes(reversed(KEY)), KEY[:16], b""])
def test_wrong_key_is_refused(key: bytes) -> None:
    with pytest.raises(DecryptionError):
        open_all(seal(b"secret"), key=key)


def test_another_format_magic_is_refused() -> None:
    sealed = seal(b"version one")
    with pytest.raises(DecryptionError):
        open_all(b"GWS2" + sealed[4:])


def test_the_failure_says_nothing() -> None:
    sealed = bytearray(seal(data(100)))
    sealed[-1] ^= 1
    with pytest.raises(DecryptionError) as caught:
        open_all(bytes(sealed))
    assert str(caught.value) == DecryptionError.title
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


def test_a_tampered_later_chunk_releases_only_authentic_plaintext() -> None:
    plaintext = data(6 * CHUNK)
    sealed = bytearray(seal(plaintext))
    sealed[HEADER + 4 * SEALED_CHUNK + 10] ^= 0x80
    released = b""
    with pytest.raises(DecryptionError):
        for piece in crypto.open_stream(KEY, CONTEXT, split(bytes(sealed), SEALED_CHUNK)):
            released += piece
    assert len(released) <= 4 * CHUNK
    assert plaintext.startswith(released)


def test_errors_of_the_source_pass_through_unchanged() -> None:
    boom = StorageError("disk gone")

    def source() -> Iterator[bytes]:
        yield seal(b"x" * 100_000)[:1000]
        raise boom

    with pytest.raises(StorageError) as caught:
        b"".join(crypto.open_stream(KEY, CONTEXT, source()))
    assert caught.value is boom

    def plaintext() -> Iterator[bytes]:
        yield b"a" * 100
        raise boom

    with pytest.raises(StorageError) as caught:
        b"".join(crypto.seal_stream(KEY, CONTEXT, plaintext()))
    assert caught.value is boom


def test_sealing_refuses_a_short_key() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        crypto.seal_stream(KEY[:16], CONTEXT, [b""])


def test_new_data_keys_are_random_32_bytes() -> None:
    keys = {crypto.new_data_key() for _ in range(100)}
    assert len(keys) == 100
    assert {len(k) for k in keys} == {32}


def test_magic_is_not_a_common_file_magic() -> None:
    common = [b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"%PDF", b"PK\x03\x04", b"\x1f\x8b"]
    common += [b"BM", b"II*\x00", b"MM\x00*", b"RIFF", b"DICM", b"\x7fELF", b"7z\xbc\xaf"]
    assert len(crypto.MAGIC) == 4
    assert not any(crypto.MAGIC.startswith(m) or m.startswith(crypto.MAGIC) for m in common)


# key wrapping


def test_wrap_round_trip_and_randomized_nonce() -> None:
    kek, dek = crypto.new_data_key(), crypto.new_data_key()
    first, second = crypto.wrap_key(kek, dek, b"aad"), crypto.wrap_key(kek, dek, b"aad")
    assert first != second and first[:12] != second[:12]
    assert len(first) == 12 + 32 + 16
    assert crypto.unwrap_key(kek, first, b"aad") == dek


@pytest.mark.parametrize(
    "mutate",
    [
        lambda kek, w, aad: (kek, w, aad + b"x"),  # other associated data
        lambda kek, w, aad: (bytes(32), w, aad),  # other KEK
        lambda kek, w, aad: (kek, w[:-1], aad),  # truncated
        lambda kek, w, aad: (kek, w[:20], aad),  # shorter than nonce + tag
        lambda kek, w, aad: (kek, bytes([w[0] ^ 1]) + w[1:], aad),  # nonce flipped
        lambda kek, w, aad: (kek, w[:-1] + bytes([w[-1] ^ 1]), aad),  # tag flipped
        lambda kek, w, aad: (kek[:16], w, aad),  # malformed KEK
    ],
)
def test_unwrap_failures_are_opaque(mutate: Callable[..., tuple[bytes, bytes, bytes]]) -> None:
    kek, dek = crypto.new_data_key(), crypto.new_data_key()
    wrapped = crypto.wrap_key(kek, dek, b"aad")
    with pytest.raises(DecryptionError) as caught:
        crypto.unwrap_key(*mutate(kek, wrapped, b"aad"))
    assert caught.value.__cause__ is None


def test_only_the_crypto_module_imports_cryptography() -> None:
    # The audit package signs checkpoints on its own (it may not import gateway), so the
    # rule covers the service: one place to review how gateway uses the primitives.
    package = Path(crypto.__file__).resolve().parents[1]
    pattern = re.compile(r"^\s*(import|from)\s+cryptography\b", re.MULTILINE)
    offenders = [
        str(path.relative_to(package))
        for path in sorted(package.rglob("*.py"))
        if pattern.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == ["storage/crypto.py"]
