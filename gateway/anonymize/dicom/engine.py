"""The DICOM engine: one Part 10 file (or raw dataset) in, a de-identified file out.

``anonymize_dicom(data, policy, pseudonyms)`` reads, cleans the pixels when the policy
says the file may carry burned-in text or faces, de-identifies the header (see
:mod:`.header`), records what was done (PatientIdentityRemoved, DeidentificationMethod,
its CID 7050 code sequence, LongitudinalTemporalInformationModified)  and **checks
what it is about to write**: the Type 1 UIDs the input had, no private element the
policy did not keep, none of the patient's identifying words in any value. Any doubt raises
:class:`AnonymizationFailed` with a reason code; the caller quarantines.

Transfer syntax: header-only work keeps the input's, encapsulated pixel data untouched
(no decode, no re-encode: the fast path for CT/MR/RT). A file with cleaned pixels keeps
its syntax when a lossless encoder exists for it, otherwise becomes Explicit VR Little
Endian (see :mod:`.pixels`). A file with no file meta gets one. Big endian stays big endian
(pydicom writes it); deflated stays deflated.
"""

from __future__ import annotations

import io
import re
import struct
import time
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

import pydicom
from pydicom import config
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import (
    correct_ambiguous_vr_element,
    write_data_element,
    write_dataset,
)
from pydicom.sequence import Sequence
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from gateway.anonymize.dicom.header import (
    HeaderCleaner,
    element,
    element_vr,
    identifying_words,
)
from gateway.anonymize.dicom.pseudonyms import Pseudonymizer
from gateway.errors import AnonymizationFailed, InvalidUpload
from policies import Policy
from policies.dicom import BASIC_PROFILE_CODE, OPTIONS, PIXEL_OPTIONS, compile_profile

# Uploaded files break VR rules all the time (over-long values, bad UIDs): reading must
# not warn or fail on what the header cleaner is about to replace anyway.
config.settings.reading_validation_mode = config.IGNORE

ENGINE = "dicom/1"
PIXEL_DATA = 0x7FE00010
TYPE1 = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")
# PS3.5 B.2: our implementation class UID, a 2.25 UUID-derived UID fixed for this product.
IMPLEMENTATION_UID = "2.25.266054127394283940171733414617391628893"
IMPLEMENTATION_VERSION = "GATEWAY_DICOM_1"
# Visible-light photography and other camera pictures: faces are searched in their frames.
PHOTO_SOP_PREFIX = "1.2.840.10008.5.1.4.1.1.77.1."


@dataclass(frozen=True)
class DicomResult:
    data: bytes
    report: dict[str, object]
    patients: dict[str, str]  # original PatientID -> pseudonym: sensitive, never reported


HEAD = 136  # bytes that decide whether content is DICOM


def looks_like_dicom(head: bytes) -> bool:
    """A Part 10 file (preamble, 'DICM', file meta group 0002) or a bare little-endian
    dataset starting with a group 0002 or 0008 element (some archives export those); no
    image format starts with those bytes."""
    if head[128:132] == b"DICM" and head[132:134] == b"\x02\x00":
        return True
    if len(head) < 8 or head[:2] not in (b"\x02\x00", b"\x08\x00"):
        return False
    element = int.from_bytes(head[2:4], "little")
    explicit = head[4:6].isalpha() and head[4:6].isupper()
    implicit_length = int.from_bytes(head[4:8], "little")
    return element < 0x1000 and (explicit or implicit_length < 0x10000)


def read_dataset(data: bytes) -> Dataset:
    """Parse a Part 10 file, or a bare dataset without preamble and file meta."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(io.BytesIO(data), force=True)
    except (InvalidDicomError, EOFError, ValueError, KeyError, TypeError, OverflowError,
            NotImplementedError, AttributeError, UnicodeError, OSError) as exc:
        raise InvalidUpload("not a readable DICOM file", reason="dicom_unreadable") from exc
    if len(ds) == 0 or not any(tag.group >= 0x0008 for tag in ds.keys()):  # noqa: SIM118
        raise InvalidUpload("not a readable DICOM file", reason="dicom_unreadable")
    if not str(ds.get("SOPClassUID", "")).strip() or not str(ds.get("SOPInstanceUID", "")).strip():
        # Without them no valid Part 10 file can be written, and nothing can refer to it.
        raise InvalidUpload("a DICOM file without SOP Class and SOP Instance UIDs",
                            reason="dicom_no_sop_instance")
    return ds


def anonymize_dicom(data: bytes, policy: Policy, pseudonyms: Pseudonymizer) -> DicomResult:
    """See the module docstring. pydicom warns about every oddity of uploaded files
    (wrong VR, bad lengths); those say nothing actionable here and are silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _anonymize(data, policy, pseudonyms)


