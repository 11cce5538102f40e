"""gateway.storage.s3 against moto's S3 over HTTP: streaming, atomicity, faults."""

from __future__ import annotations

import hashlib
import os
import secrets
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest

from gateway.errors import NotFound, StorageError, UploadTooLarge
from gateway.storage.s3 import PART_SIZE, S3BlobStore
from tests.integration.moto_server import TcpProxy, closed_port_url, s3_client

pytestmark = pytest.mark.integration

MIB = 1 << 20
KEY = "0123456789abcdef0123456789abcdef"


def new_key() -> str:
    return secrets.token_hex(16)


def pieces(body: bytes, size: int) -> Iterator[bytes]:
    """``body`` in chunks of ``size``, which rarely line up with S3 parts."""
    for start in range(0, len(body), size):
        yield body[start : start + size]


def failing_after(body: bytes, error: BaseException) -> Iterator[bytes]:
    yield from pieces(body, 3 * MIB)
    raise error


@pytest.fixture
def raw(moto_endpoint: str) -> Any:
    """A separate client, to look at the bucket as S3 sees it."""
    return s3_client(moto_endpoint)


def object_names(raw: Any, store: S3BlobStore) -> list[str]:
    listed = raw.list_objects_v2(Bucket=store.bucket)
    return sorted(item["Key"] for item in listed.get("Contents", []))


def pending_uploads(raw: Any, store: S3BlobStore) -> list[str]:
    listed = raw.list_multipart_uploads(Bucket=store.bucket)
    return [upload["Key"] for upload in listed.get("Uploads", [])]


@pytest.mark.parametrize(
    ("size", "parts"),
    [
        (0, 0),  # empty object: one put_object
        (5, 0),  # small: one put_object
        (PART_SIZE - 1, 0),  # the largest single request
        (PART_SIZE, 1),  # exactly one part
        (20 * MIB + 7, 3),  # two full parts and a short last one
    ],
)
def test_round_trip(s3_store: S3BlobStore, size: int, parts: int, raw: Any) -> None:
    body = os.urandom(size)
    assert s3_store.put(KEY, pieces(body, 3 * MIB + 1)) == size
    chunks = list(s3_store.get(KEY))
    assert hashlib.sha256(b"".join(chunks)).digest() == hashlib.sha256(body).digest()
    assert all(len(c) <= MIB for c in chunks)
    etag = raw.head_object(Bucket=s3_store.bucket, Key=s3_store.prefix + KEY)["ETag"]
    assert etag.endswith(f'-{parts}"') if parts else "-" not in etag  # multipart ETags: -N
    assert pending_uploads(raw, s3_store) == []


def test_put_replaces_an_object_whole(s3_store: S3BlobStore) -> None:
    s3_store.put(KEY, [b"old" * 1000])
    s3_store.put(KEY, [b"new"])
    assert b"".join(s3_store.get(KEY)) == b"new"


def test_objects_live_under_the_prefix(s3_store: S3BlobStore, raw: Any) -> None:
    s3_store.put(KEY, [b"x"])
    assert object_names(raw, s3_store) == [f"gateway/blobs/{KEY}"]
    other = S3BlobStore(s3_store.bucket, "elsewhere/", client=raw)
    assert not other.exists(KEY)
    assert list(other.keys()) == []
    with pytest.raises(NotFound):
        other.get(KEY)


def test_keys_lists_committed_objects_only(s3_store: S3BlobStore, raw: Any) -> None:
    committed = sorted(new_key() for _ in range(3))
    for key in committed:
        s3_store.put(key, [b"x"])
    client, bucket = raw, s3_store.bucket
    client.create_multipart_upload(Bucket=bucket, Key=s3_store.prefix + new_key())  # pending
    client.put_object(Bucket=bucket, Key=s3_store.prefix + "README.txt", Body=b"foreign")
    client.put_object(Bucket=bucket, Key=new_key(), Body=b"outside the prefix")
    with pytest.raises(RuntimeError):
        s3_store.put(new_key(), failing_after(os.urandom(PART_SIZE + MIB), RuntimeError()))
    assert sorted(s3_store.keys()) == committed


@pytest.mark.parametrize("size", [MIB, PART_SIZE + MIB, 2 * PART_SIZE])
@pytest.mark.parametrize("error", [RuntimeError("boom"), UploadTooLarge("limit exceeded")])
def test_failing_chunks_leave_nothing(
    s3_store: S3BlobStore, size: int, error: Exception, raw: Any
) -> None:
    """Before, during and after the first part: no object and no pending upload."""
    with pytest.raises(type(error)) as raised:
        s3_store.put(KEY, failing_after(os.urandom(size), error))
    assert raised.value is error  # propagated unchanged, not wrapped
    assert not s3_store.exists(KEY)
    assert object_names(raw, s3_store) == []
    assert pending_uploads(raw, s3_store) == []


