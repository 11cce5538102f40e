"""A study uploaded as one zip archive: every DICOM member becomes an item.

UID relations survive because the DICOM engine maps UIDs with a keyed, deterministic
function: members of one archive, or files of one study uploaded one by one, get the same
new Study/Series UIDs and their references still point at each other.

The archive is held in memory by the web worker while it is unpacked (zip needs random
access), so it is capped by ``max_upload_bytes`` like any upload; each member is sealed
as an original before anything is committed, and the whole upload is refused, with
nothing stored, when the archive is unreadable, encrypted, a zip bomb (a member larger
than the upload limit, or members together more than four times it) or holds no DICOM
file. Members that are not DICOM instances (text files, a DICOMDIR index, which lists
patient names) are skipped and counted; member names never reach an error, a log or the
audit log (they often are patient names).
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass

from gateway.anonymize.dicom import HEAD, looks_like_dicom
from gateway.db.models import SealedBlob
from gateway.errors import InvalidUpload, UploadTooLarge
from gateway.runtime import Runtime
from gateway.sealing import blob_context, discard_blob, seal_blob

ZIP_MAGIC = (b"PK\x03\x04",)
DICOMDIR_CLASS = b"1.2.840.10008.1.3.10"
BOMB_FACTOR = 4


@dataclass
class Unpacked:
    blobs: list[SealedBlob]
    skipped: int


def is_zip(head: bytes) -> bool:
    return head.startswith(ZIP_MAGIC)


def seal_members(runtime: Runtime, archive: bytes, dataset_id: str) -> Unpacked:
    """Seal every DICOM member (pending blobs: the caller keeps them in its commit)."""
    limit = runtime.settings.max_upload_bytes
    blobs: list[SealedBlob] = []
    skipped = 0
    try:
        for data in _members(archive, limit):
            if data is None:
                skipped += 1
                continue
            blobs.append(seal_blob(runtime, [data], blob_context(dataset_id, "original")))
    except BaseException:
        for blob in blobs:
            discard_blob(runtime, blob)
        raise
    if not blobs:
        raise InvalidUpload("the archive holds no DICOM file", reason="archive_without_dicom")
    return Unpacked(blobs, skipped)


def _members(archive: bytes, limit: int) -> Iterator[bytes | None]:
    """Each member's bytes if it is a DICOM instance, else None; refuses bombs."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(archive))
        infos = [i for i in zf.infolist() if not i.is_dir()]
    except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError):
        raise InvalidUpload("the archive cannot be read", reason="archive_unreadable") from None
    if any(i.file_size > limit for i in infos):
        raise UploadTooLarge(f"an archive member exceeds the limit of {limit} bytes",
                             reason="archive_member_too_large")
    if sum(i.file_size for i in infos) > BOMB_FACTOR * limit:
        raise UploadTooLarge("the archive expands beyond what the gateway accepts",
                             reason="archive_too_large")
    for info in infos:
        if info.flag_bits & 0x1:
            raise InvalidUpload("the archive is encrypted", reason="archive_encrypted")
        try:
            with zf.open(info) as member:
                data = member.read(limit + 1)  # sizes in the directory can lie
        except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError, EOFError):
            raise InvalidUpload("the archive cannot be read",
                                reason="archive_unreadable") from None
        if len(data) > limit:
            raise UploadTooLarge(f"an archive member exceeds the limit of {limit} bytes",
                                 reason="archive_member_too_large")
        dicom = looks_like_dicom(data[:HEAD]) and DICOMDIR_CLASS not in data[:512]
        yield data if dicom else None
