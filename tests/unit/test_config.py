"""Settings from GATEWAY_* variables: a wrong value names the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import load_settings
from gateway.errors import ConfigError

pytestmark = pytest.mark.unit


def test_defaults_are_the_embedded_setup() -> None:
    s = load_settings(environ={})
    assert (s.host, s.port, s.data_dir) == ("127.0.0.1", 8080, Path("var"))
    assert s.resolved_database_url.startswith("sqlite:///")
    assert s.resolved_database_url.endswith("var/gateway.db")


def test_environment_is_read_and_typed() -> None:
    s = load_settings(environ={"GATEWAY_PORT": "9001", "GATEWAY_DATA_DIR": "/tmp/x",
                               "GATEWAY_HOST": "0.0.0.0"})
    assert (s.port, s.data_dir, s.host) == (9001, Path("/tmp/x"), "0.0.0.0")


def test_postgresql_url_gets_the_psycopg_driver() -> None:
    s = load_settings(environ={"GATEWAY_DATABASE_URL": "postgresql://u@h/db"})
    assert s.resolved_database_url == "postgresql+psycopg://u@h/db"


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("GATEWAY_PORT", "eighty", "GATEWAY_PORT: 'eighty' is not an integer"),
        ("GATEWAY_PORT", "70000", "GATEWAY_PORT: 70000 is not a TCP port"),
        ("GATEWAY_MAX_UPLOAD_BYTES", "-1", "GATEWAY_MAX_UPLOAD_BYTES: must be a positive"),
        ("GATEWAY_LOG_FORMAT", "xml", "GATEWAY_LOG_FORMAT: 'xml' is not one of"),
        ("GATEWAY_DATABASE_URL", "mysql://x", "GATEWAY_DATABASE_URL: must be a sqlite"),
        ("GATEWAY_DATABASE_SCHEMA", "Robert'); DROP", "GATEWAY_DATABASE_SCHEMA: must be"),
        ("GATEWAY_PROT", "8080", "GATEWAY_PROT: unknown setting"),  # a typo is not ignored
        ("GATEWAY_HOST", "  ", "GATEWAY_HOST: must not be empty"),
    ],
)
def test_bad_values_name_the_variable(variable: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(environ={variable: value})
    assert message in str(err.value)


def test_overrides_win_over_environment() -> None:
    s = load_settings({"port": 1234}, environ={"GATEWAY_PORT": "9001"})
    assert s.port == 1234
