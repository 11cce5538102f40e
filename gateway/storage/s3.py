"""Sealed blobs in any S3 API (AWS S3, MinIO, Ceph) through boto3.

Objects live at ``prefix + key`` in one bucket; keys are random hex checked against the
same pattern as the local store, so an object key never carries a filename or content.

Writes stream as a multipart upload of 8 MiB parts, holding at most one part in memory.
S3 makes a multipart object visible only when the upload completes, which gives the same
all-or-nothing promise as the local store's rename: if the chunks raise or S3 fails, the
upload is aborted and no object (and no billed, dangling upload) is left behind. An
upload whose abort cannot reach S3 either (the endpoint went away) stays pending until a
bucket lifecycle rule (``AbortIncompleteMultipartUpload``) removes it: configure one.

Every botocore failure is translated here into :class:`~gateway.errors.StorageError`,
naming the bucket, the action and the S3 error code, never object content. The client
uses short timeouts and a few standard retries, so an unreachable endpoint fails a
request in seconds rather than hanging a worker for minutes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from urllib3.exceptions import HTTPError

from gateway.errors import NotFound, StorageError
from gateway.storage.local import _KEY, CHUNK_SIZE

PART_SIZE = 8 << 20  # S3 wants >= 5 MiB for every part but the last; 10,000 parts = 80 GB
_MISSING = frozenset({"NoSuchKey", "404", "NotFound"})
_Call = Callable[..., Any]

# Failures of the transport or the service, as opposed to errors of the caller's chunks.
_FAILURES: tuple[type[BaseException], ...] = (BotoCoreError, ClientError, HTTPError, OSError)


def client_config(*, custom_endpoint: bool) -> Config:
    """Timeouts and retries for every S3 client the gateway makes.

    S3-compatible servers (MinIO, Ceph) are addressed path-style, as their endpoints rarely
    have wildcard DNS, and are sent checksums only where the API requires them: botocore's
    default trailing CRC checksums are refused by many of them. Integrity does not rest on
    those checksums anyway: every blob is AEAD-sealed and authenticated when opened.
    """
    config = Config(
        connect_timeout=5,
        read_timeout=30,
        retries={"mode": "standard", "total_max_attempts": 3},  # not max_attempts: retries only
    )
    if custom_endpoint:
        config = config.merge(
            Config(
                s3={"addressing_style": "path"},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            )
        )
    return config


def make_client(
    endpoint_url: str | None = None, region: str | None = None, **credentials: Any
) -> Any:
    """A boto3 S3 client with :func:`client_config`; ``credentials`` are explicit boto3 keys.

    Without credentials boto3's usual chain applies (environment, profile, instance role).
    """
    config = client_config(custom_endpoint=endpoint_url is not None)
    return boto3.client(
        "s3", endpoint_url=endpoint_url, region_name=region, config=config, **credentials
    )


class S3BlobStore:
    """A :class:`~gateway.storage.base.BlobStore` over one bucket (and optional prefix)."""

    name = "s3"

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        client: Any = None,
    ) -> None:
        """Use ``client`` if given (tests, shared sessions), else build one for the endpoint."""
        if not bucket:
            raise ValueError("S3BlobStore needs a bucket name")
        self.bucket = bucket
        self.prefix = prefix
        self._s3 = client if client is not None else make_client(endpoint_url, region)

    def put(self, key: str, chunks: Iterable[bytes]) -> int:
        """Stream ``chunks`` to S3; small objects in one request, larger ones in parts."""
        name = self._name(key)
        buffer = bytearray()
        upload: _Upload | None = None
        size = 0
        try:
            for chunk in chunks:
                buffer += chunk
                size += len(chunk)
                while len(buffer) >= PART_SIZE:
                    if upload is None:
                        upload = _Upload(self._call, self._s3, self.bucket, name)
                    upload.send(bytes(buffer[:PART_SIZE]))
                    del buffer[:PART_SIZE]
            if upload is None:
                self._call(self._s3.put_object, Bucket=self.bucket, Key=name, Body=bytes(buffer))
            else:
                if buffer:
                    upload.send(bytes(buffer))
                upload.complete()
        except BaseException:
            if upload is not None:
                upload.abort()
            raise
        return size

    def get(self, key: str) -> Iterator[bytes]:
        """Yield the object in 1 MiB chunks; ``NotFound`` is raised here, not on iteration."""
        name = self._name(key)
        try:
            response = self._s3.get_object(Bucket=self.bucket, Key=name)
        except ClientError as exc:
            if _code(exc) in _MISSING:
                raise NotFound() from None
            raise self._error("get_object", exc) from exc
        except _FAILURES as exc:
            raise self._error("get_object", exc) from exc
        return self._stream(response["Body"])

    def delete(self, key: str) -> None:
        self._call(self._s3.delete_object, Bucket=self.bucket, Key=self._name(key))

    def exists(self, key: str) -> bool:
        name = self._name(key)
        try:
            self._s3.head_object(Bucket=self.bucket, Key=name)
        except ClientError as exc:
            if _code(exc) in _MISSING:
                return False
            raise self._error("head_object", exc) from exc
        except _FAILURES as exc:
            raise self._error("head_object", exc) from exc
        return True

    def keys(self) -> Iterator[str]:
        """Committed objects under the prefix (pending uploads are not objects yet)."""
        pages = self._s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix
        )
        try:
            for page in pages:
                for item in page.get("Contents", []):
                    key = item["Key"][len(self.prefix) :]
                    if _KEY.fullmatch(key):  # skips foreign objects and "folders"
                        yield key
        except _FAILURES as exc:
            raise self._error("list_objects_v2", exc) from exc

    def check(self) -> None:
        """The bucket exists and these credentials reach it (``head_bucket``).

        No probe object is written: a readiness check running every few seconds would fill
        a versioned bucket with delete markers.
        """
        self._call(self._s3.head_bucket, Bucket=self.bucket)

    def _name(self, key: str) -> str:
        if not isinstance(key, str) or not _KEY.fullmatch(key):
            raise ValueError("blob keys are 32-64 lowercase hex characters")
        return self.prefix + key

    def _stream(self, body: Any) -> Iterator[bytes]:
        """Translate a connection dropped mid-download into ``StorageError``."""
        try:
            yield from body.iter_chunks(CHUNK_SIZE)
        except _FAILURES as exc:
            raise self._error("download", exc) from exc
        finally:
            body.close()

    def _call(self, call: Callable[..., Any], **params: Any) -> Any:
        """Run one S3 request, raising its failure as ``StorageError`` named after it."""
        try:
            return call(**params)
        except _FAILURES as exc:
            raise self._error(call.__name__, exc) from exc

    def _error(self, action: str, exc: BaseException) -> StorageError:
        """Bucket, action and error code only: botocore messages may quote request URLs."""
        reason = _code(exc) if isinstance(exc, ClientError) else type(exc).__name__
        return StorageError(f"S3 bucket {self.bucket}: {action} failed ({reason})")


class _Upload:
    """One multipart upload: its parts so far, then completed or aborted."""

    def __init__(self, call: _Call, s3: Any, bucket: str, name: str) -> None:
        self._call = call
        self._s3 = s3
        self._params = {"Bucket": bucket, "Key": name}
        self._params["UploadId"] = call(s3.create_multipart_upload, **self._params)["UploadId"]
        self._parts: list[dict[str, Any]] = []

    def send(self, data: bytes) -> None:
        number = len(self._parts) + 1
        sent = self._call(self._s3.upload_part, PartNumber=number, Body=data, **self._params)
        self._parts.append({"PartNumber": number, "ETag": sent["ETag"]})

    def complete(self) -> None:
        parts = {"Parts": self._parts}
        self._call(self._s3.complete_multipart_upload, MultipartUpload=parts, **self._params)

    def abort(self) -> None:
        """Best effort: the exception on its way out already says what went wrong."""
        with contextlib.suppress(StorageError):
            self._call(self._s3.abort_multipart_upload, **self._params)


def _code(exc: ClientError) -> str:
    """The S3 error code (``NoSuchKey``, ``AccessDenied``, or the bare status for HEAD)."""
    return str(exc.response.get("Error", {}).get("Code", "unknown"))
