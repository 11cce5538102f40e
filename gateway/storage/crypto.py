"""The one safe recipe over the primitives; the only module that imports ``cryptography``.

Two operations, each with an explicit context and one opaque failure:

* **Sealing** streams of bytes with Cobblestone-256 (C2SP chunked encryption: HKDF-SHA-512
  and AES-256-GCM over 16 KiB chunks, with reordering and truncation protection). A sealed
  stream is ``MAGIC || cobblestone-ciphertext``. The magic lets the format evolve; it is also
  bound into the Cobblestone context (see :func:`_stream_context`), so a sealed stream can
  never be reinterpreted under another format version by editing its first bytes.
* **Wrapping** 32-byte data keys under a key-encryption key with AES-256-GCM
  (``nonce(12) || ciphertext+tag``), for the local keyring. Random 96-bit nonces are safe for
  far more wraps than one KEK will ever see (rotate long before 2**32).

Every failure to open or unwrap is the single :class:`~gateway.errors.DecryptionError`,
without detail and without the library's exception attached: the caller learns "no", never
why (wrong key, wrong context, tampering and truncation look the same).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator

from cryptography.cobblestone import Cobblestone256Decryptor, Cobblestone256Encryptor
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.errors import DecryptionError

__all__ = [
    "KEY_SIZE",
    "MAGIC",
    "new_data_key",
    "open_stream",
    "seal_stream",
    "unwrap_key",
    "wrap_key",
]

#: Format marker of sealed streams ("gateway sealed, version 1"). Not the magic of any
#: common file type, so sniffers never mistake a sealed blob for an image or archive.
MAGIC = b"GWS1"
KEY_SIZE = 32
_Buffer = bytes | bytearray | memoryview
_PIECE = 1 << 20  # feed the library ~1 MiB at a time: few Python calls, bounded outputs
_SMALL = 64 << 10  # chunks below this are gathered into one piece, larger ones sliced
_NONCE_SIZE = 12
_TAG_SIZE = 16


def new_data_key() -> bytes:
    """A fresh random 32-byte key (one per sealed object, never reused)."""
    return os.urandom(KEY_SIZE)


def _stream_context(context: bytes) -> bytes:
    """The Cobblestone context: the caller's context under this format's label."""
    return MAGIC + b"\n" + bytes(context)


def _pieces(chunks: Iterable[_Buffer]) -> Iterator[_Buffer]:
    """Regroup ``chunks`` into pieces of at most 1 MiB, copying as little as possible.

    Chunks of 64 KiB or more are sliced without copying; smaller ones (network reads) are
    gathered into one reused buffer, so the library is not called once per tiny read. A
    piece is only valid until the next one is requested: it views the caller's chunk or
    the reused buffer, and both callers hand it to the library at once.
    """
    buffer = memoryview(b"")  # becomes a 1 MiB buffer at the first small chunk
    filled = 0
    for chunk in chunks:
        data = memoryview(chunk).cast("B")
        if len(data) >= _SMALL:
            if filled:
                yield buffer[:filled]
                filled = 0
            for start in range(0, len(data), _PIECE):
                yield data[start : start + _PIECE]
            continue
        if not buffer:
            buffer = memoryview(bytearray(_PIECE))
        elif filled + len(data) > _PIECE:
            yield buffer[:filled]
            filled = 0
        buffer[filled : filled + len(data)] = data
        filled += len(data)
    if filled:
        yield buffer[:filled]


def _check_key(key: bytes) -> None:
    if len(key) != KEY_SIZE:
        raise ValueError(f"key must be {KEY_SIZE} bytes")


def seal_stream(key: bytes, context: bytes, chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Encrypt ``chunks`` under ``key`` bound to ``context``, yielding the sealed stream.

    ``key`` must be fresh random bytes used for this one stream (see :func:`new_data_key`).
    Nothing is buffered beyond ~1 MiB; an exception raised by ``chunks`` propagates as is.
    """
    _check_key(key)
    encryptor = Cobblestone256Encryptor(key, _stream_context(context))
    return _seal(encryptor, chunks)


def _seal(encryptor: Cobblestone256Encryptor, chunks: Iterable[bytes]) -> Iterator[bytes]:
    yield MAGIC + encryptor.update(b"")  # the magic and the 56-byte Cobblestone header
    for piece in _pieces(chunks):
        out = encryptor.update(piece)
        if out:
            yield out
    yield encryptor.finalize()


def open_stream(key: bytes, context: bytes, chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Decrypt a sealed stream, yielding plaintext only once the library authenticated it.

    Each yielded piece is authentic, but the stream as a whole is only proven complete when
    the iterator is exhausted: truncation, appended bytes or tampering with a later chunk
    raise :class:`DecryptionError` at that later point. A consumer that must not act on a
    possibly truncated object collects everything first (``b"".join(...)``). Exceptions
    raised by ``chunks`` itself (storage errors) propagate unchanged.
    """
    try:
        decryptor = Cobblestone256Decryptor(key, _stream_context(context))
    except Exception:
        raise DecryptionError() from None
    return _open(decryptor, chunks)


def _open(decryptor: Cobblestone256Decryptor, chunks: Iterable[bytes]) -> Iterator[bytes]:
    pieces = _pieces(_after_magic(chunks))
    for piece in pieces:
        out = _guarded(decryptor.update, piece)
        if out:
            yield out
    out = _guarded(decryptor.finalize)
    if out:
        yield out


def _after_magic(chunks: Iterable[bytes]) -> Iterator[_Buffer]:
    """Check and strip the format magic, which may arrive split over several chunks."""
    head = bytearray()
    iterator = iter(chunks)
    for chunk in iterator:
        view = memoryview(chunk).cast("B")
        take = len(MAGIC) - len(head)
        head += view[:take]
        if len(head) == len(MAGIC):
            if head != MAGIC:
                raise DecryptionError()
            if len(view) > take:
                yield view[take:]
            yield from iterator
            return
    raise DecryptionError()  # shorter than the magic: empty or truncated


def _guarded(call: Callable[..., bytes], *args: object) -> bytes:
    """Run a decryptor call; any failure at all becomes the one opaque error."""
    try:
        return call(*args)
    except Exception:
        raise DecryptionError() from None


def wrap_key(kek: bytes, data_key: bytes, aad: bytes) -> bytes:
    """Encrypt ``data_key`` under ``kek`` (AES-256-GCM) bound to ``aad``."""
    _check_key(kek)
    nonce = os.urandom(_NONCE_SIZE)
    return nonce + AESGCM(kek).encrypt(nonce, bytes(data_key), bytes(aad))


def unwrap_key(kek: bytes, wrapped: bytes, aad: bytes) -> bytes:
    """Inverse of :func:`wrap_key`; any failure is :class:`DecryptionError`."""
    if len(wrapped) < _NONCE_SIZE + _TAG_SIZE:
        raise DecryptionError()
    try:
        return AESGCM(kek).decrypt(wrapped[:_NONCE_SIZE], wrapped[_NONCE_SIZE:], aad)
    except Exception:
        raise DecryptionError() from None
