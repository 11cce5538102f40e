"""Wrapping data keys under a scope key (a dataset's key), the middle of the hierarchy.

KEK (key provider: keyring file or KMS) -> scope key (one per dataset) -> data key (one
per object). The provider is asked once per scope key, not once per object, and erasing
a scope needs only its one key destroyed.
"""

from __future__ import annotations

from gateway.errors import DecryptionError
from gateway.storage import crypto
from gateway.storage.base import WrappedKey

_LABEL = b"gateway/scope-wrap/v1\n"


class ScopeWrapper:
    """A KeyProvider-shaped wrapper around one unwrapped scope key."""

    name = "scope"

    def __init__(self, key_id: str, key: bytes) -> None:
        self.key_id = key_id
        self._key = key

    def wrap(self, data_key: bytes, context: bytes) -> WrappedKey:
        return WrappedKey(self.key_id, crypto.wrap_key(self._key, data_key, self._aad(context)))

    def unwrap(self, wrapped: WrappedKey, context: bytes) -> bytes:
        if wrapped.key_id != self.key_id:
            raise DecryptionError()
        return crypto.unwrap_key(self._key, wrapped.wrapped, self._aad(context))

    def check(self) -> None:
        return None

    def _aad(self, context: bytes) -> bytes:
        return _LABEL + self.key_id.encode() + b"\n" + context


def scope_key_context(key_id: str, scope: str, scope_id: str) -> bytes:
    """What a scope key's wrapping by the KEK is bound to."""
    return b"gateway/scope-key/v1\n" + f"{key_id}\n{scope}\n{scope_id}".encode()
