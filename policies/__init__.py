"""Declarative anonymization policies: data, validated completely at load.

This package imports nothing from ``gateway``. A bad policy is refused with a precise
:class:`PolicyError` naming the offending field, e.g.
``image.mask.style: 'blur' is not one of 'pixelate', 'solid'``.
"""

from policies.errors import PolicyError
from policies.loader import DEFAULT_POLICY, load_policy, parse_policy
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

__all__ = [
    "DEFAULT_POLICY",
    "BurnedInText",
    "DicomPolicy",
    "DetectorSpec",
    "ImagePolicy",
    "LeakGate",
    "MaskSpec",
    "Policy",
    "PolicyError",
    "Retention",
    "load_policy",
    "parse_policy",
]
