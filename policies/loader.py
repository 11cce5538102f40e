"""Load and validate policies. Every key is checked; unknown keys are errors."""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from policies.errors import PolicyError
from policies.model import DetectorSpec, ImagePolicy, LeakGate, MaskSpec, Policy, Retention

MASK_STYLES = ("pixelate", "solid")
RETENTION = ("discard", "expire", "keep")
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
    top = _mapping(data, "policy", required={"id", "version", "image"}, optional={"retention"})
    policy_id = _string(top["id"], "id")
    version = _integer(top["version"], "version", minimum=1)
    image = _image(top["image"], "image")
    retention = _retention(top.get("retention", {"originals": "keep"}), "retention")
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    return Policy(id=policy_id, version=version, image=image, retention=retention,
                  sha256=digest)


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
