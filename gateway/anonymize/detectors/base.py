"""The detector port: detectors find regions, they never change pixels.

Masking (gateway.anonymize.mask) consumes regions and never calls a model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class Region:
    """An axis-aligned box in pixel coordinates of the (orientation-corrected) image."""

    x: int
    y: int
    w: int
    h: int
    score: float
    label: str  # "face" | "plate" | "text"
    detector: str  # name of the detector that found it

    def as_dict(self) -> dict[str, object]:
        return {
            "box": [self.x, self.y, self.w, self.h],
            "score": round(self.score, 4),
            "label": self.label,
            "detector": self.detector,
        }


@dataclass(frozen=True)
class Availability:
    available: bool
    reason: str = ""  # why not, when unavailable (e.g. "package 'mediapipe' not installed")


@dataclass(frozen=True)
class DetectorInfo:
    name: str
    version: str  # detector code + model version, recorded in reports
    label: str
    params: dict[str, object] = field(default_factory=dict)


class Detector(Protocol):
    """Finds regions of one label in an RGB uint8 image (H x W x 3)."""

    info: DetectorInfo

    def detect(self, rgb: np.ndarray) -> list[Region]:
        """Return every region found. Any failure raises; callers quarantine (fail closed)."""
        ...
