"""The compliance officer's path: export from the API, verify offline, spot tampering."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import audit_tail, auth

pytestmark = pytest.mark.integration


def _verify(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "audit.cli", "verify", *args],
                          capture_output=True, text=True, timeout=120)


def _export(client: Any, token: str, tmp: Path, name: str) -> Path:
    resp = client.get("/v1/audit/export", headers=auth(token))
    assert resp.status_code == 200, resp.get_data(as_text=True)
    path = tmp / name
    path.write_bytes(resp.data)
    return path


def test_export_verifies_offline_and_tampering_is_named(
    gateway_config: dict[str, Any], admin_token: str, make_token: Any, tmp_path: Path
) -> None:
    from gateway import create_app

    anchors = tmp_path / "anchors"
    app = create_app({**gateway_config, "audit_anchor_dir": str(anchors)})
    try:
        client, runtime = app.test_client(), app.extensions["gateway"]
        auditor = make_token("auditor")
        for i in range(5):
            client.post("/v1/datasets", json={"name": f"d{i}"}, headers=auth(admin_token))
        client.get("/v1/datasets", headers={})  # a denied request is in the log too
        vkey = client.get("/v1/audit/public-key").get_json()["vkey"]
        first = _export(client, auditor, tmp_path, "first.jsonl")

        ok = _verify(str(first), "--pubkey", vkey)
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert ok.stdout.startswith("OK size=")
        size = int(ok.stdout.split("size=")[1].split()[0])
        # the checkpoint was anchored outside the database, read-only
        anchored = sorted(anchors.iterdir())
        notes = [json.loads(line)["note"] for line in first.read_text().splitlines()
                 if '"type":"checkpoint"' in line]
        assert anchored and anchored[-1].read_text() == notes[-1]
        assert (anchored[-1].stat().st_mode & 0o222) == 0

        assert audit_tail(runtime)[0].event.action == "auditor:audit:exported"

        # a later export proves it extends what the auditor already holds
        client.post("/v1/datasets", json={"name": "later"}, headers=auth(admin_token))
        second = _export(client, auditor, tmp_path, "second.jsonl")
        extends = _verify(str(second), "--pubkey", vkey, "--checkpoint", str(first))
        assert extends.returncode == 0, extends.stdout + extends.stderr
        assert int(extends.stdout.split("size=")[1].split()[0]) > size

        # edit one entry: verification fails and names its position
        lines = second.read_text().splitlines()
        index = next(i for i, line in enumerate(lines) if '"position":3,' in line)
        record = json.loads(lines[index])
        record["entry"] = record["entry"].replace('"outcome":"ok"', '"outcome":"denied"')
        lines[index] = json.dumps(record, separators=(",", ":"))
        tampered = tmp_path / "tampered.jsonl"
        tampered.write_text("\n".join(lines) + "\n")
        bad = _verify(str(tampered), "--pubkey", vkey)
        assert bad.returncode == 1
        assert "position 3" in bad.stdout and "Traceback" not in bad.stdout + bad.stderr

        # signed by another key: refused
        other = _verify(str(second), "--pubkey", vkey.replace(vkey.split("+")[2], "A" * 44))
        assert other.returncode != 0

        csv = client.get("/v1/audit/export?format=csv", headers=auth(auditor))
        assert csv.status_code == 200 and csv.data.startswith(b"position,leaf_hash,entry")
    finally:
        app.extensions["gateway"].close()


def test_uploaders_cannot_export(client: Any, make_token: Any) -> None:
    uploader = make_token("uploader")
    assert client.get("/v1/audit/export", headers=auth(uploader)).status_code == 403
    assert client.get("/v1/audit/checkpoint", headers=auth(uploader)).status_code == 403


def test_checkpoints_anchor_to_an_object_lock_bucket(
    gateway_config: dict[str, Any], admin_token: str, moto_endpoint: str, monkeypatch
) -> None:
    from gateway import create_app
    from tests.integration.moto_server import s3_client

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    s3 = s3_client(moto_endpoint)
    s3.create_bucket(Bucket="audit-anchors", ObjectLockEnabledForBucket=True)
    app = create_app({**gateway_config, "audit_anchor_s3_bucket": "audit-anchors",
                      "s3_endpoint_url": moto_endpoint, "s3_region": "us-east-1"})
    try:
        client = app.test_client()
        note = client.get("/v1/audit/checkpoint", headers=auth(admin_token)).get_json()["note"]
        objects = s3.list_objects_v2(Bucket="audit-anchors")["Contents"]
        assert len(objects) == 1
        body = s3.get_object(Bucket="audit-anchors", Key=objects[0]["Key"])
        assert body["Body"].read().decode() == note
        assert body["ObjectLockMode"] == "COMPLIANCE"
    finally:
        app.extensions["gateway"].close()
