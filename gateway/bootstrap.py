"""First start: keyring, database schema, bootstrap admin. Safe to run on every start."""

from __future__ import annotations

from gateway.accounts import bootstrap_admin
from gateway.config import Settings
from gateway.db import migrate
from gateway.runtime import build_runtime


def initialize(settings: Settings) -> str | None:
    """Create what is missing; return the bootstrap admin token if one was just made."""
    runtime = build_runtime(settings)  # creates data_dir and the keyring (mode 0600)
    try:
        migrate.upgrade(runtime.engine, schema=settings.database_schema or None)
        with runtime.session() as session:
            secret = bootstrap_admin(runtime, session)
            session.commit()
        return secret
    finally:
        runtime.close()
