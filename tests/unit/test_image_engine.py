"""anonymize_image end to end: faces masked, metadata gone, ICC kept, format kept, fail closed."""

from __future__ import annotations

import importlib.util
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import ExifTags, Image, ImageCms, PngImagePlugin

from gateway.anonymize import image as engine
from gateway.anonymize.detectors.base import DetectorInfo, Region
from gateway.anonymize.image import anonymize_image
from gateway.errors import AnonymizationFailed, InvalidUpload, UnsupportedMediaType
from policies import load_policy

pytestmark = pytest.mark.unit

POLICY = load_policy().image
SECRET = "Jane Q. Patient"
FACE = (180, 60, 270, 175)  # the astronaut's face, x0, y0, x1, y1


def astronaut() -> Image.Image:
    spec = importlib.util.find_spec("skimage")
    base = Path(next(iter(spec.submodule_search_locations or []), "")) if spec else Path()
    if not (base / "data" / "astronaut.png").is_file():
        pytest.skip("skimage's astronaut.png is not installed")
    return Image.open(base / "data" / "astronaut.png").convert("RGB")


def scene(size: tuple[int, int] = (160, 120), mode: str = "RGB") -> Image.Image:
    """A face-free synthetic picture: gradients and a few shapes."""
    w, h = size
    x, y = np.meshgrid(np.linspace(0, 255, w), np.linspace(0, 255, h))
    rgb = np.dstack([x, y, 255 - x]).astype(np.uint8)
    rgb[h // 4 : h // 2, w // 4 : w // 2] = (20, 200, 60)
    img = Image.fromarray(rgb).convert(mode)
    if "A" in mode:  # a real alpha channel (fully opaque alpha may be dropped by encoders)
        img.putalpha(Image.fromarray(x.astype(np.uint8)))
    return img


def encode(img: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def reopen(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def srgb_profile() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def exif_with_gps(orientation: int = 1) -> Image.Exif:
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "ACME"
    exif[ExifTags.Base.Artist] = SECRET
    exif[ExifTags.Base.Orientation] = orientation
    exif[ExifTags.IFD.GPSInfo] = {ExifTags.GPS.GPSLatitudeRef: "N", ExifTags.GPS.GPSLatitude: 48.5}
    loaded = Image.Exif()  # a parsed block: what every encoder, TIFF's included, accepts
    loaded.load(exif.tobytes())
    return loaded


# --- faces --------------------------------------------------------------------------------


def test_real_face_is_found_and_its_pixels_are_masked() -> None:
    original = astronaut()
    result = anonymize_image(encode(original, "PNG"), POLICY)
    regions = result.report["regions"]
    assert regions and {r["detector"] for r in regions} == {"centerface", "mediapipe"}
    out = np.asarray(reopen(result.data).convert("RGB"))
    x0, y0, x1, y1 = FACE
    assert (out[y0:y1, x0:x1] == 0).all()  # default policy: solid black
    assert (out[400:, 400:] == np.asarray(original)[400:, 400:]).all()  # lossless elsewhere


def test_face_free_image_passes_unchanged_in_pixels() -> None:
    src = scene()
    result = anonymize_image(encode(src, "PNG"), POLICY)
    assert result.report["regions"] == []
    assert (np.asarray(reopen(result.data)) == np.asarray(src)).all()


# --- formats and pixel modes -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "mime"),
    [
        ("JPEG", "image/jpeg"),
        ("PNG", "image/png"),
        ("WEBP", "image/webp"),
        ("TIFF", "image/tiff"),
        ("BMP", "image/bmp"),
    ],
)
def test_format_is_preserved(fmt: str, mime: str) -> None:
    result = anonymize_image(encode(scene(), fmt), POLICY)
    assert (result.format, result.mime) == (fmt, mime)
    out = reopen(result.data)
    assert out.format == fmt and out.size == (160, 120)


@pytest.mark.parametrize(
    ("mode", "fmt"),
    [
        ("RGBA", "PNG"),  # alpha kept
        ("LA", "PNG"),  # grey + alpha kept
        ("L", "JPEG"),  # grey stays grey
        ("I;16", "PNG"),  # 16-bit stays 16-bit
        ("RGBA", "WEBP"),
        ("RGBA", "TIFF"),
    ],
)
def test_pixel_mode_is_kept(mode: str, fmt: str) -> None:
    src = scene(mode="L" if mode == "I;16" else mode)
    if mode == "I;16":
        src = Image.fromarray(np.asarray(src).astype(np.uint16) * 257)
    out = reopen(anonymize_image(encode(src, fmt), POLICY).data)
    assert out.mode == mode


def test_palette_png_with_transparency_comes_out_as_rgba() -> None:
    src = scene().convert("P")
    src.info["transparency"] = 0
    out = reopen(anonymize_image(encode(src, "PNG", transparency=0), POLICY).data)
    assert out.mode == "RGBA"


def test_lossless_webp_stays_lossless() -> None:
    src = scene()
    out = reopen(anonymize_image(encode(src, "WEBP", lossless=True), POLICY).data)
    assert (np.asarray(out) == np.asarray(src)).all()


# --- metadata --------------------------------------------------------------------------------


def test_exif_gps_xmp_and_comment_are_dropped_icc_is_kept() -> None:
    icc = srgb_profile()
    data = encode(
        scene(),
        "JPEG",
        exif=exif_with_gps(),
        comment=SECRET.encode(),
        icc_profile=icc,
        xmp=f"<x:xmpmeta>{SECRET}</x:xmpmeta>".encode(),
    )
    result = anonymize_image(data, POLICY)
    out = reopen(result.data)
    assert not out.getexif() and "exif" not in out.info
    assert "comment" not in out.info and "xmp" not in out.info
    assert out.info.get("icc_profile") == icc
    assert SECRET.encode() not in result.data and b"ACME" not in result.data
    removed = result.report["metadata_removed"]
    assert {"exif", "exif.GPSInfo", "comment", "xmp"} <= set(removed)
    assert SECRET not in json.dumps(result.report) and "ACME" not in json.dumps(result.report)


def test_png_text_chunks_are_dropped_icc_is_kept() -> None:
    text = PngImagePlugin.PngInfo()
    text.add_text("Author", SECRET)
    text.add_itxt("Description", SECRET)
    icc = srgb_profile()
    data = encode(scene(), "PNG", pnginfo=text, icc_profile=icc, exif=exif_with_gps())
    result = anonymize_image(data, POLICY)
    out = reopen(result.data)
    assert not getattr(out, "text", {}) and not out.getexif()
    assert out.info.get("icc_profile") == icc
    assert SECRET.encode() not in result.data
    removed = set(result.report["metadata_removed"])
    assert {"png.tEXt", "png.iTXt", "exif", "exif.GPSInfo"} <= removed


@pytest.mark.parametrize("fmt", ["WEBP", "TIFF"])
def test_exif_is_dropped_from_webp_and_tiff(fmt: str) -> None:
    data = encode(scene(), fmt, exif=exif_with_gps())
    assert SECRET.encode() in data  # the fixture really carries the value
    result = anonymize_image(data, POLICY)
    assert not reopen(result.data).getexif().get_ifd(ExifTags.IFD.GPSInfo)
    assert SECRET.encode() not in result.data and b"ACME" not in result.data
    assert "exif.GPSInfo" in result.report["metadata_removed"]


def test_exif_orientation_is_applied_to_pixels() -> None:
    src = scene((160, 120))  # landscape pixels, tagged "rotate 90 degrees clockwise"
    result = anonymize_image(encode(src, "JPEG", exif=exif_with_gps(orientation=6)), POLICY)
    out = reopen(result.data)
    assert out.size == (120, 160)
    assert not out.getexif().get(ExifTags.Base.Orientation)
    assert result.report["input"] == {"format": "JPEG", "width": 160, "height": 120}


# --- report -----------------------------------------------------------------------------------


def test_report_shape() -> None:
    report = anonymize_image(encode(scene(), "PNG"), POLICY).report
    assert report["engine"] == "image/1"
    detectors = report["policy"]["detectors"]
    named = [(d["name"], d["threshold"]) for d in detectors]
    assert named == [(d.name, d.threshold) for d in POLICY.detectors]
    assert all(d["version"] for d in detectors)
    assert {"decode", "detect.centerface", "detect.mediapipe", "mask", "encode", "total"} <= set(
        report["timings_ms"]
    )
    json.dumps(report)  # serializable as is


# --- refusals and fail-closed -------------------------------------------------------------------


def test_truncated_jpeg_is_refused() -> None:
    data = encode(astronaut(), "JPEG")
    with pytest.raises(InvalidUpload, match="corrupt or truncated"):
        anonymize_image(data[: len(data) // 2], POLICY)


def test_unknown_bytes_are_unsupported() -> None:
    with pytest.raises(UnsupportedMediaType):
        anonymize_image(b"not an image at all", POLICY)


class Exploding:
    info = DetectorInfo(name="centerface", version="test", label="face")

    def detect(self, rgb: np.ndarray) -> list[Region]:
        raise RuntimeError(f"model crashed while looking at {SECRET}")


def test_a_detector_that_raises_fails_closed_without_its_message(monkeypatch) -> None:
    monkeypatch.setattr(engine.registry, "get_detector", lambda name, threshold: Exploding())
    with pytest.raises(AnonymizationFailed) as caught:
        anonymize_image(encode(scene(), "PNG"), POLICY)
    assert caught.value.reason == "detector_error"
    assert SECRET not in str(caught.value) and caught.value.__cause__ is None


def test_leak_gate_quarantines_when_a_face_remains(monkeypatch) -> None:
    monkeypatch.setattr(engine, "apply_masks", lambda rgb, regions, spec: rgb.copy())
    with pytest.raises(AnonymizationFailed) as caught:
        anonymize_image(encode(astronaut(), "PNG"), POLICY)
    assert caught.value.reason == "leak_gate"


def test_leak_gate_can_be_disabled_by_policy(monkeypatch) -> None:
    monkeypatch.setattr(engine, "apply_masks", lambda rgb, regions, spec: rgb.copy())
    policy = type(POLICY)(
        detectors=POLICY.detectors,
        mask=POLICY.mask,
        leak_gate=type(POLICY.leak_gate)(False, 0.6),
        max_pixels=POLICY.max_pixels,
    )
    assert anonymize_image(encode(astronaut(), "PNG"), policy).report["regions"]


class ContextShy:
    """Sees face A; once A is masked, 'sees' B: how masks shift BlazeFace's context."""

    info = DetectorInfo(name="centerface", version="test", label="face")

    def detect(self, rgb: np.ndarray) -> list[Region]:
        if rgb[10:30, 10:30].any():
            return [Region(10, 10, 20, 20, 0.9, "face", "centerface")]
        if rgb[60:80, 60:80].any():
            return [Region(60, 60, 20, 20, 0.7, "face", "centerface")]
        return []


def test_leak_gate_masks_and_rechecks_a_face_that_appears_after_masking(monkeypatch) -> None:
    monkeypatch.setattr(engine.registry, "get_detector", lambda name, threshold: ContextShy())
    result = anonymize_image(encode(scene(), "PNG"), POLICY)
    boxes = [r["box"] for r in result.report["regions"]]
    assert [10, 10, 20, 20] in boxes and [60, 60, 20, 20] in boxes
    assert result.report["leak_gate"] == {"enabled": True, "rechecks": 1}
    assert not np.asarray(reopen(result.data))[60:80, 60:80].any()


def test_leak_gate_without_rechecks_quarantines_at_once(monkeypatch) -> None:
    monkeypatch.setattr(engine.registry, "get_detector", lambda name, threshold: ContextShy())
    monkeypatch.setattr(engine, "GATE_RECHECKS", 0)
    with pytest.raises(AnonymizationFailed) as caught:
        anonymize_image(encode(scene(), "PNG"), POLICY)
    assert caught.value.reason == "leak_gate"


class SeesOnlySmallViews:
    """Finds a 'face' only on views <= 512 px wide: records every shape it is shown."""

    info = DetectorInfo(name="centerface", version="test", label="face")

    def __init__(self) -> None:
        self.shapes: list[tuple[int, ...]] = []

    def detect(self, rgb: np.ndarray) -> list[Region]:
        self.shapes.append(rgb.shape)
        if rgb.shape[1] <= 512 and rgb[10:30, 10:30].any():
            return [Region(10, 10, 20, 20, 0.9, "face", "centerface")]
        return []


def test_leak_gate_checks_a_shrunk_view_and_masks_in_full_size_pixels(monkeypatch) -> None:
    fake = SeesOnlySmallViews()
    monkeypatch.setattr(engine.registry, "get_detector", lambda name, threshold: fake)
    result = anonymize_image(encode(scene((1024, 768)), "PNG"), POLICY)
    assert (768, 1024, 3) in fake.shapes and (384, 512, 3) in fake.shapes  # detect, gate
    assert [20, 20, 40, 40] in [r["box"] for r in result.report["regions"]]
    assert result.report["leak_gate"] == {"enabled": True, "rechecks": 1}
    assert not np.asarray(reopen(result.data))[20:60, 20:60].any()


class StubbornPlate:
    """A plate detector that still sees its plate after masking (e.g. a bad mask)."""

    info = DetectorInfo(name="platedet", version="test", label="plate")

    def detect(self, rgb: np.ndarray) -> list[Region]:
        return [Region(5, 5, 30, 10, 0.9, "plate", "platedet")]


def test_leak_gate_quarantines_when_a_plate_remains(monkeypatch) -> None:
    monkeypatch.setattr(engine, "apply_masks", lambda rgb, regions, spec, *a, **k: rgb.copy())
    monkeypatch.setattr(engine.registry, "get_detector",
                        lambda name, threshold: StubbornPlate())
    with pytest.raises(AnonymizationFailed) as caught:
        anonymize_image(encode(scene(), "PNG"), POLICY)
    assert caught.value.reason == "leak_gate"
