"""gateway.storage.local: atomic, owner-only blobs under validated keys."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.errors import NotFound, StorageError, UploadTooLarge
from gateway.storage import local
from gateway.storage.local import LocalBlobStore

pytestmark = pytest.mark.unit

KEY = "0123456789abcdef0123456789abcdef"
OTHER = "fedcba9876543210fedcba9876543210"
MIB = 1 << 20


@pytest.fixture
def store(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "blobs")


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if not p.is_dir())


def test_put_get_round_trip(store: LocalBlobStore) -> None:
    body = os.urandom(2 * MIB + 123)
    assert store.put(KEY, [body[:10], body[10 : MIB + 5], body[MIB + 5 :]]) == len(body)
    chunks = list(store.get(KEY))
    assert b"".join(chunks) == body
    assert [len(c) for c in chunks] == [MIB, MIB, 123]


def test_objects_are_sharded_and_owner_only(store: LocalBlobStore) -> None:
    store.put(KEY, [b"x"])
    path = store.root / KEY[:2] / KEY
    assert path.read_bytes() == b"x"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(store.root.stat().st_mode) == 0o700


def test_empty_objects(store: LocalBlobStore) -> None:
    assert store.put(KEY, []) == 0
    assert b"".join(store.get(KEY)) == b""
    assert store.exists(KEY)


def test_put_replaces_an_object_whole(store: LocalBlobStore) -> None:
    store.put(KEY, [b"old" * 1000])
    store.put(KEY, [b"new"])
    assert b"".join(store.get(KEY)) == b"new"


def failing_after(data: bytes, error: BaseException) -> Iterator[bytes]:
    yield data
    yield data
    raise error


@pytest.mark.parametrize(
    "error",
    [
        UploadTooLarge("limit exceeded"),  # the size limit, raised upstream
        OSError("client went away"),  # an upstream read error stays what it was
        KeyboardInterrupt(),
    ],
)
def test_failed_put_leaves_nothing_and_propagates_unchanged(
    store: LocalBlobStore, error: BaseException
) -> None:
    with pytest.raises(type(error)) as caught:
        store.put(KEY, failing_after(b"x" * MIB, error))
    assert caught.value is error
    assert files_under(store.root) == []
    assert not store.exists(KEY)
    assert list(store.keys()) == []


def test_failed_put_keeps_the_previous_object(store: LocalBlobStore) -> None:
    store.put(KEY, [b"committed"])
    with pytest.raises(UploadTooLarge):
        store.put(KEY, failing_after(b"partial", UploadTooLarge()))
    assert b"".join(store.get(KEY)) == b"committed"
    assert files_under(store.root) == [f"{KEY[:2]}/{KEY}"]


@pytest.mark.parametrize(
    "key",
    [
        "../../etc/passwd",
        "../" + KEY,
        KEY[:2] + "/../" + KEY,
        "/" + KEY,
        KEY + "\n",  # `$` would accept a trailing newline; fullmatch does not
        KEY.upper(),
        KEY[:31],  # too short
        "a" * 65,  # too long
        KEY[:31] + "g",
        "",
        ".tmp" + KEY,
        KEY.encode(),  # bytes are not keys
        None,
    ],
)
def test_keys_outside_the_pattern_are_rejected(store: LocalBlobStore, key: object) -> None:
    for call in (
        lambda: store.put(key, [b"x"]),  # type: ignore[arg-type]
        lambda: store.get(key),  # type: ignore[arg-type]
        lambda: store.delete(key),  # type: ignore[arg-type]
        lambda: store.exists(key),  # type: ignore[arg-type]
    ):
        with pytest.raises(ValueError):
            call()
    assert not store.root.exists()


def test_longest_valid_key(store: LocalBlobStore) -> None:
    key = "ab" * 32
    store.put(key, [b"x"])
    assert list(store.keys()) == [key]


def test_get_of_an_absent_key_raises_not_found_at_once(store: LocalBlobStore) -> None:
    with pytest.raises(NotFound):
        store.get(KEY)


def test_delete(store: LocalBlobStore) -> None:
    store.put(KEY, [b"x"])
    store.delete(KEY)
    store.delete(KEY)  # absent is fine
    assert not store.exists(KEY)
    with pytest.raises(NotFound):
        store.get(KEY)


def test_keys_lists_committed_objects_only(store: LocalBlobStore) -> None:
    store.put(KEY, [b"a"])
    store.put(OTHER, [b"b"])
    shard = store.root / KEY[:2]
    (shard / f".{KEY}.0011223344556677.tmp").write_bytes(b"in flight")
    (shard / OTHER).write_bytes(b"in the wrong shard")
    (store.root / "zz").mkdir()
    (store.root / "stray.txt").write_bytes(b"")
    assert sorted(store.keys()) == sorted([KEY, OTHER])


def test_keys_of_an_empty_store(store: LocalBlobStore) -> None:
    assert list(store.keys()) == []


def test_check_writes_and_removes_a_probe(store: LocalBlobStore) -> None:
    store.check()
    assert files_under(store.root) == []


def test_filesystem_errors_become_storage_errors(tmp_path: Path) -> None:
    root = tmp_path / "not-a-directory"
    root.write_bytes(b"")
    store = LocalBlobStore(root)
    for call in (store.check, lambda: store.put(KEY, [b"secret content"])):
        with pytest.raises(StorageError) as caught:
            call()
        assert str(root) in caught.value.detail
        assert "secret content" not in caught.value.detail


def test_a_directory_in_place_of_an_object_is_not_found(store: LocalBlobStore) -> None:
    store.put(KEY, [b"x"])
    path = store.root / KEY[:2] / KEY
    path.unlink()
    path.mkdir()
    assert not store.exists(KEY)
    with pytest.raises(NotFound):
        store.get(KEY)


def test_read_errors_become_storage_errors(
    store: LocalBlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.put(KEY, [b"x"])

    def broken_open(*args: object, **kwargs: object) -> None:
        raise OSError(5, "Input/output error")

    chunks = store.get(KEY)
    monkeypatch.setattr(local, "open", broken_open, raising=False)
    with pytest.raises(StorageError, match="read failed"):
        b"".join(chunks)