def _anonymize(data: bytes, policy: Policy, pseudonyms: Pseudonymizer) -> DicomResult:
    started = time.perf_counter()
    ds = read_dataset(data)
    _ensure_file_meta(ds)
    original = _facts(ds)
    words = identifying_words(ds, policy.dicom.options)
    dicom = policy.dicom
    options = set(dicom.options - PIXEL_OPTIONS)
    pixel_report: dict[str, object] | None = None
    pixel_seconds = 0.0
    if "PixelData" in ds or "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
        pixel_report, ran, pixel_seconds = _clean_pixels(ds, policy, words)
        options |= ran
    header_started = time.perf_counter()
    cleaner = HeaderCleaner(compile_profile(dicom.options - PIXEL_OPTIONS), pseudonyms,
                            dicom.options)
    try:
        header = cleaner.clean(ds, words)
    except (ValueError, KeyError, TypeError, EOFError, OverflowError, NotImplementedError,
            UnicodeError) as exc:  # pydicom decodes lazily: a broken element surfaces here
        raise AnonymizationFailed("dicom_unreadable") from exc
    _mark(ds, options, dicom.profile)
    head, tail = _write(ds)
    _verify(ds, original, cleaner.words_pattern, "retain_safe_private" in dicom.options,
            head)
    out = _finish(ds, head, tail)
    header_seconds = time.perf_counter() - header_started
    report: dict[str, object] = {
        "engine": ENGINE,
        "profile": dicom.profile,
        "options": sorted(options),
        "transfer_syntax": str(ds.file_meta.TransferSyntaxUID),
        "header": header.as_dict(),
        "pixels": pixel_report,
        "timings_ms": {
            "pixels": round(pixel_seconds * 1000, 1),
            "header": round(header_seconds * 1000, 1),
            "total": round((time.perf_counter() - started) * 1000, 1),
        },
    }
    return DicomResult(out, report, dict(header.patients))


# --------------------------------------------------------------------------- reading
def _ensure_file_meta(ds: Dataset) -> None:
    meta = getattr(ds, "file_meta", None)
    if meta is None:
        meta = FileMetaDataset()
        ds.file_meta = meta
    if "TransferSyntaxUID" not in meta:
        implicit, little = ds.original_encoding
        if implicit is None:
            implicit, little = True, True
        meta.TransferSyntaxUID = (ImplicitVRLittleEndian if implicit else
                                  ExplicitVRLittleEndian if little else
                                  UID("1.2.840.10008.1.2.2"))
    if "SOPClassUID" in ds:
        meta.MediaStorageSOPClassUID = ds.SOPClassUID


def _facts(ds: Dataset) -> dict[str, bool]:
    return {k: k in ds for k in TYPE1}


# --------------------------------------------------------------------------- pixels
def _needs_text_cleaning(ds: Dataset, policy: Policy) -> bool:
    rules = policy.dicom.burned_in_text
    if str(ds.get("BurnedInAnnotation", "")).strip().upper() == "YES":
        return True
    if str(ds.get("Modality", "")).strip().upper() in rules.modalities:
        return True
    image_type = ds.get("ImageType") or []
    values = [image_type] if isinstance(image_type, str) else list(image_type)
    if any(str(v).strip().upper() in rules.image_types for v in values):
        return True
    return str(ds.get("SOPClassUID", "")) in rules.sop_classes


def _is_photographic(ds: Dataset, policy: Policy) -> bool:
    if str(ds.get("SOPClassUID", "")).startswith(PHOTO_SOP_PREFIX):
        return True
    if not str(ds.get("PhotometricInterpretation", "")).startswith(("RGB", "YBR")):
        return False
    modality = str(ds.get("Modality", "")).strip().upper()
    secondary_capture = str(ds.get("SOPClassUID", "")) in policy.dicom.burned_in_text.sop_classes
    return modality in policy.dicom.photographic or (not modality and secondary_capture)


def _clean_pixels(ds: Dataset, policy: Policy,
                  words: list[str]) -> tuple[dict[str, object] | None, set[str], float]:
    """Run the pixel cleaners the file needs: their report, the options run, seconds."""
    wants_text = "clean_pixel_data" in policy.dicom.options and _needs_text_cleaning(
        ds, policy)
    wants_faces = ("clean_recognizable_visual_features" in policy.dicom.options
                   and _is_photographic(ds, policy))
    if not (wants_text or wants_faces):
        return None, set(), 0.0
    from gateway.anonymize.dicom import pixels  # imports OCR and models only when needed

    reports: dict[str, object] = {}
    seconds = 0.0
    ran: set[str] = set()
    if wants_faces:
        faces = pixels.clean_faces(ds, policy.image)
        reports["faces"] = faces.as_dict()
        seconds += faces.seconds
        ran.add("clean_recognizable_visual_features")
    if wants_text:
        text = pixels.clean_burned_in_text(ds, words, policy.dicom.burned_in_text)
        reports["text"] = text.as_dict()
        seconds += text.seconds
        ran.add("clean_pixel_data")
        ds.BurnedInAnnotation = "NO"
    reports["seconds"] = round(seconds, 3)
    return reports, ran, seconds


