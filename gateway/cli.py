"""The ``gateway`` command.

Errors print one plain line on stderr and exit non-zero (2 for usage and
configuration errors, 1 for refused operations); never a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, NoReturn

import click

from gateway.config import Settings, load_settings
from gateway.errors import ConfigError, GatewayError


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _settings(**overrides: Any) -> Settings:
    try:
        return load_settings({k: v for k, v in overrides.items() if v is not None})
    except ConfigError as exc:
        _fail(exc.detail, 2)


def _guarded(action: Callable[[], Any]) -> Any:
    try:
        return action()
    except ConfigError as exc:
        _fail(exc.detail, 2)
    except GatewayError as exc:
        _fail(exc.detail, 1)


@click.group(help="Privacy-preserving ingestion gateway.")
def main() -> None:
    pass


@main.command(help="Initialize (first start only) and serve the API.")
@click.option("--host", help="Interface to bind (GATEWAY_HOST, default 127.0.0.1).")
@click.option("--port", type=int, help="Port (GATEWAY_PORT, default 8080).")
def serve(host: str | None, port: int | None) -> None:
    from gateway.bootstrap import initialize
    from gateway.server import run

    settings = _settings(host=host, port=port)
    secret = _guarded(lambda: initialize(settings))
    if secret:
        click.echo("Bootstrap admin token (shown once, keep it safe):")
        click.echo(f"  {secret}")
    click.echo(f"Serving on http://{settings.host}:{settings.port} (data in {settings.data_dir})")
    sys.stdout.flush()
    run(settings)


@main.command(help="Create the keyring, migrate the database, make the first admin.")
def init() -> None:
    from gateway.bootstrap import initialize

    secret = _guarded(lambda: initialize(_settings()))
    if secret:
        click.echo(f"Bootstrap admin token (shown once): {secret}")
    else:
        click.echo("Already initialized.")


@main.group(help="Database schema.")
def db() -> None:
    pass


@db.command("upgrade", help="Apply every pending migration.")
def db_upgrade() -> None:
    from gateway.bootstrap import upgrade_database

    settings = _settings()
    _guarded(lambda: upgrade_database(settings))
    click.echo("Database is up to date.")


def _with_session(fn: Callable[[Any, Any], Any]) -> Any:
    from gateway.runtime import build_runtime, require_schema

    settings = _settings()

    def go() -> Any:
        rt = build_runtime(settings)
        try:
            require_schema(rt)
            with rt.session() as session:
                result = fn(rt, session)
                session.commit()
                return result
        finally:
            rt.close()

    return _guarded(go)


@main.group(help="Accounts.")
def users() -> None:
    pass


@users.command("create", help="Create an account with one role.")
@click.argument("name")
@click.option("--role", required=True,
              type=click.Choice(["admin", "uploader", "annotator", "reviewer", "auditor"]))
def users_create(name: str, role: str) -> None:
    from gateway.accounts import create_user

    principal = _with_session(lambda rt, s: create_user(rt, s, name, role))
    click.echo(f"user {principal.id} created with role {role}")


@main.group(help="API tokens.")
def tokens() -> None:
    pass


@tokens.command("create", help="Issue a token for a user; the secret is printed once.")
@click.argument("name")
@click.option("--ttl-days", type=click.IntRange(min=1), help="Lifetime (default 90 days).")
def tokens_create(name: str, ttl_days: int | None) -> None:
    from gateway.accounts import create_token, find_user

    def go(rt: Any, session: Any) -> Any:
        return create_token(rt, session, find_user(session, name), ttl_days)

    token, secret = _with_session(go)
    click.echo(f"token {token.id} expires {token.expires_at:%Y-%m-%d}")
    click.echo(secret)


@tokens.command("revoke", help="Revoke a token by its id.")
@click.argument("token_id")
def tokens_revoke(token_id: str) -> None:
    from gateway.accounts import revoke_token

    _with_session(lambda rt, s: revoke_token(rt, s, token_id))
    click.echo(f"token {token_id} revoked")
