"""Alembic, driven programmatically (no alembic.ini to keep in step)."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, text


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", "gateway:migrations")
    return cfg


def upgrade(engine: Engine, revision: str = "head", *, schema: str | None = None) -> None:
    cfg = _config()
    if schema and engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def revision(engine: Engine, message: str) -> None:  # developer tool: new migration
    cfg = _config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.revision(cfg, message=message, autogenerate=True, rev_id=None)
