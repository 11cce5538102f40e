"""DICOM through the API: upload, de-identified copy, study relations, the pseudonym map."""

from __future__ import annotations

import csv
import io
from typing import Any

import pydicom
import pytest

from tests.helpers import auth, ct_instance, events_of, study_zip, wait_for_status

pytestmark = pytest.mark.integration


def _dataset(client: Any, token: str) -> str:
    return client.post("/v1/datasets", json={"name": "ct"}, headers=auth(token)).get_json()["id"]


def _upload(client: Any, token: str, dataset: str, data: bytes) -> dict[str, Any]:
    resp = client.post(f"/v1/datasets/{dataset}/items", headers=auth(token),
                       data={"file": (io.BytesIO(data), "x.dcm")},
                       content_type="multipart/form-data")
    assert resp.status_code == 202, resp.get_json()
    done = wait_for_status(client, token, resp.get_json()["id"])
    assert done["status"] == "ready", done
    return done


def _content(client: Any, token: str, item_id: str) -> pydicom.Dataset:
    resp = client.get(f"/v1/items/{item_id}/content", headers=auth(token))
    assert resp.status_code == 200
    assert resp.mimetype == "application/dicom"
    return pydicom.dcmread(io.BytesIO(resp.data))


def test_uploaded_study_is_deidentified_and_keeps_its_relations(client: Any,
                                                                admin_token: str) -> None:
    dataset = _dataset(client, admin_token)
    first_uid = "1.2.826.0.1.3680043.8.498.100.1"
    first = _upload(client, admin_token, dataset, ct_instance(sop_uid=first_uid))
    second = _upload(client, admin_token, dataset, ct_instance(
        sop_uid="1.2.826.0.1.3680043.8.498.100.2", referenced_uid=first_uid))
    a = _content(client, admin_token, first["id"])
    b = _content(client, admin_token, second["id"])
    raw = client.get(f"/v1/items/{second['id']}/content", headers=auth(admin_token)).data
    for word in (b"Harriet", b"Fictional", b"MRN-0042-7781", b"ACC77120934", b"SN-99812",
                 b"19610704", b"Saint", b"Imaginary", b"1.2.826.0.1.3680043"):
        assert word not in raw
    assert a.StudyInstanceUID == b.StudyInstanceUID != "1.2.826.0.1.3680043.8.498.100"
    assert b.ReferencedImageSequence[0].ReferencedSOPInstanceUID == a.SOPInstanceUID
    assert a.file_meta.MediaStorageSOPInstanceUID == a.SOPInstanceUID
    assert a.PatientID == b.PatientID == a.PatientName and a.PatientID.startswith("ANON-")
    assert a.PatientIdentityRemoved == "YES"
    assert not any(elem.tag.is_private for elem in b.iterall())
    report = client.get(f"/v1/items/{first['id']}/report", headers=auth(admin_token))
    assert report.get_json()["engine"] == "dicom/1"
    assert b"Harriet" not in report.data and b"MRN-0042" not in report.data


def test_pseudonym_map_is_for_custodians_only_and_audited(client: Any, admin_token: str,
                                                          make_token: Any,
                                                          runtime: Any) -> None:
    dataset = _dataset(client, admin_token)
    item = _upload(client, admin_token, dataset, ct_instance())
    resp = client.get(f"/v1/datasets/{dataset}/pseudonym-map", headers=auth(admin_token))
    assert resp.status_code == 200 and resp.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(resp.data.decode())))
    deidentified = _content(client, admin_token, item["id"])
    assert rows == [["id_old", "id_new"], ["MRN-0042-7781", str(deidentified.PatientID)]]
    assert "custodian:mapping:exported" in events_of(runtime, dataset)
    uploader = make_token("uploader")
    # the uploader owns no such dataset: refused without learning whether it exists
    denied = client.get(f"/v1/datasets/{dataset}/pseudonym-map", headers=auth(uploader))
    assert denied.status_code == 403
    assert denied.mimetype == "application/problem+json"


