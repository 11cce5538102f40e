"""Detectors by name, each with an availability check; instances cached per process.

Why:

* A missing package or model file makes a detector *unavailable with a reason*, found
  without importing the heavy backend; a policy naming it is refused up front
  (:func:`check_policy`, fail closed) instead of crashing on import or running weaker.
* Models load once per process and never on a request's hot path: :func:`get_detector`
  caches instances per ``(name, threshold)``; :func:`warm_up` lets the app factory or a
  worker load everything a policy needs at start.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from gateway.anonymize.detectors import centerface, mediapipe_face, platedet
from gateway.anonymize.detectors.base import Availability, Detector
from gateway.errors import DetectorUnavailable
from policies import ImagePolicy


@dataclass(frozen=True)
class Registration:
    name: str
    availability: Callable[[], Availability]
    factory: Callable[[float], Detector]


def _centerface(threshold: float) -> Detector:
    return centerface.CenterFaceDetector(threshold)


def _mediapipe(threshold: float) -> Detector:
    return mediapipe_face.MediaPipeFaceDetector(threshold)


def _platedet(threshold: float) -> Detector:
    return platedet.PlateDetector(threshold)


REGISTRY: dict[str, Registration] = {
    reg.name: reg
    for reg in (
        Registration(centerface.NAME, centerface.availability, _centerface),
        Registration(mediapipe_face.NAME, mediapipe_face.availability, _mediapipe),
        # optional extra (.[plates]); its model is AGPL-3.0 (Ultralytics): see platedet.py
        Registration(platedet.NAME, platedet.availability, _platedet),
    )
}

_cache: dict[tuple[str, float], Detector] = {}
_lock = threading.Lock()


def names() -> list[str]:
    return sorted(REGISTRY)


def availability(name: str) -> Availability:
    reg = REGISTRY.get(name)
    if reg is None:
        return Availability(False, f"no detector named {name!r} is registered")
    try:
        return reg.availability()
    except Exception:  # a broken install must read as unavailable, not crash the caller
        return Availability(False, "availability check failed")


def get_detector(name: str, threshold: float) -> Detector:
    """The process-wide detector ``name`` at ``threshold``, built on first use."""
    key = (name, float(threshold))
    with _lock:
        detector = _cache.get(key)
        if detector is None:
            _require(name)
            try:
                detector = REGISTRY[name].factory(float(threshold))
            except Exception:
                raise DetectorUnavailable(
                    "detector_unavailable", f"detector {name!r} failed to load its model"
                ) from None
            _cache[key] = detector
    return detector


def check_policy(policy: ImagePolicy) -> None:
    """Raise :class:`DetectorUnavailable` if any detector the policy names is unavailable."""
    for spec in policy.detectors:
        _require(spec.name)


def warm_up(policy: ImagePolicy) -> None:
    """Load every model the policy (and its leak gate) needs, now rather than per request."""
    check_policy(policy)
    for spec in policy.detectors:
        get_detector(spec.name, spec.threshold)
        if policy.leak_gate.enabled:
            get_detector(spec.name, gate_threshold(spec.threshold, policy.leak_gate.threshold))


def gate_threshold(detector_threshold: float, gate: float) -> float:
    """The leak gate must see every score >= its own threshold, whatever the policy's."""
    return min(detector_threshold, gate)


def _require(name: str) -> None:
    avail = availability(name)
    if not avail.available:
        raise DetectorUnavailable(
            "detector_unavailable", f"detector {name!r} is unavailable: {avail.reason}"
        )


def clear_cache() -> None:
    """Forget loaded detectors (tests)."""
    with _lock:
        _cache.clear()
