"""Liveness and readiness probes (public: they reveal no data)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify

from gateway.api import context, schemas
from gateway.api.endpoint import PUBLIC, endpoint

bp = Blueprint("health", __name__)


@endpoint(bp, "GET", "/healthz", permission=PUBLIC, event=None,
          summary="The process is alive", responses={200: ("Alive", schemas.HEALTH)})
def healthz() -> Any:
    return jsonify({"status": "ok"})


@endpoint(bp, "GET", "/readyz", permission=PUBLIC, event=None,
          summary="Database, storage and keys are usable",
          responses={200: ("Ready", schemas.HEALTH), 503: ("Not ready", schemas.HEALTH)})
def readyz() -> Any:
    checks = context.runtime().readiness()
    ready = all(v == "ok" for v in checks.values())
    return jsonify({"status": "ok" if ready else "unavailable", "checks": checks}), (
        200 if ready else 503
    )
