"""Per-request state: request id, database session, the authenticated identity."""

from __future__ import annotations

import re
import uuid
from typing import Any

from flask import current_app, g, request
from sqlalchemy.orm import Session

from audit import Event
from gateway.auditing import record
from gateway.auth.tokens import Identity
from gateway.runtime import Runtime

_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{8,64}")


def runtime() -> Runtime:
    rt: Runtime = current_app.extensions["gateway"]
    return rt


def begin_request() -> None:
    supplied = request.headers.get("X-Request-ID", "")
    g.request_id = supplied if _REQUEST_ID.fullmatch(supplied) else uuid.uuid4().hex
    g.identity = None
    g.audited = False


def session() -> Session:
    if "db" not in g:
        g.db = runtime().session()
    db: Session = g.db
    return db


def end_request(_exc: BaseException | None = None) -> None:
    db = g.pop("db", None)
    if db is not None:
        db.close()


def identity() -> Identity:
    ident: Identity | None = g.identity
    assert ident is not None, "endpoint without authentication asked for an identity"
    return ident


def audit_event(action: str, *, outcome: str = "ok", reason: str | None = None,
                **fields: Any) -> Event:
    """Build an event carrying who, from where and which request."""
    ident: Identity | None = g.get("identity")
    return Event(
        action=action,
        outcome=outcome,
        reason=reason,
        actor_id=ident.principal_id if ident else None,
        actor_role=ident.role if ident else None,
        request_id=g.get("request_id"),
        source=request.remote_addr,
        **fields,
    )


def audit(action: str, **fields: Any) -> None:
    """Record this request's event in its transaction (it commits with the action)."""
    record(session(), runtime().audit, audit_event(action, **fields))
    g.audited = True


_ID = re.compile(r"[0-9a-f]{32}")


def note(**fields: str) -> None:
    """Attach object ids to this request's audit event, for failures too.

    Only well-formed ids are kept: a path segment is client input, and arbitrary text
    must not reach the audit log.
    """
    kept = {k: v for k, v in fields.items() if _ID.fullmatch(v)}
    g.audit_fields = {**g.get("audit_fields", {}), **kept}


def audit_ok(**fields: Any) -> None:
    """Record the endpoint's success event with the noted ids plus ``fields``."""
    from gateway.api.endpoint import current_spec

    audit(current_spec().event or "", **{**g.get("audit_fields", {}), **fields})
