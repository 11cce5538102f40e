"""Receive an upload: stream the multipart body straight into the sealer.

The plaintext never touches disk: each chunk read from the socket (64 KiB) goes
through the multipart decoder into the streaming AEAD, so memory stays bounded
whatever the file's size. The type is sniffed from the first bytes before anything is
written (an unknown type stores nothing); size limits are enforced while streaming; a
refusal after sealing discards the blob, so nothing is stored.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import chain
from typing import IO

from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.http import parse_options_header
from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder, NeedData

from gateway.anonymize.dicom import HEAD, looks_like_dicom
from gateway.anonymize.inspect import inspect_image, sniff
from gateway.db.models import SealedBlob
from gateway.errors import InvalidRequest, InvalidUpload, UnsupportedMediaType, UploadTooLarge
from gateway.runtime import Runtime
from gateway.sealing import blob_context, discard_blob, open_blob, seal_blob

READ_CHUNK = 64 * 1024
FILE_FIELD = "file"
DICOM_MIME = "application/dicom"


def multipart_file_chunks(stream: IO[bytes], content_type: str | None) -> Iterator[bytes]:
    """Yield the bytes of the single file part named ``file``, as they arrive."""
    mimetype, options = parse_options_header(content_type or "")
    boundary = options.get("boundary", "")
    if mimetype != "multipart/form-data" or not boundary:
        raise InvalidRequest(
            "send the file as multipart/form-data with a part named 'file'",
            reason="not_multipart",
        )
    decoder = MultipartDecoder(boundary.encode("latin-1"), READ_CHUNK * 4, max_parts=16)
    in_file = found = False
    while True:
        try:
            event = decoder.next_event()
        except (ValueError, RequestEntityTooLarge):
            raise InvalidRequest("the multipart body is malformed",
                                 reason="bad_multipart") from None
        if isinstance(event, NeedData):
            if decoder.complete:
                raise InvalidRequest("the multipart body ended early", reason="bad_multipart")
            data = stream.read(READ_CHUNK)
            try:
                decoder.receive_data(data or None)
            except RequestEntityTooLarge:
                raise InvalidRequest("a form field is too large", reason="bad_multipart") from None
        elif isinstance(event, File) and event.name == FILE_FIELD:
            if found:
                raise InvalidRequest("send one file per request", reason="several_files")
            in_file = found = True
        elif isinstance(event, File | Field):
            in_file = False
        elif isinstance(event, Data):
            if in_file and event.data:
                yield event.data
            if not event.more_data:
                in_file = False
        elif isinstance(event, Epilogue):
            break
    if not found:
        raise InvalidRequest("the request has no file part named 'file'", reason="no_file")


def limited(chunks: Iterator[bytes], limit: int, what: str = "the file") -> Iterator[bytes]:
    total = 0
    for chunk in chunks:
        total += len(chunk)
        if total > limit:
            raise UploadTooLarge(f"{what} exceeds the limit of {limit} bytes", reason="too_large")
        yield chunk


def _peek(chunks: Iterator[bytes], size: int) -> tuple[bytes, Iterator[bytes]]:
    """The first ``size`` bytes (fewer if the file is shorter) and an iterator over all."""
    head = bytearray()
    taken: list[bytes] = []
    for chunk in chunks:
        taken.append(chunk)
        head += chunk
        if len(head) >= size:
            break
    return bytes(head[:size]), chain(taken, chunks)


def media_kind(head: bytes) -> str | None:
    """An image format name, "DICOM" (Part 10 or a bare dataset), or None."""
    return "DICOM" if looks_like_dicom(head) else sniff(head)


def receive_upload(
    runtime: Runtime, stream: IO[bytes], content_type: str | None, dataset_id: str
) -> tuple[SealedBlob, str]:
    """Seal the uploaded file as an original once its type is known; returns its media type.

    Images are decoded completely before the upload is accepted (truncated files and
    decompression bombs are refused); their encoded size is capped at 8 bytes a pixel of
    the policy's pixel limit. DICOM files are accepted on a Part 10 preamble followed by
    file meta, or a bare dataset's first element; parsing them (which can take long on a
    hostile file) is the pipeline's work, off the web worker: an unreadable file, or one
    without SOP Class and Instance UIDs, is quarantined with that reason.
    """
    chunks = limited(multipart_file_chunks(stream, content_type),
                      runtime.settings.max_upload_bytes)
    head, chunks = _peek(chunks, HEAD)
    if not head:
        raise InvalidUpload("the file is empty", reason="empty")
    kind = media_kind(head)
    if kind is None:
        raise UnsupportedMediaType(
            "not a supported type (JPEG, PNG, WebP, TIFF, BMP or DICOM Part 10 expected)",
            reason="unsupported_type")
    if kind != "DICOM":
        chunks = limited(chunks, runtime.policy.image.max_pixels * 8, "an image")
    blob = seal_blob(runtime, chunks, blob_context(dataset_id, "original"))
    try:
        if kind == "DICOM":
            return blob, DICOM_MIME
        data = b"".join(open_blob(runtime, blob))
        return blob, inspect_image(data, runtime.policy.image.max_pixels).mime
    except BaseException:
        discard_blob(runtime, blob)
        raise
