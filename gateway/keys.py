"""Scope keys in the database: created with a dataset, unwrapped on use, destroyed on erasure.

Unwrapped scope keys are cached per process (the key provider, e.g. KMS, is then asked
once per dataset rather than once per object), but every use re-reads the key's row, so
a key destroyed by another process is refused at once.
"""

from __future__ import annotations

import threading

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from gateway.db.models import ScopeKey, new_id, utcnow
from gateway.errors import DecryptionError, NotFound
from gateway.storage import crypto
from gateway.storage.base import KeyProvider, WrappedKey
from gateway.storage.scopes import ScopeWrapper, scope_key_context


class ScopeKeys:
    def __init__(self, sessions: sessionmaker[Session], provider: KeyProvider) -> None:
        self._sessions = sessions
        self._provider = provider
        self._cache: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def create(self, session: Session, scope: str, scope_id: str) -> ScopeKey:
        """A new scope key, wrapped by the provider; added to ``session`` (caller commits)."""
        row = ScopeKey(id=new_id(), scope=scope, scope_id=scope_id)
        wrapped = self._provider.wrap(crypto.new_data_key(),
                                      scope_key_context(row.id, scope, scope_id))
        row.kek_id, row.wrapped = wrapped.key_id, wrapped.wrapped
        session.add(row)
        return row

    def for_scope(self, scope: str, scope_id: str) -> ScopeWrapper:
        """The live key of a scope, to wrap new objects' data keys."""
        with self._sessions() as session:
            row = session.scalar(select(ScopeKey).where(
                ScopeKey.scope == scope, ScopeKey.scope_id == scope_id,
                ScopeKey.destroyed_at.is_(None)))
            if row is None:
                raise NotFound("no key for this scope (erased?)", reason="scope_key_missing")
            return self._wrapper(row)

    def by_id(self, key_id: str, session: Session | None = None) -> ScopeWrapper:
        """The key that wrapped an object's data key; refused once destroyed.

        Pass the caller's open ``session`` when there is one: on SQLite a second
        transaction would wait for the first one's write lock.
        """
        if session is not None:
            return self._live(session.get(ScopeKey, key_id))
        with self._sessions() as own:
            return self._live(own.get(ScopeKey, key_id))

    def _live(self, row: ScopeKey | None) -> ScopeWrapper:
        if row is None or row.destroyed_at is not None:
            raise DecryptionError()
        return self._wrapper(row)

    def destroy(self, session: Session, scope: str, scope_id: str) -> list[ScopeKey]:
        """Overwrite the wrapped material of every key of the scope (caller commits)."""
        rows = session.scalars(select(ScopeKey).where(
            ScopeKey.scope == scope, ScopeKey.scope_id == scope_id,
            ScopeKey.destroyed_at.is_(None))).all()
        for row in rows:
            row.wrapped = b""
            row.destroyed_at = utcnow()
            with self._lock:
                self._cache.pop(row.id, None)
        return list(rows)

    def rewrap(self, session: Session, current_kek: str) -> int:
        """Re-wrap every live scope key not under ``current_kek``; blobs are not touched."""
        count = 0
        rows = session.scalars(select(ScopeKey).where(
            ScopeKey.destroyed_at.is_(None), ScopeKey.kek_id != current_kek)).all()
        for row in rows:
            context = scope_key_context(row.id, row.scope, row.scope_id)
            key = self._provider.unwrap(WrappedKey(row.kek_id, row.wrapped), context)
            wrapped = self._provider.wrap(key, context)
            row.kek_id, row.wrapped, row.rewrapped_at = wrapped.key_id, wrapped.wrapped, utcnow()
            count += 1
        return count

    def _wrapper(self, row: ScopeKey) -> ScopeWrapper:
        with self._lock:
            key = self._cache.get(row.id)
        if key is None:
            context = scope_key_context(row.id, row.scope, row.scope_id)
            key = self._provider.unwrap(WrappedKey(row.kek_id, row.wrapped), context)
            with self._lock:
                self._cache[row.id] = key
        return ScopeWrapper(row.id, key)

