"""The one recipe the rest of the gateway uses to keep bytes encrypted at rest.

Each object gets its own random data key. The key is wrapped by the key provider and the
bytes are sealed with Cobblestone-256, both bound to the same associated data: the
object's :class:`SealContext`. A blob (or wrapped key) moved to another object, swapped with
another, or rolled back to an earlier version therefore fails to open, and destroying the
KEK that wrapped a data key makes the object unreadable (crypto-shredding).
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import chain

from gateway.errors import DecryptionError
from gateway.storage import crypto
from gateway.storage.base import BlobStore, KeyWrapper, WrappedKey

_AAD_PREFIX = b"gateway/seal/v1\n"
_KIND = re.compile(r"[a-z][a-z0-9_-]{0,31}")


@dataclass(frozen=True)
class SealContext:
    """What a sealed object is; bound into the AEAD associated data of blob and key.

    ``kind`` names the role (``"original"``, ``"derivative"``, ``"report"``...) and
    ``version`` its revision, so an older blob cannot be passed off as a newer one.
    """

    object_id: str
    dataset_id: str
    kind: str
    version: int

    def __post_init__(self) -> None:
        if not (isinstance(self.object_id, str) and self.object_id):
            raise ValueError("SealContext.object_id must be a non-empty string")
        if not (isinstance(self.dataset_id, str) and self.dataset_id):
            raise ValueError("SealContext.dataset_id must be a non-empty string")
        if not (isinstance(self.kind, str) and _KIND.fullmatch(self.kind)):
            raise ValueError("SealContext.kind must be a short lowercase name")
        if type(self.version) is not int or self.version < 0:
            raise ValueError("SealContext.version must be a non-negative integer")

    def aad(self) -> bytes:
        """Canonical encoding: a domain label, then sorted-key compact JSON (unambiguous)."""
        fields = {
            "dataset_id": self.dataset_id,
            "kind": self.kind,
            "object_id": self.object_id,
            "version": self.version,
        }
        return _AAD_PREFIX + json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class SealedObject:
    """Where a sealed object is and how to unwrap its key; stored with the object's row."""

    blob_key: str  # random hex id (secrets.token_hex(16)), never derived from content
    key_id: str  # the KEK that wrapped the data key
    wrapped_key: bytes
    size: int  # plaintext bytes
    sha256: str  # hex digest of the plaintext


class Vault:
    """Seal and open objects: a blob store for the bytes, a key provider for the keys."""

    def __init__(self, store: BlobStore, keys: KeyWrapper) -> None:
        self.store = store
        self.keys = keys

    def seal(
        self, chunks: Iterable[bytes], ctx: SealContext, *, blob_key: str | None = None
    ) -> SealedObject:
        """Encrypt and store ``chunks`` as one new object, streaming (never all in memory).

        The data key is wrapped first, so an unavailable key provider stores nothing. If
        ``chunks`` raises, nothing is stored and the exception propagates unchanged.
        ``blob_key`` lets a caller record where the blob will go before writing it (so a
        crash mid-write leaves a record to collect); by default a random one is drawn.
        """
        aad = ctx.aad()
        data_key = crypto.new_data_key()
        wrapped = self.keys.wrap(data_key, aad)
        blob_key = blob_key or new_blob_key()
        digest = _Digest()
        self.store.put(blob_key, crypto.seal_stream(data_key, aad, digest.feed(chunks)))
        return SealedObject(blob_key, wrapped.key_id, wrapped.wrapped, digest.size, digest.hex)

    def open(self, obj: SealedObject, ctx: SealContext) -> Iterator[bytes]:
        """Stream the plaintext of ``obj``; ``DecryptionError`` on any mismatch or tampering.

        Key unwrapping, the blob lookup and the first piece of plaintext happen before this
        returns, so a wrong context, destroyed key, missing blob or damaged header fails
        before a caller starts answering. Later damage (and truncation) can only show at
        the end of the stream: see :func:`gateway.storage.crypto.open_stream`. A caller that
        must not act on partial data uses :meth:`open_bytes`.
        """
        aad = ctx.aad()
        data_key = self.keys.unwrap(WrappedKey(obj.key_id, obj.wrapped_key), aad)
        sealed = self.store.get(obj.blob_key)
        plaintext = _checked_size(crypto.open_stream(data_key, aad, sealed), obj.size)
        first = next(plaintext, None)
        return plaintext if first is None else chain((first,), plaintext)

    def open_bytes(self, obj: SealedObject, ctx: SealContext) -> bytes:
        """The whole plaintext, returned only once it was authenticated to the last byte."""
        return b"".join(self.open(obj, ctx))

    def destroy(self, obj: SealedObject) -> None:
        """Delete the blob (absent is fine). Shredding whole KEKs is the key provider's job."""
        self.store.delete(obj.blob_key)


def new_blob_key() -> str:
    """A random object key: never derived from content, names or ids."""
    return secrets.token_hex(16)


class _Digest:
    """Counts and hashes plaintext as it streams through."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self.size = 0

    def feed(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            self._hash.update(chunk)
            self.size += len(chunk)
            yield chunk

    @property
    def hex(self) -> str:
        return self._hash.hexdigest()


def _checked_size(plaintext: Iterator[bytes], size: int) -> Iterator[bytes]:
    """Authenticated plaintext of another length than recorded means mismatched metadata."""
    seen = 0
    for chunk in plaintext:
        seen += len(chunk)
        if seen > size:
            raise DecryptionError()
        yield chunk
    if seen != size:
        raise DecryptionError()
