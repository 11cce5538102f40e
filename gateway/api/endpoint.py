"""Declaring an endpoint: route, permission, audit event and schemas in one place.

Every route is declared with :func:`endpoint`. The same declaration:
- authenticates the bearer token and checks the permission (a route with no
  permission cannot be declared; public routes say ``PUBLIC`` explicitly);
- validates the JSON body and query string against JSON Schemas;
- makes sure the request writes exactly one audit event, in the transaction of the
  action when it succeeds, and in a transaction of its own when it is denied or
  fails (the action's changes roll back first);
- feeds the OpenAPI document (gateway.api.openapi), so docs and validation agree.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from flask import Blueprint, g, request
from jsonschema import Draft202012Validator

from gateway.api import context
from gateway.auth.roles import PERMISSIONS, grants
from gateway.auth.tokens import authenticate
from gateway.errors import AccessDenied, GatewayError, InvalidRequest

log = structlog.get_logger("gateway.api")

PUBLIC = "public"


@dataclass(frozen=True)
class Spec:
    method: str
    rule: str
    permission: str
    event: str | None
    summary: str
    tag: str
    body: dict[str, Any] | None = None
    query: dict[str, Any] | None = None
    responses: dict[int, tuple[str, dict[str, Any] | None]] = field(default_factory=dict)
    request_media: str = "application/json"


def endpoint(
    bp: Blueprint,
    method: str,
    rule: str,
    *,
    permission: str,
    event: str | None,
    summary: str,
    body: dict[str, Any] | None = None,
    query: dict[str, Any] | None = None,
    responses: dict[int, tuple[str, dict[str, Any] | None]] | None = None,
    request_media: str = "application/json",
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    if permission != PUBLIC and permission not in PERMISSIONS:
        raise ValueError(f"{method} {rule}: unknown permission {permission!r}")
    if permission != PUBLIC and event is None:
        raise ValueError(f"{method} {rule}: a protected endpoint must name its audit event")
    spec = Spec(method, rule, permission, event, summary, bp.name, body, query,
                responses or {}, request_media)
    body_validator = Draft202012Validator(body) if body else None
    query_validator = Draft202012Validator(query) if query else None

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def view(**kwargs: Any) -> Any:
            g.spec = spec
            try:
                if spec.permission != PUBLIC:
                    _authorize(spec.permission)
                if body_validator is not None:
                    kwargs["body"] = _validated_body(body_validator)
                if query_validator is not None:
                    kwargs["query"] = _validated_query(query_validator, spec.query or {})
                result = fn(**kwargs)
                if spec.event is not None and not g.audited:
                    context.audit_ok()
                if "db" in g:
                    context.session().commit()
                return result
            except GatewayError as exc:
                _record_failure(spec, exc)
                raise
            except Exception:
                _record_failure(spec, None)
                raise

        view.spec = spec  # type: ignore[attr-defined]
        bp.add_url_rule(rule, endpoint=fn.__name__, view_func=view, methods=[method])
        return view

    return decorate


def current_spec() -> Spec:
    spec: Spec = g.spec
    return spec


def _authorize(permission: str) -> None:
    header = request.headers.get("Authorization", "")
    scheme, _, secret = header.partition(" ")
    token = secret.strip() if scheme.lower() == "bearer" else None
    g.identity = authenticate(context.session(), token)
    if not grants(g.identity.role, permission):
        raise AccessDenied(f"this action needs the '{permission}' permission",
                           reason="permission_missing")


def _validated_body(validator: Draft202012Validator) -> dict[str, Any]:
    if not request.is_json:
        raise InvalidRequest("send a JSON body (Content-Type: application/json)",
                             reason="not_json")
    data = request.get_json(silent=True)
    if data is None:
        raise InvalidRequest("the body is not valid JSON", reason="bad_json")
    _check(validator, data, "body")
    return dict(data)


def _validated_query(validator: Draft202012Validator, schema: dict[str, Any]) -> dict[str, Any]:
    props = schema.get("properties", {})
    data: dict[str, Any] = {}
    for key, raw in request.args.items():
        kind = props.get(key, {}).get("type")
        if kind == "integer":
            try:
                data[key] = int(raw)
            except ValueError:
                raise InvalidRequest(f"query.{key}: must be an integer",
                                     reason="bad_query") from None
        else:
            data[key] = raw
    _check(validator, data, "query")
    return data


def _check(validator: Draft202012Validator, data: Any, where: str) -> None:
    error = next(iter(sorted(validator.iter_errors(data), key=lambda e: list(e.path))), None)
    if error is None:
        return
    path = ".".join([where, *(str(p) for p in error.absolute_path)])
    # Name the rule, never echo the value: it may be content from the client.
    if error.validator == "additionalProperties":
        allowed = ", ".join(error.schema.get("properties", {}))
        message = f"{path}: unknown field (allowed: {allowed})"
    elif error.validator == "required":
        missing = [r for r in error.validator_value if r not in error.instance]
        message = f"{path}.{missing[0] if missing else '?'}: required"
    else:
        message = f"{path}: fails '{error.validator}' (expected {error.validator_value!r})"
    raise InvalidRequest(message, reason="schema_violation")


def _record_failure(spec: Spec, exc: GatewayError | None) -> None:
    """The action failed: undo its changes, then audit the failure on its own."""
    db = g.pop("db", None)
    if db is not None:
        db.rollback()
        db.close()
    if spec.event is None:
        return
    if exc is None:
        outcome, reason = "error", "internal_error"
    else:
        reason = str(exc.extensions.get("reason") or exc.code)
        outcome = "denied" if exc.status in (401, 403) or reason == "not_visible" else "error"
    try:
        context.audit(spec.event, outcome=outcome, reason=reason, **g.get("audit_fields", {}))
        context.session().commit()
    except Exception as audit_exc:  # noqa: BLE001
        log.error("audit.failure_not_recorded", error_type=type(audit_exc).__name__)
        raise
