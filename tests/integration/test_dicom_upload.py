"""DICOM through the API: upload, de-identified copy, study relations, the pseudonym map."""

from __future__ import annotations

import csv
import io
from typing import Any

import pydicom
import pytest

from tests.helpers import auth, ct_instance, events_of, wait_for_status

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
