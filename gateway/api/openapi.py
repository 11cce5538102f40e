"""OpenAPI 3.1, generated from the endpoint declarations that also validate requests."""

from __future__ import annotations

import re
from importlib import resources
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify

from gateway.api.endpoint import PUBLIC, Spec, endpoint

bp = Blueprint("docs", __name__)

_PARAM = re.compile(r"<(?:[a-z]+:)?([a-z_]+)>")

PROBLEM = {
    "type": "object",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "code": {"type": "string"},
        "request_id": {"type": "string"},
    },
    "required": ["type", "title", "status", "code"],
}


PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}


def specs(app: Flask) -> list[tuple[str, Spec | None]]:
    """Every (flask rule, spec) pair; routes without a spec are returned with None."""
    out = []
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        out.append((rule.rule, getattr(view, "spec", None)))
    return out


def _operation(path_rule: str, spec: Spec) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": f"{spec.tag}_{spec.method.lower()}_{_slug(path_rule)}",
        "summary": spec.summary,
        "tags": [spec.tag],
        "x-permission": spec.permission,
        "x-audit-event": spec.event,
        "parameters": [
            {"name": name, "in": "path", "required": True,
             "schema": {"type": "string", "pattern": "^[0-9a-f]{32}$"}}
            for name in _PARAM.findall(path_rule)
        ],
        "responses": {},
    }
    for name, schema in (spec.query or {}).get("properties", {}).items():
        op["parameters"].append({"name": name, "in": "query", "required": False,
                                 "schema": schema})
    if spec.body is not None:
        op["requestBody"] = {"required": True,
                             "content": {"application/json": {"schema": spec.body}}}
    elif spec.request_media == "multipart/form-data":
        from gateway.api.schemas import UPLOAD

        op["requestBody"] = {"required": True,
                             "content": {"multipart/form-data": {"schema": UPLOAD}}}
    for status, (description, schema) in spec.responses.items():
        entry: dict[str, Any] = {"description": description}
        if schema is not None:
            entry["content"] = {"application/json": {"schema": schema}}
        op["responses"][str(status)] = entry
    op["responses"]["default"] = {
        "description": "A problem (RFC 9457)",
        "content": {"application/problem+json": {"schema": PROBLEM_REF}},
    }
    op["security"] = [] if spec.permission == PUBLIC else [{"bearer": []}]
    return op


def _slug(rule: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", _PARAM.sub(r"\1", rule)).strip("_") or "root"


def build_document(app: Flask) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for rule, spec in specs(app):
        if spec is None:
            continue
        path = _PARAM.sub(r"{\1}", rule)
        paths.setdefault(path, {})[spec.method.lower()] = _operation(rule, spec)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Privacy gateway API", "version": "0.1.0",
                 "description": "Upload sensitive images; get anonymized copies; audit all."},
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": {"Problem": PROBLEM},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


@endpoint(bp, "GET", "/openapi.json", permission=PUBLIC, event=None,
          summary="This document", responses={200: ("OpenAPI 3.1", {"type": "object"})})
def openapi_json() -> Any:
    return jsonify(build_document(current_app))


@endpoint(bp, "GET", "/docs", permission=PUBLIC, event=None,
          summary="Interactive API documentation (works offline)",
          responses={200: ("HTML", None)})
def docs_page() -> Any:
    html = resources.files("gateway").joinpath("static/docs.html").read_text("utf-8")
    return Response(html, mimetype="text/html",
                    headers={"Content-Security-Policy": "default-src 'self'; "
                             "script-src 'self'; style-src 'self' 'unsafe-inline'"})


@endpoint(bp, "GET", "/docs.js", permission=PUBLIC, event=None,
          summary="Script of the documentation page", responses={200: ("JavaScript", None)})
def docs_script() -> Any:
    js = resources.files("gateway").joinpath("static/docs.js").read_text("utf-8")
    return Response(js, mimetype="text/javascript")
