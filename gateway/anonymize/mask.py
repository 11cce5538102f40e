"""Mask detected regions. Pure array work: this module never calls a model.

Why these choices:

* Boxes are rectangular and padded by ``spec.padding`` of their size on every side, so
  hair, ears and detector jitter are covered and every pixel of a labelled face box is
  covered even when the detector's box is slightly off.
* ``solid`` is the default: nothing of the face survives.
* ``pixelate`` keeps a coarse impression (useful to annotators) but is made hard to
  invert: cells are at least ``spec.block`` px and at least a quarter of the face, so a
  face is at most ~4 cells across, and each cell gets random noise, so the cell means
  (the only information left) are not the true means. A light blur is never offered:
  blurred faces are recognisable and deblurrable.
* Arrays may be H x W (grey) or H x W x C, uint8 or uint16: the engine masks the image in
  its own bit depth rather than squeezing 16-bit scans to 8 bits.
"""

from __future__ import annotations

from collections.abc import Iterable

import cv2
import numpy as np

from gateway.anonymize.detectors.base import Region
from policies import MaskSpec

MAX_CELLS_ACROSS = 4
NOISE_FRACTION = 0.12  # std-dev of per-cell noise, as a fraction of full scale


def padded_box(region: Region, padding: float, width: int, height: int) -> tuple[int, ...]:
    """``(x0, y0, x1, y1)`` of the region grown by ``padding`` per side, clipped."""
    px, py = region.w * padding, region.h * padding
    x0 = max(0, int(np.floor(region.x - px)))
    y0 = max(0, int(np.floor(region.y - py)))
    x1 = min(width, int(np.ceil(region.x + region.w + px)))
    y1 = min(height, int(np.ceil(region.y + region.h + py)))
    return x0, y0, x1, y1


def apply_masks(
    rgb: np.ndarray,
    regions: Iterable[Region],
    spec: MaskSpec,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Return a copy of ``rgb`` with every region masked as ``spec`` says."""
    out = rgb.copy()
    height, width = out.shape[:2]
    rng = rng if rng is not None else np.random.default_rng()
    for region in regions:
        x0, y0, x1, y1 = padded_box(region, spec.padding, width, height)
        if x1 <= x0 or y1 <= y0:
            continue
        if spec.style == "solid":
            out[y0:y1, x0:x1] = _fill_value(out, spec.color)
        elif spec.style == "pixelate":
            out[y0:y1, x0:x1] = _pixelate(out[y0:y1, x0:x1], spec.block, rng)
        else:  # the policy loader already refuses other styles; stay closed anyway
            raise ValueError("unknown mask style")
    return out


def _full_scale(arr: np.ndarray) -> int:
    return int(np.iinfo(arr.dtype).max)


def _fill_value(arr: np.ndarray, color: tuple[int, int, int]) -> np.ndarray:
    """``color`` (8-bit RGB) in the array's depth and channel count."""
    rgb = np.asarray(color, np.float64) * (_full_scale(arr) / 255)
    if arr.ndim == 2:
        value = rgb @ np.array([0.299, 0.587, 0.114])
        return np.asarray(round(value), arr.dtype)
    channels = arr.shape[2]
    fill = np.resize(np.round(rgb), channels)  # RGB, padded if there are more channels
    return fill.astype(arr.dtype)


def _pixelate(patch: np.ndarray, block: int, rng: np.random.Generator) -> np.ndarray:
    h, w = patch.shape[:2]
    cell = max(block, -(-max(h, w) // MAX_CELLS_ACROSS))
    small = cv2.resize(
        patch, (max(1, -(-w // cell)), max(1, -(-h // cell))), interpolation=cv2.INTER_AREA
    ).astype(np.float64)
    scale = _full_scale(patch)
    small += rng.normal(0.0, NOISE_FRACTION * scale, small.shape)
    small = np.clip(np.round(small), 0, scale).astype(patch.dtype)
    big = cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)
    return big.reshape(patch.shape)
