"""The local keyring: key-encryption keys (KEKs) in an owner-only JSON file (embedded default).

The file is the root of trust of the embedded deployment, so it is guarded like an SSH key:
created 0600 in a 0700 directory, refused on every read if group or others may access it,
replaced atomically on every change, read through ``O_NOFOLLOW`` and checked on the open
descriptor (no swap between the check and the read).

Life of a KEK: ``active`` (exactly one; wraps every new data key) -> ``retired`` (never wraps
again, still unwraps what it wrapped) -> destroyed (its material is removed from the file, so
everything it wrapped is unreadable for good: crypto-shredding).

Several processes may share one keyring (gunicorn workers): creation and changes happen
under an exclusive ``flock`` on a fresh read, and every use re-reads the file if it changed
on disk, so a rotation or destruction by one process holds for all of them.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import re
import secrets
import stat
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from gateway.errors import ConfigError, Conflict, DecryptionError, KeyProviderError, NotFound
from gateway.storage import crypto
from gateway.storage.base import WrappedKey
from gateway.storage.local import write_private

_FORMAT = "gateway-keyring/1"
_KEK_ID = re.compile(r"kek-[0-9a-f]{16}")
_SECRET_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_T = TypeVar("_T")
Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class _Key:
    """A named 32-byte key (a KEK or a named secret) and when it was made."""

    id: str
    key: bytes = field(repr=False)
    created: str
    state: str = "active"


@dataclass
class _Ring:
    """The parsed file: KEKs in creation order, and named secrets."""

    keys: list[_Key]
    secrets: dict[str, _Key]

    @property
    def active(self) -> _Key:
        return next(k for k in self.keys if k.state == "active")

    def find(self, key_id: str) -> _Key | None:
        return next((k for k in self.keys if k.id == key_id), None)


class LocalKeyring:
    """A :class:`~gateway.storage.base.KeyProvider` backed by a local JSON file."""

    name = "local"

    def __init__(self, path: Path, *, clock: Clock = _utcnow) -> None:
        """Open an existing keyring: ``ConfigError`` if group or others may access it."""
        self.path = Path(path)
        self._clock = clock
        self._lock = threading.RLock()
        self._ring, self._stamp = self._read()

    @classmethod
    def open_or_create(cls, path: Path, *, clock: Clock = _utcnow) -> LocalKeyring:
        """Open the keyring at ``path``, creating it (and a 0700 directory) on first start."""
        path = Path(path)
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise KeyProviderError(f"keyring directory {path.parent} cannot be created") from exc
        with _file_lock(path):
            if not os.path.lexists(path):
                _publish(path, _Ring([_new_kek(clock)], {}))
        return cls(path, clock=clock)

    # KeyProvider

    def wrap(self, data_key: bytes, context: bytes) -> WrappedKey:
        kek = self._current().active
        return WrappedKey(kek.id, crypto.wrap_key(kek.key, data_key, _aad(kek.id, context)))

    def unwrap(self, wrapped: WrappedKey, context: bytes) -> bytes:
        """Unwrap with the KEK named in ``wrapped``, whether active or retired.

        A destroyed (or never known) KEK raises ``DecryptionError``: that object is shredded.
        """
        kek = self._current().find(wrapped.key_id)
        if kek is None:
            raise DecryptionError()
        return crypto.unwrap_key(kek.key, wrapped.wrapped, _aad(kek.id, context))

    def check(self) -> None:
        """Re-read the file and round-trip a probe key; ``KeyProviderError`` if that fails."""
        probe = crypto.new_data_key()
        try:
            with self._lock:
                self._ring, self._stamp = self._read()
            if self.unwrap(self.wrap(probe, b"probe"), b"probe") != probe:
                raise DecryptionError()
        except (ConfigError, DecryptionError) as exc:
            raise KeyProviderError(exc.detail) from None

    # administration

    def key_ids(self) -> dict[str, str]:
        """Every KEK id that still has key material, with its state."""
        return {k.id: k.state for k in self._current().keys}

    def rotate(self) -> str:
        """Add a new active KEK and retire the previous one; return the new id."""
        return self._mutate(self._rotate)

    def retire(self, key_id: str) -> None:
        """Stop using ``key_id`` for new wraps; it still unwraps until destroyed.

        Retiring the active KEK rotates, so there is always exactly one KEK to wrap with.
        ``NotFound`` if no such KEK exists.
        """

        def change(ring: _Ring) -> None:
            if _existing(ring, key_id).state == "active":
                self._rotate(ring)

        self._mutate(change)

    def destroy(self, key_id: str) -> None:
        """Erase ``key_id``'s material: everything it wrapped becomes unreadable for good.

        Only a retired KEK can be destroyed (``Conflict`` for the active one: rotate first);
        ``NotFound`` if it does not exist or was destroyed already.
        """

        def change(ring: _Ring) -> None:
            if _existing(ring, key_id).state == "active":
                raise Conflict(f"key {key_id} is active; rotate before destroying it")
            ring.keys = [k for k in ring.keys if k.id != key_id]

        self._mutate(change)

    def secret(self, name: str) -> bytes:
        """A stable random 32-byte secret called ``name`` (e.g. the pseudonym HMAC key).

        Created on first use and stored in the keyring apart from the KEKs, so rotation does
        not change it: the same value across restarts and processes while the keyring lives.
        """
        if not _SECRET_NAME.fullmatch(name):
            raise ValueError("secret names are 1-64 characters of [a-z0-9._-]")
        known = self._current().secrets.get(name)
        if known is not None:
            return known.key

        def change(ring: _Ring) -> bytes:
            if name not in ring.secrets:  # another process may have created it meanwhile
                created = self._clock().isoformat(timespec="seconds")
                ring.secrets[name] = _Key(name, secrets.token_bytes(32), created)
            return ring.secrets[name].key

        return self._mutate(change)

    # file handling

    def _rotate(self, ring: _Ring) -> str:
        new = _new_kek(self._clock)
        ring.keys = [replace(k, state="retired") for k in ring.keys] + [new]
        return new.id

    def _current(self) -> _Ring:
        """The ring as on disk now; the file is re-read only when it changed."""
        with self._lock:
            try:
                changed = _stamp(os.stat(self.path)) != self._stamp
            except OSError:
                changed = True  # the re-read reports what is wrong
            if changed:
                self._ring, self._stamp = self._read()
            return self._ring

    def _mutate(self, change: Callable[[_Ring], _T]) -> _T:
        """Apply ``change`` to a fresh read under the file lock, then persist it atomically."""
        with self._lock, _file_lock(self.path):
            ring, _ = self._read()
            result = change(ring)
            _publish(self.path, ring)
            self._ring, self._stamp = self._read()
        return result

    def _read(self) -> tuple[_Ring, tuple[int, ...]]:
        try:
            with open(self.path, "rb", opener=_nofollow) as file:
                info = os.fstat(file.fileno())
                _check_mode(self.path, info)
                raw = file.read()
        except OSError as exc:
            raise KeyProviderError(f"keyring {self.path} cannot be read ({exc.strerror})") from exc
        return _parse(self.path, raw), _stamp(info)


def _aad(key_id: str, context: bytes) -> bytes:
    """Wrapping AAD: a domain label, the KEK id, then the caller's context."""
    return b"gateway/kek-wrap/v1\n" + key_id.encode() + b"\n" + bytes(context)


