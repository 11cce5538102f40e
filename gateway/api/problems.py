"""The one place errors become HTTP responses: RFC 9457 ``application/problem+json``.

Details come from :class:`GatewayError` messages, written for clients. Anything else
is a 500 carrying only an error id: exception text may contain PHI, so it is logged
by type only and never echoed.
"""

from __future__ import annotations

import uuid
from typing import Any

import structlog
from flask import Flask, Response, g, json, request
from werkzeug.exceptions import HTTPException

from gateway.errors import GatewayError

log = structlog.get_logger("gateway.api")

PROBLEM_JSON = "application/problem+json"


def problem(status: int, code: str, title: str, detail: str, **extra: Any) -> Response:
    body: dict[str, Any] = {
        "type": f"/problems/{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.path,
        "code": code,
        "request_id": getattr(g, "request_id", None),
    }
    body.update({k: v for k, v in extra.items() if v is not None})
    resp = Response(json.dumps(body), status=status, mimetype=PROBLEM_JSON)
    if status == 401:
        resp.headers["WWW-Authenticate"] = 'Bearer realm="gateway"'
    return resp


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(GatewayError)
    def _gateway_error(exc: GatewayError) -> Response:
        if exc.status >= 500:
            log.error("request.failed", code=exc.code, path=request.path)
        return problem(exc.status, exc.code, exc.title, exc.detail, **exc.extensions)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        code = (exc.name or "error").lower().replace(" ", "_")
        return problem(status, code, exc.name or "Error", exc.description or "")

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        error_id = uuid.uuid4().hex
        # exc_info is rendered without frame locals (gateway.logs); the message itself
        # is not logged because foreign exception text may quote content.
        log.error("request.unexpected_error", error_id=error_id, error_type=type(exc).__name__,
                  path=request.path)
        return problem(500, "internal_error", "Internal error",
                       "an unexpected error occurred; quote the error_id to an administrator",
                       error_id=error_id)
