"""Box geometry shared by the detectors: suppression, regions, tiles, resizing."""

from __future__ import annotations

import cv2
import numpy as np

from gateway.anonymize.detectors.base import Region


def nms(boxes: np.ndarray, iou: float) -> np.ndarray:
    """Greedy non-maximum suppression over ``[x0, y0, x1, y1, score]`` rows."""
    if len(boxes) == 0:
        return boxes
    xywh = [[float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])] for b in boxes]
    keep = cv2.dnn.NMSBoxes(xywh, [float(s) for s in boxes[:, 4]], 0.0, iou)
    return boxes[np.asarray(keep, int).reshape(-1)]


def to_regions(boxes: np.ndarray, width: int, height: int, label: str,
               name: str) -> list[Region]:
    """``[x0, y0, x1, y1, score]`` rows -> regions, grown to whole pixels and clipped."""
    regions = []
    for x0, y0, x1, y1, score in boxes.tolist():
        left, top = max(0, int(np.floor(x0))), max(0, int(np.floor(y0)))
        right, bottom = min(width, int(np.ceil(x1))), min(height, int(np.ceil(y1)))
        if right > left and bottom > top:
            regions.append(Region(left, top, right - left, bottom - top, score, label, name))
    return regions


def tiles(width: int, height: int, tile: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """Windows of at most ``tile`` px covering the image, neighbours sharing ``overlap`` px."""
    return [
        (x, y, min(x + tile, width), min(y + tile, height))
        for y in _starts(height, tile, overlap)
        for x in _starts(width, tile, overlap)
    ]


def _starts(size: int, tile: int, overlap: int) -> list[int]:
    if size <= tile:
        return [0]
    count = -(-(size - overlap) // (tile - overlap))
    step = (size - tile) / (count - 1)
    return [round(i * step) for i in range(count)]


def resize(rgb: np.ndarray, scale: float) -> np.ndarray:
    """``rgb`` scaled by ``scale`` (area averaging down, bilinear up; unchanged at 1)."""
    if abs(scale - 1.0) < 1e-6:
        return rgb
    size = (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(rgb, size, interpolation=interp)