def test_pseudonyms_and_uids_survive_a_restart(gateway_config: dict[str, Any],
                                               admin_token: str, client: Any) -> None:
    from gateway import create_app

    dataset = _dataset(client, admin_token)
    before = _content(client, admin_token, _upload(client, admin_token, dataset,
                                                   ct_instance())["id"])
    second = create_app(gateway_config)
    try:
        other = second.test_client()
        after = _content(other, admin_token, _upload(other, admin_token, dataset,
                                                     ct_instance())["id"])
    finally:
        second.extensions["gateway"].close()
    assert (after.PatientID, after.SOPInstanceUID, after.StudyDate) == (
        before.PatientID, before.SOPInstanceUID, before.StudyDate)


def _post_study(client: Any, token: str, dataset: str, data: bytes) -> Any:
    return client.post(f"/v1/datasets/{dataset}/studies", headers=auth(token),
                       data={"file": (io.BytesIO(data), "study.zip")},
                       content_type="multipart/form-data")


def test_a_zipped_study_becomes_items_that_keep_their_relations(client: Any,
                                                                admin_token: str) -> None:
    dataset = _dataset(client, admin_token)
    resp = _post_study(client, admin_token, dataset,
                       study_zip({"README.txt": b"Fictional Harriet's scans",
                                  "DICOMDIR": b"\0" * 128 + b"DICM\x02\x00" + b"x" * 64
                                  + b"1.2.840.10008.1.3.10\0"}))
    assert resp.status_code == 202, resp.get_json()
    body = resp.get_json()
    assert body["skipped"] == 2 and len(body["items"]) == 2
    assert b"Harriet" not in resp.data
    done = [wait_for_status(client, admin_token, i["id"]) for i in body["items"]]
    assert [d["status"] for d in done] == ["ready", "ready"]
    first, second = (_content(client, admin_token, d["id"]) for d in done)
    by_ref = {"ReferencedImageSequence" in first: first, "ReferencedImageSequence" in second:
              second}
    referring, referred = by_ref[True], by_ref[False]
    assert referring.ReferencedImageSequence[0].ReferencedSOPInstanceUID == \
        referred.SOPInstanceUID
    assert first.StudyInstanceUID == second.StudyInstanceUID


@pytest.mark.parametrize(("payload", "status", "reason"), [
    (b"not a zip at all", 415, "unsupported_type"),
    (b"PK\x03\x04 truncated", 422, "archive_unreadable"),
    ("no_dicom", 422, "archive_without_dicom"),
])
def test_a_bad_study_archive_is_refused_and_nothing_is_stored(
        client: Any, admin_token: str, gateway_config: dict[str, Any], payload: Any,
        status: int, reason: str) -> None:
    import zipfile
    from pathlib import Path

    from tests.helpers import stored_blobs

    if payload == "no_dicom":
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("notes.txt", "nothing here")
        payload = buf.getvalue()
    dataset = _dataset(client, admin_token)
    before = len(stored_blobs(Path(gateway_config["data_dir"])))
    resp = _post_study(client, admin_token, dataset, payload)
    assert resp.status_code == status
    assert resp.get_json()["reason"] == reason
    assert len(stored_blobs(Path(gateway_config["data_dir"]))) == before
    items = client.get(f"/v1/datasets/{dataset}/items", headers=auth(admin_token)).get_json()
    assert items["items"] == []


def test_a_zip_bomb_is_refused_before_expanding(client: Any, admin_token: str,
                                                gateway_config: dict[str, Any]) -> None:
    import zipfile

    limit = 4 * 1024 * 1024
    from gateway import create_app

    app = create_app({**gateway_config, "max_upload_bytes": limit})
    try:
        small = app.test_client()
        dataset = _dataset(small, admin_token)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("a.dcm", b"\0" * (limit + 1))  # compresses to a few KiB
        resp = _post_study(small, admin_token, dataset, buf.getvalue())
        assert resp.status_code == 413
        assert resp.get_json()["reason"] == "archive_member_too_large"
    finally:
        app.extensions["gateway"].close()
