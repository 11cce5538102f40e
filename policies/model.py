"""The policy model: frozen dataclasses, built only by :mod:`policies.loader`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DetectorSpec:
    name: str  # registered detector name, e.g. "centerface"
    threshold: float  # minimum score for a region to be masked


@dataclass(frozen=True)
class MaskSpec:
    style: str  # "solid" | "pixelate" (pixelate adds noise; never a light blur)
    padding: float  # fraction of the box size added on every side
    color: tuple[int, int, int]  # fill colour for "solid"
    block: int  # cell size in pixels for "pixelate"


@dataclass(frozen=True)
class LeakGate:
    enabled: bool
    threshold: float  # a face scored at or above this on the output -> quarantine


@dataclass(frozen=True)
class ImagePolicy:
    detectors: tuple[DetectorSpec, ...]
    mask: MaskSpec
    leak_gate: LeakGate
    max_pixels: int  # uploads whose header claims more pixels are refused before decoding


@dataclass(frozen=True)
class Retention:
    originals: str  # "keep" (until erased) | "discard" (after processing) | "expire"
    expire_after_days: int | None  # with "expire": originals older than this are destroyed


@dataclass(frozen=True)
class Policy:
    id: str
    version: int
    image: ImagePolicy
    retention: Retention
    sha256: str  # hash of the canonical form; recorded in reports and audit events