def _new_kek(clock: Clock) -> _Key:
    created = clock().isoformat(timespec="seconds")
    return _Key(f"kek-{secrets.token_hex(8)}", secrets.token_bytes(32), created, "active")


def _existing(ring: _Ring, key_id: str) -> _Key:
    key = ring.find(key_id)
    if key is None:
        raise NotFound(f"key {key_id} is not in the keyring")
    return key


def _nofollow(path: str, flags: int) -> int:
    return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC)


def _stamp(info: os.stat_result) -> tuple[int, ...]:
    """Changes whenever the file is replaced (every write is a new inode) or edited."""
    return (info.st_ino, info.st_mtime_ns, info.st_ctime_ns, info.st_size)


def _check_mode(path: Path, info: os.stat_result) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise KeyProviderError(f"keyring {path} is not a regular file")
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        raise ConfigError(
            f"keyring {path} has mode {mode:04o}; it must not be readable by group or others"
            " (chmod 600)"
        )


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Serialize creation and changes between processes (``flock`` on a side file)."""
    lock_path = path.with_name(path.name + ".lock")
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise KeyProviderError(f"keyring lock {lock_path} cannot be opened") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _publish(path: Path, ring: _Ring) -> None:
    """Replace the keyring file atomically with a new owner-only (0600) one."""
    message = f"keyring {path} cannot be written"
    write_private(path, [_serialize(ring)], lambda e: KeyProviderError(f"{message} ({e.strerror})"))


def _serialize(ring: _Ring) -> bytes:
    def b64(key: _Key) -> str:
        return base64.b64encode(key.key).decode()

    keys = [{"id": k.id, "key": b64(k), "created": k.created, "state": k.state} for k in ring.keys]
    named = {n: {"key": b64(s), "created": s.created} for n, s in ring.secrets.items()}
    doc = {"format": _FORMAT, "keys": keys, "secrets": named}
    return json.dumps(doc, indent=2).encode() + b"\n"


def _parse(path: Path, raw: bytes) -> _Ring:
    """Validate the whole file; a bad one is refused saying where, never quoting keys."""
    try:
        doc = json.loads(raw)
        if doc.get("format") != _FORMAT:
            raise ValueError(f"format is not {_FORMAT!r}")
        keys = [_parse_kek(i, entry) for i, entry in enumerate(doc["keys"])]
        named = {
            n: _Key(n, _b64key(v["key"]), str(v["created"])) for n, v in doc["secrets"].items()
        }
        if [k.state for k in keys].count("active") != 1:
            raise ValueError("exactly one key must be active")
        if len({k.id for k in keys}) != len(keys):
            raise ValueError("key ids must be unique")
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ConfigError(f"keyring {path} is malformed: not valid JSON") from None
    except ValueError as exc:  # our own reasons, which never quote key material
        raise ConfigError(f"keyring {path} is malformed: {exc}") from None
    except (KeyError, TypeError, AttributeError):
        raise ConfigError(f"keyring {path} is malformed: a field is missing or mistyped") from None
    return _Ring(keys, named)


def _parse_kek(index: int, entry: dict[str, Any]) -> _Key:
    if not _KEK_ID.fullmatch(entry["id"]):
        raise ValueError(f"keys[{index}].id is not kek-<16 hex>")
    if entry["state"] not in ("active", "retired"):
        raise ValueError(f"keys[{index}].state is not 'active' or 'retired'")
    return _Key(entry["id"], _b64key(entry["key"]), str(entry["created"]), entry["state"])


def _b64key(text: str) -> bytes:
    try:
        key = base64.b64decode(text, validate=True)
    except ValueError:  # binascii.Error
        raise ValueError("a key is not valid base64") from None
    if len(key) != 32:
        raise ValueError("a key is not 32 bytes")
    return key
