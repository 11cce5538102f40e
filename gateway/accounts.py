"""Accounts and tokens, shared by the CLI and (later) the admin API. Each change is audited."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from audit import Event
from gateway.auditing import record
from gateway.auth import tokens
from gateway.auth.roles import ROLES
from gateway.db.models import ApiToken, Principal
from gateway.errors import Conflict, InvalidRequest, NotFound
from gateway.runtime import Runtime

SYSTEM = "system"  # actor_role of changes made from the CLI


def create_user(runtime: Runtime, session: Session, name: str, role: str) -> Principal:
    if role not in ROLES:
        raise InvalidRequest(f"role must be one of {', '.join(ROLES)}")
    if not name.strip() or len(name) > 200:
        raise InvalidRequest("name must be 1-200 characters")
    principal = Principal(name=name.strip(), role=role)
    session.add(principal)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise Conflict("a user with that name exists") from None
    record(session, runtime.audit, Event(action="admin:user:created", object_type="user",
                                         object_id=principal.id, actor_role=SYSTEM))
    return principal


def find_user(session: Session, name: str) -> Principal:
    principal = session.scalar(select(Principal).where(Principal.name == name))
    if principal is None:
        raise NotFound("no such user")
    return principal


def create_token(runtime: Runtime, session: Session, principal: Principal,
                 ttl_days: int | None = None) -> tuple[ApiToken, str]:
    days = ttl_days if ttl_days is not None else runtime.settings.token_ttl_days
    if days <= 0:
        raise InvalidRequest("the lifetime must be at least one day")
    token, secret = tokens.issue(session, principal, timedelta(days=days))
    record(session, runtime.audit, Event(action="admin:token:created", object_type="token",
                                         object_id=token.id, refs={"user": principal.id},
                                         actor_role=SYSTEM))
    return token, secret


def revoke_token(runtime: Runtime, session: Session, token_id: str) -> ApiToken:
    token = tokens.revoke(session, token_id)
    record(session, runtime.audit, Event(action="admin:token:revoked", object_type="token",
                                         object_id=token.id, actor_role=SYSTEM))
    return token


def bootstrap_admin(runtime: Runtime, session: Session) -> str | None:
    """On a database with no users, create ``admin`` and return its token (shown once)."""
    if session.scalar(select(Principal.id).limit(1)) is not None:
        return None
    admin = create_user(runtime, session, "admin", "admin")
    _, secret = create_token(runtime, session, admin)
    return secret
