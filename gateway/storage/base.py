"""Ports of the storage layer: where sealed bytes live and who holds the keys.

Two or more implementations each, chosen by configuration (see gateway.storage.factory).
Nothing outside gateway/storage touches blob backends or `cryptography`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol


class BlobStore(Protocol):
    """Opaque bytes under random keys. Keys are never derived from content or filenames."""

    name: str

    def put(self, key: str, chunks: Iterable[bytes]) -> int:
        """Store every chunk under ``key`` atomically and return the bytes written.

        If iterating ``chunks`` raises, nothing stays stored under ``key`` (no partial
        object, no temporary file left behind) and the exception propagates unchanged.
        Backend failures raise :class:`gateway.errors.StorageError`.
        """
        ...

    def get(self, key: str) -> Iterator[bytes]:
        """Yield the stored bytes in chunks; ``NotFound`` if absent, ``StorageError`` on failure."""
        ...

    def delete(self, key: str) -> None:
        """Remove ``key``; absent keys are not an error."""
        ...

    def exists(self, key: str) -> bool: ...

    def keys(self) -> Iterator[str]:
        """Every stored key (for orphan collection)."""
        ...

    def check(self) -> None:
        """Raise ``StorageError`` unless the backend is reachable and writable (readiness)."""
        ...


@dataclass(frozen=True)
class WrappedKey:
    """A data key encrypted under the key provider's key-encryption key ``key_id``."""

    key_id: str
    wrapped: bytes


class KeyWrapper(Protocol):
    """Wraps data keys: a key provider, or a dataset key (gateway.storage.scopes)."""

    def wrap(self, data_key: bytes, context: bytes) -> WrappedKey: ...

    def unwrap(self, wrapped: WrappedKey, context: bytes) -> bytes: ...


class KeyProvider(Protocol):
    """Holds key-encryption keys; data keys are wrapped and unwrapped here, never stored bare."""

    name: str

    def wrap(self, data_key: bytes, context: bytes) -> WrappedKey:
        """Encrypt ``data_key`` under the current key-encryption key, bound to ``context``."""
        ...

    def unwrap(self, wrapped: WrappedKey, context: bytes) -> bytes:
        """Inverse of :meth:`wrap`; any mismatch raises ``DecryptionError``.

        An unreachable provider raises ``KeyProviderError`` (fail closed).
        """
        ...

    def check(self) -> None:
        """Raise ``KeyProviderError`` unless keys can be used (readiness)."""
        ...

    def secret(self, name: str) -> bytes:
        """A stable 32-byte secret called ``name`` (pseudonym HMAC keys, the audit log's
        signing key): the same value across restarts and processes."""
        ...
