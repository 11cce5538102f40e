"""The HTTP edge: one blueprint per resource, errors mapped in one place."""

from __future__ import annotations

from flask import Flask, Response, g

from gateway.api import (
    assignments,
    audit_log,
    context,
    datasets,
    health,
    items,
    openapi,
    projects,
)
from gateway.api.problems import register_error_handlers

BLUEPRINTS = (health.bp, openapi.bp, datasets.bp, items.bp, audit_log.bp, projects.bp,
              assignments.bp)


def register_api(app: Flask) -> None:
    for bp in BLUEPRINTS:
        app.register_blueprint(bp)
    app.before_request(context.begin_request)
    app.teardown_request(context.end_request)
    register_error_handlers(app)

    @app.after_request
    def _headers(resp: Response) -> Response:
        resp.headers["X-Request-ID"] = g.get("request_id", "")
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        return resp
