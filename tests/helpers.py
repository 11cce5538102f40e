"""Helpers shared by the tests (fixtures live in conftest.py)."""

from __future__ import annotations

import io
import os
import time
import uuid
from pathlib import Path
from typing import Any

SHARED = Path(__file__).resolve().parents[2] / "shared"
POSTGRES_URL = os.environ.get("TEST_DATABASE_URL", "")


def database_overrides() -> dict[str, str]:
    """Settings for a fresh, isolated database (PostgreSQL schema or nothing for SQLite)."""
    if not POSTGRES_URL:
        return {}
    return {"database_url": POSTGRES_URL, "database_schema": f"t_{uuid.uuid4().hex[:16]}"}


def drop_schema(overrides: dict[str, str]) -> None:
    if "database_schema" not in overrides:
        return
    from sqlalchemy import create_engine, text

    url = overrides["database_url"].replace("postgresql://", "postgresql+psycopg://", 1)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{overrides["database_schema"]}" CASCADE'))
    engine.dispose()



def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def face_photo_jpeg(exif_gps: bool = True) -> bytes:
    """A real face photo shipped inside scikit-image (no download), with EXIF GPS added."""
    from PIL import Image
    from skimage import data

    img = Image.fromarray(data.astronaut())
    exif = Image.Exif()
    exif[0x010F] = "CameraMaker"  # Make
    exif[0x0110] = "SecretModel"  # Model
    if exif_gps:
        exif[0x8825] = {1: "N", 2: (51.0, 30.0, 12.0), 3: "W", 4: (0.0, 7.0, 39.0)}
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90, exif=exif, comment=b"patient: Jane Roe")
    return buf.getvalue()


def wait_for_status(client: Any, token: str, item_id: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        body = client.get(f"/v1/items/{item_id}", headers=auth(token)).get_json()
        if body["status"] in ("ready", "quarantined") or time.monotonic() > deadline:
            return body
        time.sleep(0.1)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims ``width`` x ``height`` with one tiny IDAT (a decompression bomb)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def stored_blobs(data_dir: Path) -> list[Path]:
    root = data_dir / "blobs"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def audit_tail(runtime: Any, n: int = 1) -> list[Any]:
    from audit.store import AuditQuery
    from gateway.auditing import sequence_now

    sequence_now(runtime.engine, runtime.audit)
    with runtime.engine.connect() as conn:
        size = runtime.audit.size(conn)
        return list(runtime.audit.query(conn, AuditQuery(after=size - n - 1, limit=n)))


def shares_run(haystack: bytes, original: bytes, run: int = 64) -> bool:
    """True if ``haystack`` contains any ``run``-byte run of ``original``.

    Any run of length ``run`` contains an aligned block of ``run // 2`` bytes, so it is
    enough to look for those blocks at every offset (a stricter test, never a weaker one).
    """
    half = run // 2
    blocks = {original[i:i + half] for i in range(0, len(original) - half + 1, half)}
    return any(haystack[i:i + half] in blocks for i in range(len(haystack) - half + 1))


def events_of(runtime: Any, object_id: str) -> list[str]:
    """Actions recorded for one object, in log order."""
    from audit.store import AuditQuery
    from gateway.auditing import sequence_now

    sequence_now(runtime.engine, runtime.audit)
    with runtime.engine.connect() as conn:
        return [r.event.action for r in
                runtime.audit.query(conn, AuditQuery(object_id=object_id, limit=1000))]


def dicom_like(payload_bytes: int = 1024) -> bytes:
    """A Part 10 header (preamble + 'DICM') followed by ``payload_bytes`` of filler."""
    return b"\0" * 128 + b"DICM" + b"\x02\x00\x00\x00UL\x04\x00\x00\x00\x00\x00" + (
        b"\x5a" * payload_bytes)


def raw_multipart(data: bytes) -> dict[str, Any]:
    """Built by hand: the test client spools large bodies to a temp file it never closes."""
    head = (b'--b0undary\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n'
            b"Content-Type: application/octet-stream\r\n\r\n")
    body = head + data + b"\r\n--b0undary--\r\n"
    return {"data": body, "content_type": "multipart/form-data; boundary=b0undary"}


def ct_instance(patient_id: str = "MRN-0042-7781", name: str = "Fictional^Harriet",
                study_uid: str = "1.2.826.0.1.3680043.8.498.100",
                sop_uid: str = "1.2.826.0.1.3680043.8.498.100.1",
                referenced_uid: str | None = None) -> bytes:
    """A small CT Image Storage file with patient data (fake), nested sequences and a
    private block; ``referenced_uid`` adds a ReferencedImageSequence pointing at another
    instance of the study. CT, ORIGINAL/PRIMARY: no pixel cleaning is triggered."""
    import io as _io

    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = study_uid + ".2"
    ds.FrameOfReferenceUID = study_uid + ".3"
    ds.Modality = "CT"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.PatientName = name
    ds.PatientID = patient_id
    ds.PatientBirthDate = "19610704"
    ds.AccessionNumber = "ACC77120934"
    ds.InstitutionName = "Saint Fictional Hospital"
    ds.ReferringPhysicianName = "Doctor^Imaginary"
    ds.StudyDate, ds.StudyTime = "20240102", "233000"
    ds.SeriesDate, ds.SeriesTime = "20240103", "001500"
    ds.StudyDescription = "CT HEAD for Fictional Harriet"
    ds.DeviceSerialNumber = "SN-99812"
    proc = Dataset()
    proc.PerformedProcedureStepID = "PPS-5521"
    proc.RequestingPhysician = "Doctor^Imaginary"
    ds.RequestAttributesSequence = [proc]
    if referenced_uid is not None:
        ref = Dataset()
        ref.ReferencedSOPClassUID = ds.SOPClassUID
        ref.ReferencedSOPInstanceUID = referenced_uid
        ds.ReferencedImageSequence = [ref]
    block = ds.private_block(0x0011, "ACME 1.0", create=True)
    block.add_new(0x01, "LO", "Harriet secret note")
    ds.Rows = ds.Columns = 16
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = bytes(range(256)) * 2
    buf = _io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def study_zip(extra: dict[str, bytes] | None = None) -> bytes:
    """A zip of two CT instances of one study, the second referring to the first."""
    import io as _io
    import zipfile

    first = "1.2.826.0.1.3680043.8.498.100.1"
    members = {"Fictional_Harriet/CT1.dcm": ct_instance(sop_uid=first),
               "Fictional_Harriet/CT2.dcm": ct_instance(sop_uid=first[:-1] + "2",
                                                        referenced_uid=first),
               **(extra or {})}
    buf = _io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()
