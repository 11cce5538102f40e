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
class BurnedInText:
    """When and how text burned into DICOM pixels is found (OCR) and masked."""

    modalities: tuple[str, ...]  # Modality values whose frames are always read
    image_types: tuple[str, ...]  # ImageType values (any position) that trigger reading
    sop_classes: tuple[str, ...]  # SOP Class UIDs that trigger reading (secondary capture...)
    mask: str  # "all": every text region | "header_values": only words from the header
    min_confidence: int  # Tesseract word confidence (0-100) from which a word counts as text
    padding: int  # pixels added around every masked word box


@dataclass(frozen=True)
class DicomPolicy:
    """PS3.15 Basic Application Level Confidentiality Profile plus the options chosen."""

    profile: str  # "ps3.15-2024b": the bundled Table E.1-1 revision
    options: frozenset[str]  # see policies.dicom.OPTIONS
    date_shift_days: tuple[int, int]  # keyed per-patient shift range (modified dates)
    burned_in_text: BurnedInText
    photographic: tuple[str, ...]  # Modality values whose frames go through face detection


@dataclass(frozen=True)
class Policy:
    id: str
    version: int
    image: ImagePolicy
    retention: Retention
    dicom: DicomPolicy
    sha256: str  # hash of the canonical form; recorded in reports and audit events
