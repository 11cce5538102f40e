"""Upload -> pipeline -> anonymized download, through the Flask app on the real database."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
from PIL import Image

from gateway.errors import AnonymizationFailed
from tests.helpers import (
    audit_tail,
    auth,
    events_of,
    face_photo_jpeg,
    shares_run,
    stored_blobs,
    wait_for_status,
)

pytestmark = pytest.mark.integration


def _dataset(client: Any, token: str, name: str = "street") -> str:
    resp = client.post("/v1/datasets", json={"name": name}, headers=auth(token))
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()["id"]


def _upload(client: Any, token: str, dataset: str, data: bytes, name: str = "IMG_1.jpg") -> Any:
    return client.post(f"/v1/datasets/{dataset}/items", headers=auth(token),
                       data={"file": (io.BytesIO(data), name)},
                       content_type="multipart/form-data")


def test_photo_goes_from_upload_to_anonymized_copy(client: Any, admin_token: str,
                                                   runtime: Any) -> None:
    original = face_photo_jpeg()
    dataset = _dataset(client, admin_token)
    resp = _upload(client, admin_token, dataset, original, name="Jane_Roe_at_home.jpg")
    assert resp.status_code == 202
    item = resp.get_json()
    assert item["status"] in ("received", "processing", "ready")
    assert item["media_type"] == "image/jpeg"
    assert resp.headers["Location"] == f"/v1/items/{item['id']}"

    done = wait_for_status(client, admin_token, item["id"])
    assert done["status"] == "ready", done

    got = client.get(f"/v1/items/{item['id']}/content", headers=auth(admin_token))
    assert got.status_code == 200
    assert got.mimetype == "image/jpeg"
    assert "Jane_Roe" not in got.headers["Content-Disposition"]
    out = Image.open(io.BytesIO(got.data))
    assert out.format == "JPEG"
    assert not out.getexif() and "comment" not in out.info and "exif" not in out.info
    # the astronaut's face (around x 170-230, y 80-160) is masked: pixels changed a lot
    before = np.asarray(Image.open(io.BytesIO(original)).convert("RGB"), dtype=np.int16)
    after = np.asarray(out.convert("RGB"), dtype=np.int16)
    face = (slice(90, 150), slice(175, 225))
    assert np.abs(before[face] - after[face]).mean() > 40

    report = client.get(f"/v1/items/{item['id']}/report", headers=auth(admin_token)).get_json()
    assert any(r["label"] == "face" for r in report["regions"])
    assert "exif" in " ".join(report["metadata_removed"])

    actions = [a for a in events_of(runtime, item["id"]) if a != "uploader:item:viewed"]
    assert actions == ["uploader:item:uploaded", "system:item:processing",
                       "system:item:anonymized", "uploader:media:downloaded",
                       "uploader:report:viewed"]


def test_audit_events_of_an_item_are_listed_for_auditors(client: Any, admin_token: str,
                                                         make_token: Any) -> None:
    dataset = _dataset(client, admin_token)
    item = _upload(client, admin_token, dataset, face_photo_jpeg()).get_json()
    wait_for_status(client, admin_token, item["id"])
    auditor = make_token("auditor")
    page = client.get(f"/v1/audit/events?object={item['id']}", headers=auth(auditor))
    assert page.status_code == 200
    # positions follow commit order: the polls' "viewed" events interleave freely
    actions = [e["action"] for e in page.get_json()["items"]
               if e["action"] != "uploader:item:viewed"]
    assert actions == ["uploader:item:uploaded", "system:item:processing",
                       "system:item:anonymized"]
    assert all(len(e["leaf_hash"]) == 64 for e in page.get_json()["items"])
    # reading the log was itself recorded
    again = client.get("/v1/audit/events?action=auditor:audit:viewed", headers=auth(auditor))
    assert [e["action"] for e in again.get_json()["items"]] == ["auditor:audit:viewed"]


@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        # a step of the policy failed and said why
        (lambda: AnonymizationFailed("detector_error"),
         "detector_error"),
        # something nobody foresaw (its text may hold PHI and must not surface)
        (lambda: RuntimeError("boom with PHI: Jane Roe"), "internal_error"),
    ],
    ids=["step failed", "unexpected error"],
)
def test_failed_pipeline_quarantines_and_serves_nothing(
    client: Any, admin_token: str, monkeypatch, failure: Any, reason: str
) -> None:
    from gateway import pipeline

    def broken(*_a: Any, **_k: Any) -> Any:
        raise failure()

    monkeypatch.setattr(pipeline, "anonymize_image", broken)
    dataset = _dataset(client, admin_token)
    item = _upload(client, admin_token, dataset, face_photo_jpeg()).get_json()
    done = wait_for_status(client, admin_token, item["id"])
    assert (done["status"], done["quarantine_reason"]) == ("quarantined", reason)
    assert "content" not in done["links"]
    resp = client.get(f"/v1/items/{item['id']}/content", headers=auth(admin_token))
    assert resp.status_code == 409
    assert resp.get_json()["code"] == "quarantined"
    assert "Jane" not in resp.get_data(as_text=True)


def test_original_needs_originals_read(client: Any, admin_token: str, make_token: Any,
                                       gateway_config: dict) -> None:
    uploader = make_token("uploader")
    dataset = _dataset(client, uploader)
    original = face_photo_jpeg()
    item = _upload(client, uploader, dataset, original).get_json()
    wait_for_status(client, uploader, item["id"])
    denied = client.get(f"/v1/items/{item['id']}/original", headers=auth(uploader))
    assert denied.status_code == 403
    assert denied.mimetype == "application/problem+json"
    allowed = client.get(f"/v1/items/{item['id']}/original", headers=auth(admin_token))
    assert allowed.status_code == 200 and allowed.data == original


def test_uploaders_see_only_their_datasets(client: Any, make_token: Any, runtime: Any) -> None:
    alice, bob = make_token("uploader"), make_token("uploader")
    dataset = _dataset(client, alice)
    item = _upload(client, alice, dataset, face_photo_jpeg()).get_json()
    assert client.get(f"/v1/datasets/{dataset}", headers=auth(bob)).status_code == 404
    assert client.get(f"/v1/items/{item['id']}", headers=auth(bob)).status_code == 404
    last = audit_tail(runtime)[0].event
    assert (last.action, last.outcome, last.reason) == ("uploader:item:viewed", "denied",
                                                        "not_visible")
    listed = client.get("/v1/datasets", headers=auth(bob)).get_json()["items"]
    assert dataset not in [d["id"] for d in listed]


def test_sealed_blobs_hold_no_plaintext(client: Any, admin_token: str,
                                        gateway_config: dict) -> None:
    from pathlib import Path

    original = face_photo_jpeg()
    dataset = _dataset(client, admin_token)
    item = _upload(client, admin_token, dataset, original).get_json()
    wait_for_status(client, admin_token, item["id"])
    blobs = stored_blobs(Path(gateway_config["data_dir"]))
    assert len(blobs) == 3  # original, derivative, report
    for path in blobs:
        sealed = path.read_bytes()
        assert not sealed.startswith(original[:3])
        assert b"Exif" not in sealed and b"JFIF" not in sealed
        assert not shares_run(sealed, original, 64)


def test_dicom_that_cannot_be_parsed_is_quarantined_with_its_reason(client: Any,
                                                                   admin_token: str) -> None:
    from tests.helpers import dicom_like

    dataset = _dataset(client, admin_token)
    resp = _upload(client, admin_token, dataset, dicom_like(), name="ct.dcm")
    assert resp.status_code == 202
    assert resp.get_json()["media_type"] == "application/dicom"
    done = wait_for_status(client, admin_token, resp.get_json()["id"])
    assert (done["status"], done["quarantine_reason"]) == ("quarantined",
                                                           "dicom_no_sop_instance")
