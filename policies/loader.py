"""Load and validate policies. Every key is checked; unknown keys are errors."""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from policies.dicom import EXCLUSIVE, OPTIONS, PROFILE
from policies.errors import PolicyError
from policies.model import (
    BurnedInText,
    DetectorSpec,
    DicomPolicy,
    ImagePolicy,
    LeakGate,
    MaskSpec,
    Policy,
    Retention,
)

MASK_STYLES = ("pixelate", "solid")
RETENTION = ("discard", "expire", "keep")
TEXT_MASKS = ("all", "header_values")
DEFAULT_POLICY = "default"


def load_policy(source: str | Path | None = None) -> Policy:
    """Load the named built-in policy, or a YAML/JSON file, validated completely."""
    if source is None or str(source) == DEFAULT_POLICY:
        text = resources.files("policies").joinpath("default.yaml").read_text("utf-8")
    else:
        path = Path(source)
        try:
            text = path.read_text("utf-8")
        except OSError as exc:
            raise PolicyError(f"cannot read policy file: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise PolicyError(f"policy is not valid YAML{where}") from None
    return parse_policy(data)


def parse_policy(data: Any) -> Policy:
    top = _mapping(data, "policy", required={"id", "version", "image"},
                   optional={"retention", "dicom"})
    policy_id = _string(top["id"], "id")
    version = _integer(top["version"], "version", minimum=1)
    image = _image(top["image"], "image")
    retention = _retention(top.get("retention", {"originals": "keep"}), "retention")
    dicom = _dicom(top["dicom"] if "dicom" in top else _default_dicom(), "dicom")
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    return Policy(id=policy_id, version=version, image=image, retention=retention,
                  dicom=dicom, sha256=digest)


def _default_dicom() -> dict[str, Any]:
    """A policy without a dicom section gets the built-in default policy's."""
    text = resources.files("policies").joinpath("default.yaml").read_text("utf-8")
    return dict(yaml.safe_load(text)["dicom"])


def _dicom(value: Any, path: str) -> DicomPolicy:
    m = _mapping(value, path, required={"profile", "options", "burned_in_text"},
                 optional={"date_shift_days", "photographic"})
    profile = _string(m["profile"], f"{path}.profile")
    if profile != PROFILE:
        raise PolicyError(f"{path}.profile: {profile!r} is not the bundled {PROFILE!r}")
    options = m["options"]
    if not isinstance(options, list) or not all(isinstance(o, str) for o in options):
        raise PolicyError(f"{path}.options: must be a list of option names")
    for i, option in enumerate(options):
        if option not in OPTIONS:
            raise PolicyError(f"{path}.options[{i}]: {option!r} is not a PS3.15 option "
                              f"(allowed: {', '.join(sorted(OPTIONS))})")
    if all(o in options for o in EXCLUSIVE):
        raise PolicyError(f"{path}.options: {EXCLUSIVE[0]!r} and {EXCLUSIVE[1]!r} exclude "
                          "each other")
    shift = m.get("date_shift_days", [-3650, -365])
    if (not isinstance(shift, list) or len(shift) != 2
            or not all(isinstance(d, int) and not isinstance(d, bool) for d in shift)
            or shift[0] > shift[1] or 0 in range(shift[0], shift[1] + 1)):
        raise PolicyError(f"{path}.date_shift_days: must be [low, high] integers, low <= high, "
                          "not including 0 (every date must move)")
    return DicomPolicy(
        profile=profile,
        options=frozenset(options),
        date_shift_days=(shift[0], shift[1]),
        burned_in_text=_burned_in(m["burned_in_text"], f"{path}.burned_in_text"),
        photographic=_upper_list(m.get("photographic", []), f"{path}.photographic"),
    )


def _burned_in(value: Any, path: str) -> BurnedInText:
    m = _mapping(value, path, required={"modalities", "image_types", "sop_classes", "mask"},
                 optional={"min_confidence", "padding"})
    mask = _string(m["mask"], f"{path}.mask")
    if mask not in TEXT_MASKS:
        allowed = ", ".join(repr(s) for s in TEXT_MASKS)
        raise PolicyError(f"{path}.mask: {mask!r} is not one of {allowed}")
    confidence = _integer(m.get("min_confidence", 30), f"{path}.min_confidence", minimum=0)
    if confidence > 100:
        raise PolicyError(f"{path}.min_confidence: must be <= 100")
    return BurnedInText(
        modalities=_upper_list(m["modalities"], f"{path}.modalities"),
        image_types=_upper_list(m["image_types"], f"{path}.image_types"),
        sop_classes=_upper_list(m["sop_classes"], f"{path}.sop_classes"),
        mask=mask,
        min_confidence=confidence,
        padding=_integer(m.get("padding", 2), f"{path}.padding", minimum=0),
    )


def _upper_list(value: Any, path: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise PolicyError(f"{path}: must be a list of non-empty strings")
    return tuple(v.strip().upper() for v in value)


def _image(value: Any, path: str) -> ImagePolicy:
    m = _mapping(value, path, required={"detectors", "mask", "leak_gate", "max_pixels"})
    dets = m["detectors"]
    if not isinstance(dets, list) or not dets:
        raise PolicyError(f"{path}.detectors: must be a non-empty list")
    specs = tuple(_detector(d, f"{path}.detectors[{i}]") for i, d in enumerate(dets))
    names = [s.name for s in specs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise PolicyError(f"{path}.detectors: {dupes[0]!r} is listed twice")
    return ImagePolicy(
        detectors=specs,
        mask=_mask(m["mask"], f"{path}.mask"),
        leak_gate=_leak_gate(m["leak_gate"], f"{path}.leak_gate"),
        max_pixels=_integer(m["max_pixels"], f"{path}.max_pixels", minimum=1),
    )


def _retention(value: Any, path: str) -> Retention:
    m = _mapping(value, path, required={"originals"}, optional={"expire_after_days"})
    originals = _string(m["originals"], f"{path}.originals")
    if originals not in RETENTION:
        allowed = ", ".join(repr(s) for s in RETENTION)
        raise PolicyError(f"{path}.originals: {originals!r} is not one of {allowed}")
    days = m.get("expire_after_days")
    if originals == "expire":
        if days is None:
            raise PolicyError(f"{path}.expire_after_days: required when originals is 'expire'")
        days = _integer(days, f"{path}.expire_after_days", minimum=1)
    elif days is not None:
        raise PolicyError(f"{path}.expire_after_days: only allowed when originals is 'expire'")
    return Retention(originals=originals, expire_after_days=days)


def _detector(value: Any, path: str) -> DetectorSpec:
    m = _mapping(value, path, required={"name", "threshold"})
    return DetectorSpec(
        name=_string(m["name"], f"{path}.name"),
        threshold=_fraction(m["threshold"], f"{path}.threshold"),
    )


def _mask(value: Any, path: str) -> MaskSpec:
    m = _mapping(value, path, required={"style", "padding"}, optional={"color", "block"})
    style = _string(m["style"], f"{path}.style")
    if style not in MASK_STYLES:
        allowed = ", ".join(repr(s) for s in MASK_STYLES)
        raise PolicyError(f"{path}.style: {style!r} is not one of {allowed}")
    padding = _number(m["padding"], f"{path}.padding", minimum=0.0, maximum=2.0)
    color = m.get("color", [0, 0, 0])
    if (
        not isinstance(color, list)
        or len(color) != 3
        or not all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= 255 for c in color)
    ):
        raise PolicyError(f"{path}.color: must be three integers 0-255")
    block = _integer(m.get("block", 16), f"{path}.block", minimum=4)
    return MaskSpec(style=style, padding=padding, color=(color[0], color[1], color[2]), block=block)


def _leak_gate(value: Any, path: str) -> LeakGate:
    m = _mapping(value, path, required={"enabled", "threshold"})
    enabled = m["enabled"]
    if not isinstance(enabled, bool):
        raise PolicyError(f"{path}.enabled: must be true or false")
    return LeakGate(enabled=enabled, threshold=_fraction(m["threshold"], f"{path}.threshold"))


def _mapping(
    value: Any, path: str, *, required: set[str], optional: set[str] | None = None
) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PolicyError(f"{path}: must be a mapping")
    allowed = required | (optional or set())
    for key in value:
        if key not in allowed:
            raise PolicyError(f"{path}.{key}: unknown key (allowed: {', '.join(sorted(allowed))})")
    for key in sorted(required):
        if key not in value:
            raise PolicyError(f"{path}.{key}: required")
    return value


def _string(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise PolicyError(f"{path}: must be a non-empty string")
    return value


def _integer(value: Any, path: str, *, minimum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise PolicyError(f"{path}: must be an integer")
    if value < minimum:
        raise PolicyError(f"{path}: must be >= {minimum}")
    return value


def _number(value: Any, path: str, *, minimum: float, maximum: float) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise PolicyError(f"{path}: must be a number")
    if not minimum <= value <= maximum:
        raise PolicyError(f"{path}: must be between {minimum} and {maximum}")
    return float(value)


def _fraction(value: Any, path: str) -> float:
    return _number(value, path, minimum=0.0, maximum=1.0)
