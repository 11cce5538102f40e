"""Nothing from an upload's content or name reaches the logs or the audit log."""

from __future__ import annotations

import io
from typing import Any

import pytest
from structlog.testing import capture_logs

from tests.helpers import auth, events_of, face_photo_jpeg, wait_for_status

pytestmark = pytest.mark.integration


def test_upload_and_quarantine_leave_no_phi(client: Any, admin_token: str, runtime: Any,
                                            monkeypatch) -> None:
    from gateway import pipeline

    real = pipeline.anonymize_image
    calls = {"n": 0}

    def fail_second(data: bytes, policy: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:
            raise ValueError("decoder said: Jane Roe, DOB 1970-01-01, GPS 51.5N")
        return real(data, policy)

    monkeypatch.setattr(pipeline, "anonymize_image", fail_second)
    with capture_logs() as logs:
        ds = client.post("/v1/datasets", json={"name": "d"}, headers=auth(admin_token))
        dataset = ds.get_json()["id"]
        ids = []
        for _ in range(2):
            resp = client.post(f"/v1/datasets/{dataset}/items", headers=auth(admin_token),
                               data={"file": (io.BytesIO(face_photo_jpeg()), "Jane_Roe.jpg")},
                               content_type="multipart/form-data")
            ids.append(resp.get_json()["id"])
        statuses = [wait_for_status(client, admin_token, i)["status"] for i in ids]
    assert statuses == ["ready", "quarantined"]
    text = repr(logs)
    for secret in ("Jane", "Roe", "1970", "51.5", "CameraMaker", "SecretModel"):
        assert secret not in text
    assert any(entry.get("event") == "pipeline.unexpected_error" for entry in logs)
    with runtime.engine.connect() as conn:
        from sqlalchemy import text as sql

        entries = conn.execute(sql("SELECT entry FROM audit_events")).scalars().all()
    for secret in ("Jane", "Roe", "CameraMaker"):
        assert not any(secret in e for e in entries)
    assert "system:item:quarantined" in events_of(runtime, ids[1])
