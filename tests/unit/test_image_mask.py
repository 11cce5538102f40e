"""apply_masks: padded, clipped, complete; pixelate is coarse and noisy, never a light blur."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.anonymize.detectors.base import Region
from gateway.anonymize.mask import apply_masks, padded_box
from policies import MaskSpec

pytestmark = pytest.mark.unit

SOLID = MaskSpec(style="solid", padding=0.0, color=(255, 0, 128), block=16)
PIXELATE = MaskSpec(style="pixelate", padding=0.0, color=(0, 0, 0), block=8)


def face(x: int, y: int, w: int, h: int) -> Region:
    return Region(x, y, w, h, 0.9, "face", "test")


def photo(height: int = 120, width: int = 160, dtype: type = np.uint8) -> np.ndarray:
    top = np.iinfo(dtype).max
    return np.random.default_rng(1).integers(0, top, (height, width, 3), dtype=dtype)


@pytest.mark.parametrize(
    ("region", "padding", "expected"),
    [
        (face(40, 40, 20, 20), 0.0, (40, 40, 60, 60)),  # no padding: the box itself
        (face(40, 40, 20, 20), 0.5, (30, 30, 70, 70)),  # half the size on every side
        (face(0, 0, 20, 20), 0.5, (0, 0, 30, 30)),  # clipped at the top-left corner
        (face(150, 110, 20, 20), 0.25, (145, 105, 160, 120)),  # clipped bottom-right
        (face(41, 41, 3, 3), 0.1, (40, 40, 45, 45)),  # fractions round outward
    ],
)
def test_padded_box(region: Region, padding: float, expected: tuple[int, ...]) -> None:
    assert padded_box(region, padding, 160, 120) == expected


def test_solid_fills_the_whole_box_and_nothing_else() -> None:
    rgb = photo()
    out = apply_masks(rgb, [face(30, 20, 40, 50)], SOLID)
    assert (out[20:70, 30:70] == (255, 0, 128)).all()
    outside = np.ones(rgb.shape[:2], bool)
    outside[20:70, 30:70] = False
    assert (out[outside] == rgb[outside]).all()
    assert out is not rgb and (rgb[20:70, 30:70] != (255, 0, 128)).any()  # input untouched


def test_padding_grows_the_mask_on_every_side() -> None:
    spec = MaskSpec(style="solid", padding=0.25, color=(0, 0, 0), block=16)
    out = apply_masks(photo(), [face(40, 40, 40, 40)], spec)
    assert (out[30:90, 30:90] == 0).all()


def test_box_at_the_edge_is_clipped_not_wrapped() -> None:
    spec = MaskSpec(style="solid", padding=1.0, color=(0, 0, 0), block=16)
    rgb = photo()
    out = apply_masks(rgb, [face(150, 0, 10, 10)], spec)
    assert (out[0:20, 140:160] == 0).all()
    assert (out[:, :140] == rgb[:, :140]).all()


def test_pixelate_covers_every_pixel_with_at_most_four_cells_across() -> None:
    rgb = photo(200, 200)
    box = face(20, 20, 120, 120)
    out = apply_masks(rgb, [box], PIXELATE, rng=np.random.default_rng(7))
    patch = out[20:140, 20:140]
    cells_across = len(np.unique(patch[0], axis=0))
    assert 1 <= cells_across <= 4
    changed = np.any(patch != rgb[20:140, 20:140], axis=2).mean()
    assert changed > 0.98  # not a light blur: almost nothing survives
    assert (out[150:, :] == rgb[150:, :]).all()


def test_pixelate_cells_are_at_least_the_block_size() -> None:
    spec = MaskSpec(style="pixelate", padding=0.0, color=(0, 0, 0), block=16)
    out = apply_masks(photo(), [face(0, 0, 32, 32)], spec, rng=np.random.default_rng(0))
    assert len(np.unique(out[0, :32], axis=0)) <= 2


def test_pixelate_adds_noise_so_cell_means_are_not_the_true_means() -> None:
    rgb = np.full((64, 64, 3), 100, np.uint8)
    box = [face(0, 0, 64, 64)]
    first = apply_masks(rgb, box, PIXELATE, rng=np.random.default_rng(1))
    second = apply_masks(rgb, box, PIXELATE, rng=np.random.default_rng(2))
    assert (first != 100).any()
    assert (first != second).any()


def test_grey_and_sixteen_bit_arrays_are_masked_in_their_own_depth() -> None:
    grey = np.random.default_rng(0).integers(0, 65535, (50, 50), dtype=np.uint16)
    white = MaskSpec(style="solid", padding=0.0, color=(255, 255, 255), block=16)
    out = apply_masks(grey, [face(10, 10, 20, 20)], white)
    assert out.dtype == np.uint16 and (out[10:30, 10:30] == 65535).all()
    noisy = apply_masks(grey, [face(10, 10, 20, 20)], PIXELATE, rng=np.random.default_rng(0))
    assert noisy.shape == grey.shape and (noisy[10:30, 10:30] != grey[10:30, 10:30]).mean() > 0.9


def test_no_regions_returns_an_equal_copy() -> None:
    rgb = photo()
    out = apply_masks(rgb, [], SOLID)
    assert out is not rgb and (out == rgb).all()


def test_unknown_style_fails_closed() -> None:
    spec = MaskSpec(style="blur", padding=0.0, color=(0, 0, 0), block=16)
    with pytest.raises(ValueError, match="unknown mask style"):
        apply_masks(photo(), [face(0, 0, 10, 10)], spec)
