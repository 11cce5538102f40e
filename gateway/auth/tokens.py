"""API tokens: 256 random bits, shown once, stored only as SHA-256.

A fast hash is right here: the secret has 256 bits of entropy, so there is nothing
for a slow password hash to protect against, and lookups stay one indexed query.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from gateway.db.models import ApiToken, Principal, utcnow
from gateway.errors import AuthenticationRequired, InvalidRequest, NotFound

TOKEN_PREFIX = "gw_"  # noqa: S105 - a public prefix, not a secret
_SECRET_BYTES = 32


@dataclass(frozen=True)
class Identity:
    principal_id: str
    role: str
    token_id: str


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii", "replace")).hexdigest()


def issue(session: Session, principal: Principal, ttl: timedelta) -> tuple[ApiToken, str]:
    """Create a token; the plain secret is returned once and never stored."""
    secret = TOKEN_PREFIX + secrets.token_urlsafe(_SECRET_BYTES)
    token = ApiToken(
        principal_id=principal.id,
        secret_sha256=_digest(secret),
        expires_at=utcnow() + ttl,
    )
    session.add(token)
    session.flush()
    return token, secret


def authenticate(session: Session, secret: str | None) -> Identity:
    """Resolve a bearer secret to an identity, or raise with a reason code."""
    if not secret:
        raise AuthenticationRequired("a bearer token is required", reason="token_missing")
    if not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:
        raise AuthenticationRequired("the token is not valid", reason="token_invalid")
    digest = _digest(secret)
    row = session.execute(_LOOKUP, {"digest": digest}).first()
    if row is None or not hmac.compare_digest(row.secret_sha256, digest):
        raise AuthenticationRequired("the token is not valid", reason="token_invalid")
    if row.revoked_at is not None:
        raise AuthenticationRequired("the token has been revoked", reason="token_revoked")
    if _aware(row.expires_at) <= utcnow():
        raise AuthenticationRequired("the token has expired", reason="token_expired")
    if row.disabled_at is not None:
        raise AuthenticationRequired("the account is disabled", reason="principal_disabled")
    return Identity(principal_id=row.principal_id, role=row.role, token_id=row.token_id)


# Every request runs this: built once, and only the columns it needs (no ORM objects).
_LOOKUP = (select(ApiToken.id.label("token_id"), ApiToken.secret_sha256, ApiToken.revoked_at,
                  ApiToken.expires_at, Principal.id.label("principal_id"), Principal.role,
                  Principal.disabled_at)
           .join(Principal, Principal.id == ApiToken.principal_id)
           .where(ApiToken.secret_sha256 == bindparam("digest")))


def revoke(session: Session, token_id: str) -> ApiToken:
    token = session.get(ApiToken, token_id)
    if token is None:
        raise NotFound("no such token")
    if token.revoked_at is not None:
        raise InvalidRequest("the token is already revoked")
    token.revoked_at = utcnow()
    return token


def _aware(value: datetime) -> datetime:
    """SQLite returns naive datetimes; they were written in UTC."""
    from datetime import UTC

    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
