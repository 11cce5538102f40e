"""First start: keyring, database schema, bootstrap admin. Safe to run on every start."""

from __future__ import annotations

from gateway.accounts import bootstrap_admin
from gateway.config import Settings
from gateway.db import migrate
from gateway.runtime import build_runtime


def upgrade_database(settings: Settings) -> None:
    runtime = build_runtime(settings)
    try:
        migrate.upgrade(runtime.engine, schema=settings.database_schema or None)
    finally:
        runtime.close()


def initialize(settings: Settings) -> str | None:
    """Create what is missing; return the bootstrap admin token if one was just made."""
    upgrade_database(settings)  # also creates data_dir and the keyring (mode 0600)
    runtime = build_runtime(settings)
    try:
        with runtime.session() as session:
            secret = bootstrap_admin(runtime, session)
            session.commit()
        return secret
    finally:
        runtime.close()
