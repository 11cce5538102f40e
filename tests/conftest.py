"""Shared fixtures.

The database is SQLite in a temporary directory unless TEST_DATABASE_URL names a
PostgreSQL database; then each app gets a schema of its own, dropped afterwards,
so tests (and CI runs) never see each other's rows.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import database_overrides, drop_schema


@pytest.fixture(autouse=True)
def _no_gateway_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests configure the gateway explicitly; stray GATEWAY_* variables must not leak in."""
    for key in list(os.environ):
        if key.startswith("GATEWAY_"):
            monkeypatch.delenv(key)


@pytest.fixture
def gateway_config(tmp_path: Path) -> Iterator[dict[str, Any]]:
    overrides: dict[str, Any] = {
        "data_dir": str(tmp_path / "var"),
        "log_format": "json",
        "job_runner": "thread",  # in-process, so tests can replace pipeline steps
        "job_workers": 1,
        **database_overrides(),
    }
    yield overrides
    drop_schema(overrides)


@pytest.fixture
def admin_token(gateway_config: dict[str, Any]) -> str:
    from gateway.bootstrap import initialize
    from gateway.config import load_settings

    secret = initialize(load_settings(gateway_config))
    assert secret is not None
    return secret


@pytest.fixture
def app(gateway_config: dict[str, Any], admin_token: str) -> Iterator[Any]:
    from gateway import create_app

    application = create_app(gateway_config)
    yield application
    application.extensions["gateway"].close()


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()


@pytest.fixture
def runtime(app: Any) -> Any:
    return app.extensions["gateway"]


@pytest.fixture
def make_token(runtime: Any) -> Callable[..., str]:
    """Create a user with ``role`` and return a fresh token for it."""
    from gateway.accounts import create_token, create_user

    def make(role: str, name: str | None = None, ttl_days: int | None = None) -> str:
        with runtime.session() as session:
            user = create_user(runtime, session, name or f"{role}-{uuid.uuid4().hex[:8]}", role)
            _, secret = create_token(runtime, session, user, ttl_days)
            session.commit()
        return secret

    return make