# --------------------------------------------------------------------------- writing
def _mark(ds: Dataset, options: set[str], profile: str) -> None:
    """PS3.15 E.1.1: say that, and how, the identity was removed (elements built by tag:
    keyword lookups cost more than the rest of this on small files)."""
    ds.add(DataElement(0x00120062, "CS", "YES"))  # PatientIdentityRemoved
    ds.add(DataElement(0x00120063, "LO",  # DeidentificationMethod
                       f"DICOM PS3.15 Basic Profile ({profile.split('-')[-1]})"[:64]))
    codes = [BASIC_PROFILE_CODE] + [OPTIONS[o][1:] for o in sorted(options, key=lambda o:
                                                                    OPTIONS[o][1])]
    items = []
    for value, meaning in codes:
        item = Dataset()
        item.add(DataElement(0x00080100, "SH", value))  # CodeValue
        item.add(DataElement(0x00080102, "SH", "DCM"))  # CodingSchemeDesignator
        item.add(DataElement(0x00080104, "LO", meaning))  # CodeMeaning
        items.append(item)
    ds.add(DataElement(0x00120064, "SQ", Sequence(items)))  # ...MethodCodeSequence
    if "retain_longitudinal_modified_dates" in options:
        longitudinal = "MODIFIED"
    elif "retain_longitudinal_full_dates" in options:
        longitudinal = "UNMODIFIED"
    else:
        longitudinal = "REMOVED"
    ds.add(DataElement(0x00280303, "CS", longitudinal))  # LongitudinalTemporalInformationModified


def _write(ds: Dataset) -> tuple[bytes, bytes]:
    """The dataset encoded in two parts: every element before the pixel data (what the
    self-check searches) and the pixel data with whatever follows it.

    Encoded by pydicom's ``write_dataset``, which copies every element still raw byte
    for byte; the file meta is built anew by :func:`_finish`. This skips ``dcmwrite``'s
    copy and validation of the meta, which cost more than the header cleaning on small
    files.
    """
    syntax = UID(str(ds.file_meta.TransferSyntaxUID))
    try:
        pixels = element(ds, PIXEL_DATA)
        if isinstance(pixels, DataElement):
            pixels.is_undefined_length = syntax.is_compressed
            if " or " in pixels.VR:  # resolved here: written apart from BitsAllocated
                pixels.VR = "OW" if int(ds.get("BitsAllocated", 8) or 8) > 8 else "OB"
        return _encode_split(ds, syntax)
    except (ValueError, TypeError, AttributeError, NotImplementedError, OverflowError,
            KeyError, struct.error) as exc:
        raise AnonymizationFailed("dicom_write_failed") from exc


def _encode_split(ds: Dataset, syntax: UID) -> tuple[bytes, bytes]:
    """(everything before the pixel data, the rest): the trailing elements are taken out
    of the dataset while the head is written, then put back (no copies, no decoding)."""
    elements = ds._dict  # noqa: SLF001 - see header.element
    # int shifts, not BaseTag comparisons (a Python-level __ge__ per element)
    trailing = [tag for tag in elements if tag >> 4 >= PIXEL_DATA >> 4]
    if not trailing:
        return _encode(ds, syntax), b""
    held = {tag: elements.pop(tag) for tag in sorted(trailing)}
    try:
        head = _encode(ds, syntax)
    finally:
        elements.update(held)
    fp = _stream(syntax)
    for tag in held:  # resolved against the whole dataset (Pixel Data: OB or OW)
        elem = correct_ambiguous_vr_element(ds[tag], ds, fp.is_little_endian)
        write_data_element(fp, elem)
    return head, bytes(fp.getvalue())


def _stream(syntax: UID) -> DicomBytesIO:
    fp = DicomBytesIO()
    fp.is_implicit_VR = syntax == ImplicitVRLittleEndian
    fp.is_little_endian = syntax != ExplicitVRBigEndian
    return fp


def _encode(part: Dataset, syntax: UID) -> bytes:
    body = _stream(syntax)
    write_dataset(body, part)
    return bytes(body.getvalue())


