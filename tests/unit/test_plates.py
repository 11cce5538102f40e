"""The optional licence-plate detector: unavailable with a reason, refused, or well-formed."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from gateway.anonymize.detectors import boxes, platedet, registry
from gateway.anonymize.detectors.base import Region
from gateway.errors import DetectorUnavailable
from policies import DetectorSpec, ImagePolicy, LeakGate, MaskSpec, load_policy

pytestmark = pytest.mark.unit

POLICIES = Path(__file__).resolve().parents[2] / "policies"
_real_find_spec = importlib.util.find_spec


@pytest.fixture
def without_platedet(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Make ``platedet`` look uninstalled to the spec lookup, whatever is installed."""

    def find_spec(name: str, *args: object, **kwargs: object) -> object:
        if name == "platedet" or name.startswith("platedet."):
            return None
        return _real_find_spec(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    registry.clear_cache()
    yield
    registry.clear_cache()


def plate_policy(threshold: float = 0.25) -> ImagePolicy:
    return ImagePolicy(
        detectors=(DetectorSpec("platedet", threshold),),
        mask=MaskSpec("solid", 0.15, (0, 0, 0), 16),
        leak_gate=LeakGate(True, 0.6),
        max_pixels=10**7,
    )


def test_platedet_is_registered() -> None:
    assert "platedet" in registry.names()


def test_unavailable_with_reason_when_package_absent(without_platedet: None) -> None:
    assert platedet.model_path() is None
    avail = registry.availability("platedet")
    assert not avail.available
    assert avail.reason == (
        "package 'platedet' not installed (optional extra: pip install .[plates]; "
        "model licence: see README)"
    )


def test_policy_naming_platedet_is_refused_when_unavailable(without_platedet: None) -> None:
    with pytest.raises(DetectorUnavailable) as err:
        registry.check_policy(plate_policy())
    assert "platedet" in str(err.value)
    with pytest.raises(DetectorUnavailable):
        registry.check_policy(load_policy(POLICIES / "plates.yaml").image)
    with pytest.raises(DetectorUnavailable):
        registry.get_detector("platedet", 0.25)


def test_default_policy_does_not_need_platedet(without_platedet: None) -> None:
    policy = load_policy(POLICIES / "default.yaml").image
    assert "platedet" not in {spec.name for spec in policy.detectors}
    registry.check_policy(policy)  # faces only: works without the optional extra


def test_plates_policy_is_default_plus_platedet() -> None:
    default = load_policy(POLICIES / "default.yaml").image
    plates = load_policy(POLICIES / "plates.yaml").image
    assert plates.detectors[:-1] == default.detectors
    assert plates.detectors[-1].name == "platedet"
    assert (plates.mask, plates.leak_gate, plates.max_pixels) == (
        default.mask,
        default.leak_gate,
        default.max_pixels,
    )


def test_decode_and_letterbox_round_trip() -> None:
    pred = np.zeros((37, 3), np.float16)
    pred[:5, 0] = [320, 320, 100, 20, 0.9]  # cx, cy, w, h, score
    pred[:5, 1] = [10, 10, 4, 4, 0.1]  # below threshold
    boxes = platedet.decode(pred, 0.25)
    assert boxes.shape == (1, 5)
    assert boxes[0].tolist() == pytest.approx([270, 310, 370, 330, 0.9], abs=1e-3)
    blob, ratio, (left, top) = platedet.letterbox(np.zeros((100, 200, 3), np.uint8), 640)
    assert blob.shape == (1, 3, 640, 640) and blob.dtype == np.float32
    assert (ratio, left, top) == (3.2, 0, 160)


def test_tiles_cover_the_image() -> None:
    windows = boxes.tiles(3000, 2000, 640, 128)
    covered = np.zeros((2000, 3000), bool)
    for x0, y0, x1, y1 in windows:
        assert x1 - x0 <= 640 and y1 - y0 <= 640
        covered[y0:y1, x0:x1] = True
    assert covered.all()


needs_platedet = pytest.mark.skipif(
    not platedet.availability().available, reason="optional extra 'platedet' not installed"
)


@needs_platedet
@pytest.mark.parametrize(
    ("shape", "tile_above"),
    [((480, 640), None), ((700, 1300), None), ((900, 1100), 800)],  # last: global + tiles
)
def test_detector_runs_and_returns_well_formed_regions(
    shape: tuple[int, int], tile_above: int | None
) -> None:
    if tile_above is None:
        detector = registry.get_detector("platedet", 0.01)
    else:
        detector = platedet.PlateDetector(0.01, tile_above=tile_above, max_side=1000)
    assert detector.info.name == "platedet" and detector.info.label == "plate"
    assert "platedet.onnx.sha256." in detector.info.version
    height, width = shape
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    # a plate-like patch: white rectangle, dark border, dark glyph strokes
    y, x, h, w = height // 2, width // 3, max(30, height // 12), max(120, width // 6)
    rgb[y : y + h, x : x + w] = 235
    rgb[y : y + h, x : x + 3] = rgb[y : y + h, x + w - 3 : x + w] = 20
    for i in range(7):
        gx = x + 10 + i * (w - 20) // 7
        rgb[y + h // 5 : y + 4 * h // 5, gx : gx + max(3, w // 40)] = 20
    regions = detector.detect(rgb)
    assert isinstance(regions, list)
    for region in regions:
        assert isinstance(region, Region)
        assert (region.label, region.detector) == ("plate", "platedet")
        assert region.w > 0 and region.h > 0
        assert region.x >= 0 and region.x + region.w <= width
        assert region.y >= 0 and region.y + region.h <= height
        assert 0.01 <= region.score <= 1.0


@needs_platedet
def test_blank_image_has_no_confident_plate() -> None:
    detector = registry.get_detector("platedet", 0.25)
    assert detector.detect(np.full((480, 640, 3), 128, np.uint8)) == []
