"""Alembic environment: runs on the connection handed over by gateway.db.migrate."""

from __future__ import annotations

from alembic import context

from audit.store import audit_metadata
from gateway.db.models import Base

target_metadata = [Base.metadata, audit_metadata]

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - always called through gateway.db.migrate
    raise RuntimeError("run migrations with `gateway db upgrade`")

context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
