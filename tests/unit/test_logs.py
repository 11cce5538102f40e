"""Logs are JSON and tracebacks carry no frame locals (they would hold content and keys)."""

from __future__ import annotations

import json
import logging

import pytest
import structlog

from gateway.logs import configure_logging

pytestmark = pytest.mark.unit


def test_json_tracebacks_have_no_locals(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("json", "info")
    log = structlog.get_logger("test")

    def fail(patient_name: str) -> None:
        header = {"PatientName": patient_name}  # noqa: F841 - a local that must not leak
        raise ValueError("boom")

    try:
        fail("Roe^Jane")
    except ValueError:
        log.exception("step.failed", item_id="a" * 32)
    logging.getLogger("werkzeug").warning("stdlib loggers go through the same renderer")
    lines = [json.loads(line) for line in capsys.readouterr().err.strip().splitlines()]
    structlog.reset_defaults()
    assert lines[0]["event"] == "step.failed"
    assert lines[0]["exception"][0]["exc_type"] == "ValueError"
    assert "Roe^Jane" not in json.dumps(lines)
    assert lines[1]["logger"] == "werkzeug"
