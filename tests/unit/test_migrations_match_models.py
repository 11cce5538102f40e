"""The Alembic migrations build exactly the tables, columns and indexes the models declare."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from gateway.db import migrate
from gateway.db.models import Base

pytestmark = pytest.mark.unit


def test_migrations_and_models_agree(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'm.db'}")
    migrate.upgrade(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    # the audit log's tables belong to audit/ (its own metadata), not to the gateway's
    assert [d for d in diff if "audit_" not in str(d)] == []
