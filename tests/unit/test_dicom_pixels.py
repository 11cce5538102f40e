"""DICOM pixels: frames decode and encode losslessly; burned-in text and faces are masked.

Datasets are built here from numpy arrays (text drawn with cv2.putText), so nothing
depends on shared files. Tests that run Tesseract skip when it is not installed.
"""

from __future__ import annotations

import io
import shutil
from collections.abc import Callable

import cv2
import numpy as np
import pydicom
import pytesseract
import pytest
from pydicom import uid as uids
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate

from gateway.anonymize.detectors import registry
from gateway.anonymize.detectors.base import DetectorInfo, Region
from gateway.anonymize.dicom import frames as frames_codec
from gateway.anonymize.dicom import ocr, pixels
from gateway.errors import AnonymizationFailed
from policies import BurnedInText, DetectorSpec, ImagePolicy, LeakGate, MaskSpec

pytestmark = pytest.mark.unit

needs_tesseract = pytest.mark.skipif(
    shutil.which("tesseract") is None, reason="the tesseract binary is not installed"
)

ALL = BurnedInText(modalities=(), image_types=(), sop_classes=(), mask="all",
                   min_confidence=30, padding=2)
HEADER_ONLY = BurnedInText(modalities=(), image_types=(), sop_classes=(),
                           mask="header_values", min_confidence=30, padding=2)
FONT = cv2.FONT_HERSHEY_SIMPLEX


# --------------------------------------------------------------------------- builders
def dataset(frames: np.ndarray, photometric: str = "MONOCHROME2",
            syntax: str = uids.ExplicitVRLittleEndian, multiframe: bool = False) -> Dataset:
    """A minimal image dataset holding ``frames`` (H x W [x 3], or N x H x W [x 3])."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = uids.ExplicitVRLittleEndian
    ds.SOPClassUID = uids.SecondaryCaptureImageStorage
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.Modality = "OT"
    samples = 3 if photometric in ("RGB", "YBR_FULL") else 1
    if multiframe:
        ds.NumberOfFrames = frames.shape[0]
    ds.Rows, ds.Columns = frames.shape[int(multiframe): int(multiframe) + 2]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = samples, photometric
    if samples == 3:
        ds.PlanarConfiguration = 0
    ds.BitsAllocated = ds.BitsStored = frames.dtype.itemsize * 8
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = int(frames.dtype.kind == "i")
    ds.PixelData = frames.astype(frames.dtype.newbyteorder("<")).tobytes()
    if syntax == uids.ExplicitVRBigEndian:
        ds.file_meta.TransferSyntaxUID = syntax
        ds.PixelData = frames.astype(frames.dtype.newbyteorder(">")).tobytes()
    elif syntax in frames_codec.LOSSLESS_ENCODERS:
        ds.compress(syntax, frames, generate_instance_uid=False)
    elif syntax != uids.ExplicitVRLittleEndian:
        ds.file_meta.TransferSyntaxUID = syntax
    return reread(ds)


def reread(ds: Dataset) -> Dataset:
    """``ds`` written as a Part 10 file and parsed again, as the engine's output would be."""
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return pydicom.dcmread(io.BytesIO(buffer.getvalue()))


def grey16(height: int = 64, width: int = 80, signed: bool = False) -> np.ndarray:
    ramp = np.arange(height * width, dtype=np.int32).reshape(height, width) * 7 % 4000
    return (ramp - 2000).astype(np.int16) if signed else ramp.astype(np.uint16)


