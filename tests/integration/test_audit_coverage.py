"""Every API endpoint writes exactly its audit event, for allowed and denied callers alike.

The table below says how to call each route; a route missing from it fails the test, so
a new endpoint cannot ship without being walked here.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pytest

from audit.store import AuditQuery
from gateway.api.endpoint import PUBLIC
from gateway.api.openapi import specs
from gateway.auditing import sequence_now
from tests.helpers import auth, face_photo_jpeg, study_zip, wait_for_status

pytestmark = pytest.mark.integration

Ids = dict[str, str]

# (method, rule) -> (path with ids filled in, request kwargs)
CALLS: dict[tuple[str, str], Callable[[Ids], tuple[str, dict[str, Any]]]] = {
    ("POST", "/v1/datasets"): lambda ids: ("/v1/datasets", {"json": {"name": "walk"}}),
    ("GET", "/v1/datasets"): lambda ids: ("/v1/datasets", {}),
    ("GET", "/v1/datasets/<dataset_id>"): lambda ids: (f"/v1/datasets/{ids['dataset']}", {}),
    ("DELETE", "/v1/datasets/<dataset_id>"): lambda ids: (
        f"/v1/datasets/{ids['spare_dataset']}", {}),
    ("POST", "/v1/datasets/<dataset_id>/items"): lambda ids: (
        f"/v1/datasets/{ids['dataset']}/items",
        {"data": {"file": (io.BytesIO(face_photo_jpeg()), "a.jpg")},
         "content_type": "multipart/form-data"}),
    ("GET", "/v1/datasets/<dataset_id>/pseudonym-map"): lambda ids: (
        f"/v1/datasets/{ids['dataset']}/pseudonym-map", {}),
    ("POST", "/v1/datasets/<dataset_id>/studies"): lambda ids: (
        f"/v1/datasets/{ids['dataset']}/studies",
        {"data": {"file": (io.BytesIO(study_zip()), "study.zip")},
         "content_type": "multipart/form-data"}),
    ("GET", "/v1/datasets/<dataset_id>/items"): lambda ids: (
        f"/v1/datasets/{ids['dataset']}/items", {}),
    ("GET", "/v1/items/<item_id>"): lambda ids: (f"/v1/items/{ids['item']}", {}),
    ("GET", "/v1/items/<item_id>/content"): lambda ids: (f"/v1/items/{ids['item']}/content", {}),
    ("GET", "/v1/items/<item_id>/report"): lambda ids: (f"/v1/items/{ids['item']}/report", {}),
    ("GET", "/v1/items/<item_id>/original"): lambda ids: (
        f"/v1/items/{ids['item']}/original", {}),
    ("GET", "/v1/audit/events"): lambda ids: ("/v1/audit/events", {}),
    ("GET", "/v1/audit/checkpoint"): lambda ids: ("/v1/audit/checkpoint", {}),
    ("GET", "/v1/audit/export"): lambda ids: ("/v1/audit/export", {}),
}


def _events_of_request(runtime: Any, request_id: str, after: int) -> list[Any]:
    sequence_now(runtime.engine, runtime.audit)
    with runtime.engine.connect() as conn:
        records = runtime.audit.query(conn, AuditQuery(after=after, limit=10_000))
    return [r.event for r in records if r.event.request_id == request_id]


def _size(runtime: Any) -> int:
    sequence_now(runtime.engine, runtime.audit)
    with runtime.engine.connect() as conn:
        return int(runtime.audit.size(conn))


@pytest.fixture
def ids(client: Any, admin_token: str) -> Ids:
    dataset = client.post("/v1/datasets", json={"name": "d"},
                          headers=auth(admin_token)).get_json()["id"]
    spare = client.post("/v1/datasets", json={"name": "spare"},
                        headers=auth(admin_token)).get_json()["id"]
    item = client.post(f"/v1/datasets/{dataset}/items", headers=auth(admin_token),
                       data={"file": (io.BytesIO(face_photo_jpeg()), "a.jpg")},
                       content_type="multipart/form-data").get_json()["id"]
    assert wait_for_status(client, admin_token, item)["status"] == "ready"
    return {"dataset": dataset, "spare_dataset": spare, "item": item}


# Annotation routes are walked role by role, with ownership, in test_annotation_api.py
# (the permission matrix decides there who is allowed).
ANNOTATION = ("projects", "assignments")


def test_every_route_is_walked(app: Any) -> None:
    declared = {(spec.method, rule) for rule, spec in specs(app)
                if spec is not None and spec.permission != PUBLIC
                and spec.tag not in ANNOTATION}
    assert declared == set(CALLS), "add the new route to CALLS in this file"


@pytest.mark.parametrize("caller", ["allowed", "anonymous", "wrong_role"])
def test_each_request_writes_exactly_its_event(app: Any, client: Any, runtime: Any,
                                               admin_token: str, make_token: Any, ids: Ids,
                                               caller: str) -> None:
    annotator = make_token("annotator")  # holds none of these permissions
    headers = {"allowed": auth(admin_token), "anonymous": {},
               "wrong_role": auth(annotator)}[caller]
    expected_outcome = "ok" if caller == "allowed" else "denied"
    routes = sorted((spec.method, rule, spec) for rule, spec in specs(app)
                    if spec is not None and spec.permission != PUBLIC
                    and spec.tag not in ANNOTATION)
    # erasure last: it makes the spare dataset unusable
    routes.sort(key=lambda r: r[0] == "DELETE")
    for method, rule, spec in routes:
        path, kwargs = CALLS[(method, rule)](ids)
        before = _size(runtime)
        resp = client.open(path, method=method, headers=headers, **kwargs)
        if caller == "allowed":
            assert resp.status_code < 400, (method, rule, resp.get_data(as_text=True))
        else:
            assert resp.status_code in (401, 403), (method, rule, resp.status_code)
        events = _events_of_request(runtime, resp.headers["X-Request-ID"], before - 1)
        assert [(e.action, e.outcome) for e in events] == [(spec.event, expected_outcome)], (
            method, rule)
