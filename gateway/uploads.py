"""Receive an upload: stream the multipart body straight into the sealer.

The plaintext never touches disk: each chunk read from the socket (64 KiB) goes
through the multipart decoder into the streaming AEAD. The size limit is enforced
while streaming; on any refusal the sealed blob is destroyed, so nothing is stored.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import chain
from typing import IO

from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.http import parse_options_header
from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder, NeedData

from gateway.anonymize.inspect import ImageInfo, inspect_image
from gateway.db.models import SealedBlob
from gateway.errors import InvalidRequest, InvalidUpload, UploadTooLarge
from gateway.runtime import Runtime
from gateway.sealing import blob_context, discard_blob, open_blob, seal_blob

READ_CHUNK = 64 * 1024
FILE_FIELD = "file"


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


def _limited(chunks: Iterator[bytes], limit: int) -> Iterator[bytes]:
    total = 0
    for chunk in chunks:
        total += len(chunk)
        if total > limit:
            raise UploadTooLarge(f"the file exceeds the limit of {limit} bytes", reason="too_large")
        yield chunk


def receive_image(
    runtime: Runtime, stream: IO[bytes], content_type: str | None, dataset_id: str
) -> tuple[SealedBlob, ImageInfo]:
    """Seal the uploaded file as an original, then check it is an image we can process."""
    limit = runtime.settings.max_upload_bytes
    chunks = _limited(multipart_file_chunks(stream, content_type), limit)
    first = next((c for c in chunks if c), None)
    if first is None:
        raise InvalidUpload("the file is empty", reason="empty")
    blob = seal_blob(runtime, chain([first], chunks), blob_context(dataset_id, "original"))
    try:
        data = b"".join(open_blob(runtime, blob))
        info = inspect_image(data, runtime.policy.image.max_pixels)
    except BaseException:
        discard_blob(runtime, blob)
        raise
    return blob, info
