"""The `gateway` command: plain messages and exit codes, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from gateway.cli import main

pytestmark = pytest.mark.integration


def _env(config: dict[str, Any]) -> dict[str, str]:
    return {f"GATEWAY_{k.upper()}": str(v) for k, v in config.items()}


def test_users_and_tokens_lifecycle(gateway_config: dict[str, Any], admin_token: str,
                                    monkeypatch) -> None:
    for key, value in _env(gateway_config).items():
        monkeypatch.setenv(key, value)
    runner = CliRunner()
    made = runner.invoke(main, ["users", "create", "alice", "--role", "uploader"])
    assert made.exit_code == 0, made.output
    dup = runner.invoke(main, ["users", "create", "alice", "--role", "uploader"])
    assert dup.exit_code == 1 and "error: a user with that name exists" in dup.output
    tok = runner.invoke(main, ["tokens", "create", "alice", "--ttl-days", "1"])
    assert tok.exit_code == 0
    token_id = tok.stdout.split()[1]
    secret = tok.stdout.strip().splitlines()[-1]
    assert secret.startswith("gw_") and len(secret) >= 3 + 43  # 256 bits in base64url

    from gateway import create_app

    app = create_app(gateway_config)
    try:
        client = app.test_client()
        hdr = {"Authorization": f"Bearer {secret}"}
        assert client.get("/v1/datasets", headers=hdr).status_code == 200
        revoked = runner.invoke(main, ["tokens", "revoke", token_id])
        assert revoked.exit_code == 0
        assert client.get("/v1/datasets", headers=hdr).status_code == 401
        again = runner.invoke(main, ["tokens", "revoke", token_id])
        assert again.exit_code == 1 and "already revoked" in again.output
        assert runner.invoke(main, ["tokens", "create", "nobody"]).exit_code == 1
    finally:
        app.extensions["gateway"].close()


def test_stored_token_is_only_a_hash(gateway_config: dict[str, Any], admin_token: str) -> None:
    from sqlalchemy import select

    from gateway.config import load_settings
    from gateway.db.models import ApiToken
    from gateway.runtime import build_runtime

    rt = build_runtime(load_settings(gateway_config))
    try:
        with rt.session() as s:
            stored = s.scalars(select(ApiToken.secret_sha256)).all()
    finally:
        rt.close()
    assert admin_token not in stored and admin_token[3:] not in "".join(stored)
    import hashlib

    assert hashlib.sha256(admin_token.encode()).hexdigest() in stored


def test_usage_and_config_errors_exit_2_without_traceback(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env["GATEWAY_DATA_DIR"] = str(tmp_path / "var")
    bad_role = subprocess.run([sys.executable, "-m", "gateway", "users", "create", "x",
                               "--role", "king"], env=env, capture_output=True, text=True)
    assert bad_role.returncode == 2 and "Traceback" not in bad_role.stderr
    env["GATEWAY_LOG_LEVEL"] = "loud"
    bad_env = subprocess.run([sys.executable, "-m", "gateway", "init"], env=env,
                             capture_output=True, text=True)
    assert bad_env.returncode == 2
    assert bad_env.stderr.strip() == ("error: GATEWAY_LOG_LEVEL: 'loud' is not one of debug, "
                                      "info, warning, error")


def test_commands_refuse_an_uninitialized_database(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env["GATEWAY_DATA_DIR"] = str(tmp_path / "var")
    run = subprocess.run([sys.executable, "-m", "gateway", "users", "create", "x", "--role",
                          "admin"], env=env, capture_output=True, text=True)
    assert run.returncode == 1
    assert "gateway db upgrade" in run.stderr and "Traceback" not in run.stderr


def test_policy_naming_an_unknown_detector_refuses_to_start(tmp_path: Path) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text(
        "id: p\nversion: 1\nimage:\n  detectors:\n    - {name: facefinder9000, threshold: 0.5}\n"
        "  mask: {style: solid, padding: 0.1}\n  leak_gate: {enabled: true, threshold: 0.6}\n"
        "  max_pixels: 1000000\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update({"GATEWAY_DATA_DIR": str(tmp_path / "var"), "GATEWAY_POLICY": str(policy)})
    run = subprocess.run([sys.executable, "-m", "gateway", "init"], env=env,
                         capture_output=True, text=True)
    assert run.returncode == 2, run.stderr
    assert "GATEWAY_POLICY" in run.stderr and "facefinder9000" in run.stderr
    assert "Traceback" not in run.stderr