def rgb8(height: int = 48, width: int = 64) -> np.ndarray:
    rng = np.random.default_rng(7)
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def banner(text: str, at: tuple[int, int] = (10, 30), size: tuple[int, int] = (200, 420),
           scale: float = 0.8) -> np.ndarray:
    """A dark grey frame with white annotation ``text`` whose baseline-left is ``at``."""
    frame = np.full(size, 20, np.uint8)
    texture = np.random.default_rng(5).normal(90, 25, size).clip(0, 255).astype(np.uint8)
    anatomy = np.zeros(size, np.uint8)
    cv2.ellipse(anatomy, (size[1] // 2, size[0]), (size[1] // 3, size[0] // 2), 0, 0, 360, 1, -1)
    frame[anatomy > 0] = cv2.GaussianBlur(texture, (3, 3), 0)[anatomy > 0]
    cv2.putText(frame, text, at, FONT, scale, 255, 2, cv2.LINE_AA)
    return frame


def text_box(text: str, at: tuple[int, int], scale: float = 0.8,
             margin: int = 6) -> tuple[slice, slice]:
    (width, height), baseline = cv2.getTextSize(text, FONT, scale, 2)
    rows = slice(at[1] - height - margin, at[1] + baseline + margin)
    return rows, slice(at[0] - margin, at[0] + width + margin)


def read_text(frame: np.ndarray) -> str:
    return pixels.normalise(" ".join(w.text for w in ocr.read_words(frame)))


# --------------------------------------------------------------------------- decode / encode
LOSSLESS_CASES = [
    (uids.ExplicitVRLittleEndian, "grey16"),
    (uids.ImplicitVRLittleEndian, "signed"),
    (uids.DeflatedExplicitVRLittleEndian, "rgb"),
    (uids.ExplicitVRBigEndian, "grey16"),  # stays big endian: save_as cannot swap it
    (uids.ExplicitVRBigEndian, "rgb"),
    (uids.RLELossless, "signed"),
    (uids.RLELossless, "rgb"),
    (uids.JPEGLSLossless, "grey16"),
    (uids.JPEG2000Lossless, "signed"),
    (uids.JPEG2000Lossless, "rgb"),  # declared YBR_RCT, decodes to the same RGB
]


def _frames(kind: str) -> tuple[np.ndarray, str]:
    if kind == "rgb":
        return rgb8(), "RGB"
    return grey16(signed=kind == "signed"), "MONOCHROME2"


@pytest.mark.parametrize(("syntax", "kind"), LOSSLESS_CASES)
def test_lossless_syntax_is_kept_and_masked_pixels_survive(syntax: str, kind: str) -> None:
    original, photometric = _frames(kind)
    ds = dataset(original, photometric, syntax)
    frames = pixels.decode_frames(ds)
    assert np.array_equal(frames[0], original)
    frames[0][5:20, 10:30] = frames[0].min()  # what a mask does
    written = pixels.encode_frames(ds, frames)
    out = reread(ds)
    assert written == syntax == out.file_meta.TransferSyntaxUID
    assert np.array_equal(pixels.decode_frames(out)[0], frames[0])


def test_multiframe_keeps_every_frame_and_the_count() -> None:
    stack = np.stack([grey16(), grey16()[::-1], grey16()[:, ::-1]])
    ds = dataset(stack, multiframe=True, syntax=uids.RLELossless)
    frames = pixels.decode_frames(ds)
    assert len(frames) == 3
    pixels.encode_frames(ds, frames)
    out = reread(ds)
    assert out.NumberOfFrames == 3
    assert all(np.array_equal(a, b) for a, b in zip(pixels.decode_frames(out), stack,
                                                     strict=True))


def test_lossy_jpeg_is_written_uncompressed_and_still_says_lossy() -> None:
    grey = cv2.GaussianBlur(rgb8(64, 64)[..., 0], (5, 5), 0)
    ok, jpeg = cv2.imencode(".jpg", grey, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    ds = dataset(grey)
    ds.file_meta.TransferSyntaxUID = uids.JPEGBaseline8Bit
    ds.PixelData = encapsulate([jpeg.tobytes()])
    ds["PixelData"].VR = "OB"
    ds = reread(ds)
    frames = pixels.decode_frames(ds)
    assert pixels.encode_frames(ds, frames) == uids.ExplicitVRLittleEndian
    out = reread(ds)
    assert out.LossyImageCompression == "01"
    assert np.array_equal(pixels.decode_frames(out)[0], frames[0])


def test_palette_colour_becomes_rgb_without_its_lookup_tables() -> None:
    indices = (np.arange(40 * 50).reshape(40, 50) % 256).astype(np.uint8)
    ds = dataset(indices, photometric="PALETTE COLOR")
    lut = np.arange(256, dtype=np.uint8)
    for offset, table in enumerate((lut, lut[::-1], lut // 2)):  # red, green, blue
        ds.add_new(0x00281101 + offset, "US", [256, 0, 8])
        ds.add_new(0x00281201 + offset, "OW", table.astype("<u2").tobytes())
    frames = pixels.decode_frames(reread(ds))
    assert frames[0].shape == (40, 50, 3)
    assert np.array_equal(frames[0][..., 1], 255 - indices)
    pixels.encode_frames(ds, frames)
    out = reread(ds)
    assert (out.PhotometricInterpretation, out.SamplesPerPixel) == ("RGB", 3)
    assert out.PlanarConfiguration == 0
    assert not any(e.tag.group == 0x0028 and 0x1100 <= e.tag.element <= 0x1223 for e in out)
    assert np.array_equal(pixels.decode_frames(out)[0], frames[0])


def test_one_bit_frames_are_packed_again() -> None:
    mask = (grey16(16, 24) % 3 == 0).astype(np.uint8)
    ds = dataset(mask)
    ds.BitsAllocated = ds.BitsStored = 1
    ds.HighBit = 0
    ds.PixelData = pydicom.pixels.pack_bits(mask)
    frames = pixels.decode_frames(reread(ds))
    pixels.encode_frames(ds, frames)
    out = reread(ds)
    assert out.BitsAllocated == 1
    assert np.array_equal(pixels.decode_frames(out)[0], mask)


@pytest.mark.parametrize(
    "breakage",
    [
        lambda ds: delattr(ds, "PixelData"),  # nothing to decode
        lambda ds: setattr(ds, "PixelData", encapsulate([b"\xff\xd8not a jpeg"])),
        lambda ds: delattr(ds, "BitsAllocated"),  # the header cannot describe the pixels
    ],
)
def test_undecodable_pixels_fail_closed(breakage: Callable[[Dataset], None]) -> None:
    ds = dataset(grey16())
    ds.file_meta.TransferSyntaxUID = uids.JPEGBaseline8Bit
    breakage(ds)
    with pytest.raises(AnonymizationFailed) as caught:
        pixels.decode_frames(ds)
    assert caught.value.reason == "pixel_decode_failed"


# --------------------------------------------------------------------------- header words
def test_header_targets_include_parts_and_printed_dates() -> None:
    targets = pixels.header_targets(["DOE^JOHN", "19650312", "J"])
    assert {"DOEJOHN", "DOE", "JOHN", "19650312", "03121965", "12031965", "031265"} <= targets
    assert "J" not in targets  # too short to look for


@pytest.mark.parametrize(
    ("token", "target", "expected"),
    [
        ("JOHN", "JOHN", True),  # exact
        ("ZZZDOWNTIMEMARY", "MARY", True),  # run together with another part
        ("PATIENTFI", "PATIENTFIVE", True),  # truncated by the scanner ("PATIENTFI...")
        ("0OO79241539", "00079241539", True),  # two OCR confusions in eleven characters
        ("LIVER", "JOHN", False),
        ("JON", "JOHN", False),  # short targets match exactly only
        ("AB", "AB", False),  # two characters are not evidence of anything
    ],
)
def test_header_word_matching(token: str, target: str, expected: bool) -> None:
    assert pixels._matches(token, target) is expected


def word(text: str, x: int, line: int = 1, conf: float = 90.0) -> ocr.Word:
    return ocr.Word(text, conf, x, 10, 12 * len(text), 16, (0, 1, 1, line))


def test_header_values_mode_selects_only_header_words_even_when_split() -> None:
    view = np.zeros((40, 400), np.uint8)
    words = [word("DOB:", 0), word("08/29/", 60), word("1951", 140), word("LIVER", 200, 2)]
    hits = pixels.select_words(words, view, pixels.header_targets(["19510829"]),
                               "header_values", 30)
    assert [w.text for w in hits] == ["DOB:", "08/29/", "1951"]


def test_text_quality_tells_rendered_text_from_texture_and_stripes() -> None:
    text = np.full((30, 120), 10, np.uint8)
    cv2.putText(text, "AB12", (4, 24), FONT, 0.8, 250, 2, cv2.LINE_AA)
    noise = np.random.default_rng(3).normal(90, 30, (30, 120)).clip(0, 255).astype(np.uint8)
    stripes = np.zeros((30, 120), np.uint8)
    stripes[8:12] = stripes[20:22] = 230
    box = ocr.Word("AB12", 90, 0, 0, 120, 30, (0, 1, 1, 1))
    assert pixels.text_quality(text, box) >= pixels.CLEAN_SEPARABILITY
    assert pixels.text_quality(noise, box) < pixels.MIN_SEPARABILITY
    assert pixels.text_quality(stripes, box) == 0.0


# --------------------------------------------------------------------------- OCR cleaning
NAME, AT = "DOE^JOHN 19650312", (12, 32)


@needs_tesseract
def test_burned_in_name_is_masked_and_nothing_else_changes() -> None:
    frame = banner(NAME, AT)
    assert {"JOHN", "19650312"} <= {t for t in ("JOHN", "19650312") if t in read_text(frame)}
    ds = dataset(frame)
    report = pixels.clean_burned_in_text(ds, ["DOE^JOHN", "19650312"], ALL)
    cleaned = pixels.decode_frames(reread(ds))[0]
    text = read_text(cleaned)
    assert not any(t in text for t in ("DOE", "JOHN", "19650312", "1965"))
    rows, cols = text_box(NAME, AT)
    outside = np.ones(frame.shape, bool)
    outside[rows, cols] = False
    assert np.array_equal(cleaned[outside], frame[outside])
    assert (cleaned != frame).any()
    assert (report.frames, report.frames_cleaned) == (1, 1)
    assert report.regions >= 2 and report.transfer_syntax == uids.ExplicitVRLittleEndian
    assert set(report.as_dict()) == {"frames", "frames_cleaned", "regions", "seconds",
                                     "transfer_syntax"}


@needs_tesseract
def test_header_values_mode_leaves_other_text_alone() -> None:
    frame = banner("JOHN", (12, 32))
    cv2.putText(frame, "LIVER", (280, 32), FONT, 0.8, 255, 2, cv2.LINE_AA)
    ds = dataset(frame)
    pixels.clean_burned_in_text(ds, ["DOE^JOHN"], HEADER_ONLY)
    cleaned = pixels.decode_frames(reread(ds))[0]
    text = read_text(cleaned)
    assert "JOHN" not in text and "LIVER" in text
    assert np.array_equal(cleaned[:, 250:], frame[:, 250:])


@needs_tesseract
def test_frame_without_text_is_not_rewritten() -> None:
    frame = banner("")
    ds = dataset(frame, syntax=uids.RLELossless)
    before = ds.PixelData
    report = pixels.clean_burned_in_text(ds, ["DOE^JOHN"], ALL)
    assert (report.frames_cleaned, report.regions) == (0, 0)
    assert report.transfer_syntax == uids.RLELossless and ds.PixelData == before


@needs_tesseract
def test_monochrome1_text_is_read_as_displayed_and_filled_with_black() -> None:
    shown = banner(NAME, AT).astype(np.uint16) * 16  # 12-bit, as a viewer would show it
    stored = (4095 - shown).astype(np.uint16)  # MONOCHROME1: low values are white
    ds = dataset(stored, photometric="MONOCHROME1")
    ds.BitsStored, ds.HighBit = 12, 11
    pixels.clean_burned_in_text(ds, ["DOE^JOHN", "19650312"], ALL)
    cleaned = pixels.decode_frames(reread(ds))[0]
    assert "JOHN" not in read_text(4095 - cleaned)
    assert (cleaned[text_box(NAME, AT)] == stored.max()).any()  # black as displayed


@needs_tesseract
def test_cine_overlay_is_read_once_and_masked_in_every_frame(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stack = np.stack([banner(NAME, AT) for _ in range(4)])
    for index, frame in enumerate(stack):  # the picture moves, the overlay stays
        cv2.circle(frame, (120 + 40 * index, 140), 25, 200, -1)
    reads: list[int] = []
    real = ocr.read_words
    monkeypatch.setattr(ocr, "read_words", lambda f, **kw: reads.append(1) or real(f, **kw))
    ds = dataset(stack, multiframe=True)
    report = pixels.clean_burned_in_text(ds, ["DOE^JOHN", "19650312"], ALL)
    assert len(reads) <= 2 + 4 + 1  # overlay read + recheck, then about one read a frame
    assert report.frames_cleaned == 4
    assert all("JOHN" not in read_text(f) for f in pixels.decode_frames(reread(ds)))


@needs_tesseract
def test_text_that_survives_masking_quarantines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pixels, "_fill_boxes", lambda frame, boxes, fill: frame)
    ds = dataset(banner(NAME, AT))
    with pytest.raises(AnonymizationFailed) as caught:
        pixels.clean_burned_in_text(ds, ["DOE^JOHN"], ALL)
    assert caught.value.reason == "burned_in_text_remains"
    assert "JOHN" not in str(caught.value) and "JOHN" not in caught.value.detail


def test_missing_tesseract_is_ocr_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pytesseract.pytesseract, "tesseract_cmd", "/nonexistent/tesseract")
    assert not ocr.tesseract_available()
    with pytest.raises(AnonymizationFailed) as caught:
        pixels.clean_burned_in_text(dataset(banner(NAME, AT)), ["DOE^JOHN"], ALL)
    assert caught.value.reason == "ocr_unavailable"


@needs_tesseract
def test_tesseract_failing_mid_run_is_ocr_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(*args: object, **kwargs: object) -> None:
        raise pytesseract.TesseractError(1, "boom")

    monkeypatch.setattr(pytesseract, "image_to_data", crash)
    with pytest.raises(AnonymizationFailed) as caught:
        pixels.clean_burned_in_text(dataset(banner(NAME, AT)), ["DOE^JOHN"], ALL)
    assert caught.value.reason == "ocr_unavailable"


# --------------------------------------------------------------------------- faces
class BrightSquareDetector:
    """Finds a "face" at a fixed place while it is still bright (so masking hides it)."""

    info = DetectorInfo(name="fake", version="1", label="face")

    def detect(self, rgb: np.ndarray) -> list[Region]:
        if rgb[20:40, 30:50].mean() < 128:
            return []
        return [Region(30, 20, 20, 20, 0.95, "face", "fake")]


def test_faces_are_masked_with_the_image_engines_masks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "check_policy", lambda policy: None)
    monkeypatch.setattr(registry, "get_detector", lambda name, threshold: BrightSquareDetector())
    policy = ImagePolicy(
        detectors=(DetectorSpec("fake", 0.5),),
        mask=MaskSpec(style="solid", padding=0.0, color=(0, 0, 0), block=16),
        leak_gate=LeakGate(enabled=True, threshold=0.6),
        max_pixels=10**7,
    )
    photo = np.full((60, 80, 3), 200, np.uint8)
    ds = dataset(photo, photometric="RGB", syntax=uids.RLELossless)
    report = pixels.clean_faces(ds, policy)
    out = pixels.decode_frames(reread(ds))[0]
    assert (out[20:40, 30:50] == 0).all()
    out[20:40, 30:50] = 200
    assert np.array_equal(out, photo)
    assert (report.frames_cleaned, report.regions) == (1, 1)
    assert report.transfer_syntax == uids.RLELossless


def test_a_frame_too_small_for_any_glyph_reads_no_words() -> None:
    # Tesseract refuses tiny images; a 3 x 3 secondary capture must not be quarantined
    # as "OCR unavailable" when there is simply no room for text
    assert ocr.read_words(np.zeros((3, 3, 3), dtype=np.uint8)) == []
