"""Sealed blobs in a local directory (embedded default), and the atomic private write.

Objects live at ``root/<key[:2]>/<key>``. Keys are validated against a strict pattern
before any path is built, so no key can climb out of ``root``. Every object is written to
a 0600 temporary file in its final directory, fsynced and renamed into place: a reader sees
either nothing or the whole object, and an upload that fails midway leaves no trace.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TypeVar

from gateway.errors import NotFound, StorageError

_KEY = re.compile(r"[0-9a-f]{32,64}")
_SHARD = re.compile(r"[0-9a-f]{2}")
CHUNK_SIZE = 1 << 20
_R = TypeVar("_R")


def write_private(
    path: Path, chunks: Iterable[bytes], error: Callable[[OSError], Exception]
) -> int:
    """Atomically store ``chunks`` at ``path`` as an owner-only (0600) file; return its size.

    The bytes go to a temporary file beside ``path`` that is fsynced, renamed over ``path``
    and made durable by an fsync of the directory. Whatever fails, the temporary file is
    removed. An exception raised by ``chunks`` propagates unchanged; an ``OSError`` of the
    filesystem is raised as ``error(exc)``, so each caller reports in its own terms.
    """
    temp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(temp, flags, 0o600)
    except OSError as exc:
        raise error(exc) from exc
    try:
        try:
            size = _fill(fd, chunks, error)
            _os(error, os.fsync, fd)
        finally:
            os.close(fd)
        _os(error, os.replace, temp, path)
        _os(error, _fsync_dir, path.parent)
    finally:
        with contextlib.suppress(OSError):
            temp.unlink(missing_ok=True)  # gone already after a successful rename
    return size


def _fill(fd: int, chunks: Iterable[bytes], error: Callable[[OSError], Exception]) -> int:
    """Write every chunk; only the writes are translated, never the chunks' own errors."""
    size = 0
    for chunk in chunks:
        view = memoryview(chunk).cast("B")
        size += len(view)
        while view:
            view = view[_os(error, os.write, fd, view) :]
    return size


def _os(error: Callable[[OSError], Exception], call: Callable[..., _R], *args: object) -> _R:
    """Run one filesystem call, raising its ``OSError`` in the caller's terms."""
    try:
        return call(*args)
    except OSError as exc:
        raise error(exc) from exc


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalBlobStore:
    """A :class:`~gateway.storage.base.BlobStore` over a local directory.

    Errors name the store's own paths only: keys are random and say nothing about content.
    """

    name = "local"

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def put(self, key: str, chunks: Iterable[bytes]) -> int:
        path = self._path(key)
        self._mkdir(path.parent)
        return write_private(path, chunks, lambda exc: self._error("write", exc))

    def get(self, key: str) -> Iterator[bytes]:
        """Yield the object in 1 MiB chunks; ``NotFound`` is raised here, not on iteration."""
        path = self._path(key)
        if not self._isfile(path):
            raise NotFound()
        return self._read(path)

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink(missing_ok=True)
        except OSError as exc:
            raise self._error("delete", exc) from exc

    def exists(self, key: str) -> bool:
        return self._isfile(self._path(key))

    def keys(self) -> Iterator[str]:
        """Committed objects only: temporary files never match the key pattern."""
        for shard in filter(_SHARD.fullmatch, self._names(self.root)):
            names = self._names(self.root / shard)
            yield from (n for n in names if _KEY.fullmatch(n) and n.startswith(shard))

    def check(self) -> None:
        """Write, read back and remove a probe file (readiness)."""
        self._mkdir(self.root)
        probe = self.root / f".probe-{secrets.token_hex(8)}"
        try:
            write_private(probe, [b"probe"], lambda exc: self._error("write", exc))
            if probe.read_bytes() != b"probe":
                raise StorageError(f"local blob store {self.root}: probe read back wrong")
            probe.unlink()
        except OSError as exc:
            raise self._error("probe", exc) from exc

    def _path(self, key: str) -> Path:
        if not isinstance(key, str) or not _KEY.fullmatch(key):
            raise ValueError("blob keys are 32-64 lowercase hex characters")
        return self.root / key[:2] / key

    def _read(self, path: Path) -> Iterator[bytes]:
        try:
            file = open(path, "rb", buffering=0)  # noqa: SIM115 - closed by the with below
        except FileNotFoundError:
            raise NotFound() from None  # deleted since get() looked
        except OSError as exc:
            raise self._error("read", exc) from exc
        with file:
            while True:
                try:
                    chunk = file.read(CHUNK_SIZE)
                except OSError as exc:
                    raise self._error("read", exc) from exc
                if not chunk:
                    return
                yield chunk

    def _names(self, directory: Path) -> list[str]:
        try:
            return sorted(os.listdir(directory))
        except (FileNotFoundError, NotADirectoryError):
            return []
        except OSError as exc:
            raise self._error("list", exc) from exc

    def _isfile(self, path: Path) -> bool:
        try:
            return path.is_file()
        except OSError as exc:
            raise self._error("stat", exc) from exc

    def _mkdir(self, directory: Path) -> None:
        """Create ``directory`` (the root or a shard) and the root owner-only (0700)."""
        try:
            for path in dict.fromkeys((self.root, directory)):
                path.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise self._error("create a directory", exc) from exc

    def _error(self, action: str, exc: OSError) -> StorageError:
        return StorageError(f"local blob store {self.root}: {action} failed ({exc.strerror})")