def _finish(ds: Dataset, head: bytes, tail: bytes) -> bytes:
    """Preamble, a file meta built anew (only what PS3.10 requires: nothing the sender's
    AE titles, private meta or implementation carried), then the dataset."""
    syntax = str(ds.file_meta.TransferSyntaxUID)
    meta = _meta_bytes(str(ds.SOPClassUID), str(ds.SOPInstanceUID), syntax)
    data = head + tail
    if syntax == DeflatedExplicitVRLittleEndian:
        deflater = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
        data = deflater.compress(data) + deflater.flush()
    return bytes(128) + b"DICM" + meta + data


def _meta_bytes(sop_class: str, sop_instance: str, syntax: str) -> bytes:
    """The file meta group, explicit VR little endian (PS3.10 7.1)."""
    def element(element_number: int, vr: bytes, value: bytes) -> bytes:
        if len(value) % 2:
            value += b"\x00" if vr == b"UI" else b" "
        head = struct.pack("<HH", 0x0002, element_number) + vr
        if vr == b"OB":
            return head + b"\x00\x00" + struct.pack("<I", len(value)) + value
        return head + struct.pack("<H", len(value)) + value

    body = b"".join([
        element(0x0001, b"OB", b"\x00\x01"),
        element(0x0002, b"UI", sop_class.encode("ascii")),
        element(0x0003, b"UI", sop_instance.encode("ascii")),
        element(0x0010, b"UI", syntax.encode("ascii")),
        element(0x0012, b"UI", IMPLEMENTATION_UID.encode("ascii")),
        element(0x0013, b"SH", IMPLEMENTATION_VERSION.encode("ascii")),
    ])
    return element(0x0000, b"UL", struct.pack("<I", len(body))) + body


def _verify(ds: Dataset, original: dict[str, bool], pattern: re.Pattern[bytes] | None,
            private_allowed: bool, head: bytes) -> None:
    """Check what is about to be written, so a bug cannot ship an identifier: the Type 1
    UIDs the input had, no private element the policy did not keep, and none of the
    patient's identifying words in any value.

    The words are searched in the encoded bytes before the pixel data, as written (any
    character set, raw or decoded values alike): one regex pass. Only on a hit are the
    elements searched one by one, leaving out the marks we wrote ourselves (a patient
    may be called "Basic", like the Basic Profile), to tell a real leak from that.
    """
    for keyword, present in original.items():
        if present and not str(ds.get(keyword, "")).strip():
            raise AnonymizationFailed("dicom_output_invalid")
    if not private_allowed and _private_left(ds):
        raise AnonymizationFailed("private_tags_remain")
    if pattern is None or pattern.search(head) is None:
        return
    for _tag, vr, value in _values(ds, skip=MARK_TAGS):
        if vr not in SKIP_VRS and pattern.search(value):
            raise AnonymizationFailed("identifier_remains")


def _private_left(ds: Dataset) -> bool:
    """Any private element, at any depth. A sequence still raw was never changed, and
    the cleaner removes every private element it meets, so it holds none."""
    for tag in ds.keys():  # noqa: SIM118 - tags, not elements (which would decode)
        if tag >> 16 & 1:
            return True
        held = element(ds, tag)
        if (isinstance(held, DataElement) and held.VR == "SQ"
                and any(_private_left(item) for item in held.value or ())):
            return True
    return False


# Written by _mark: fixed texts of ours, not content.
MARK_TAGS = frozenset({0x00120062, 0x00120063, 0x00120064, 0x00280303})
SKIP_VRS = frozenset({"OB", "OW", "OF", "OD", "OL", "OV", "SQ", "US", "SS", "UL", "SL", "FL",
                      "FD", "UV", "SV", "AT"})


def _values(ds: Dataset, skip: frozenset[int] = frozenset()
            ) -> Iterator[tuple[int, str, bytes]]:
    """(tag, VR, value bytes) of every element at every depth (but not the pixel data,
    nor the ``skip`` elements and what they hold), decoding nothing kept raw."""
    for tag in ds.keys():  # noqa: SIM118 - tags, not elements (which would decode)
        t = int(tag)
        if t == PIXEL_DATA or t in skip:
            continue
        raw = element(ds, tag)
        vr = element_vr(ds, tag)
        if isinstance(raw, RawDataElement):  # a raw sequence is searched as its bytes
            yield t, "UN" if vr == "SQ" else vr, bytes(raw.value or b"")
        elif vr == "SQ":
            yield t, vr, b""
            for item in ds[tag].value or ():
                yield from _values(item, skip)
        else:
            value = ds[tag].value
            yield t, vr, (value if isinstance(value, bytes) else str(value).encode("utf-8"))