@pytest.mark.parametrize(
    "key",
    [
        "../" + KEY,  # climbing out of the prefix
        KEY + "/../x",
        "/" + KEY,
        KEY.upper(),  # not lowercase hex
        "patient-name.dcm",  # a filename is never a key
        KEY[:31],  # too short
        "a" * 65,  # too long
        "",
    ],
)
def test_bad_keys_are_refused_before_any_request(s3_store: S3BlobStore, key: str) -> None:
    untouched: list[bytes] = []

    def chunks() -> Iterable[bytes]:
        untouched.append(b"read")
        yield b"x"

    with pytest.raises(ValueError):
        s3_store.put(key, chunks())
    for method in (s3_store.get, s3_store.delete, s3_store.exists):
        with pytest.raises(ValueError):
            method(key)
    assert untouched == []


def test_absent_objects(s3_store: S3BlobStore) -> None:
    with pytest.raises(NotFound):
        s3_store.get(KEY)  # raised by get() itself, before iteration
    assert not s3_store.exists(KEY)
    s3_store.delete(KEY)  # absent is fine


def test_delete(s3_store: S3BlobStore) -> None:
    s3_store.put(KEY, [b"x"])
    s3_store.delete(KEY)
    assert not s3_store.exists(KEY)
    assert list(s3_store.keys()) == []


def test_check(s3_store: S3BlobStore, raw: Any) -> None:
    s3_store.check()
    missing = S3BlobStore(f"{s3_store.bucket}-missing", client=raw)
    with pytest.raises(StorageError, match="-missing"):
        missing.check()
    with pytest.raises(StorageError):
        missing.put(KEY, [b"x"])


# Faults: the endpoint is unreachable, or goes away in the middle of a transfer.


def timed(call: Callable[[], object]) -> tuple[StorageError, float]:
    start = time.monotonic()
    with pytest.raises(StorageError) as raised:
        call()
    return raised.value, time.monotonic() - start


def test_unreachable_endpoint_fails_in_seconds() -> None:
    client = s3_client(closed_port_url())  # the adapter's own timeouts and retries
    store = S3BlobStore("gateway-unreachable", client=client)
    calls: list[Callable[[], object]] = [
        lambda: store.put(KEY, [b"x"]),
        lambda: store.put(KEY, pieces(os.urandom(PART_SIZE + 1), MIB)),
        lambda: list(store.get(KEY)),
        lambda: store.exists(KEY),
        lambda: store.delete(KEY),
        lambda: list(store.keys()),
        store.check,
    ]
    for call in calls:
        error, seconds = timed(call)
        assert seconds < 5
        assert "gateway-unreachable" in error.detail
        assert KEY not in error.detail


def test_endpoint_vanishing_mid_upload(s3_store: S3BlobStore, raw: Any, moto_endpoint: str) -> None:
    with TcpProxy(moto_endpoint) as proxy:
        store = S3BlobStore(s3_store.bucket, s3_store.prefix, client=s3_client(proxy.url))

        def chunks() -> Iterator[bytes]:
            yield os.urandom(PART_SIZE)  # the first part goes through
            proxy.cut()
            yield os.urandom(PART_SIZE)

        error, seconds = timed(lambda: store.put(KEY, chunks()))
    assert seconds < 10
    assert "upload_part" in error.detail
    assert not s3_store.exists(KEY)  # nothing half-written is visible
    assert object_names(raw, s3_store) == []
    # The abort could not reach S3 either: the pending upload (invisible to readers) is
    # left for the bucket's AbortIncompleteMultipartUpload lifecycle rule.
    assert pending_uploads(raw, s3_store) == [s3_store.prefix + KEY]


def test_connection_dropped_mid_download(s3_store: S3BlobStore, moto_endpoint: str) -> None:
    s3_store.put(KEY, pieces(os.urandom(20 * MIB), 4 * MIB))
    with TcpProxy(moto_endpoint) as proxy:
        store = S3BlobStore(s3_store.bucket, s3_store.prefix, client=s3_client(proxy.url))
        chunks = store.get(KEY)
        assert len(next(chunks)) == MIB
        proxy.cut()
        with pytest.raises(StorageError, match="download"):
            list(chunks)
