"""Bad input: a clear 4xx problem, nothing stored, the rejection audited. Never a 500."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from gateway.db.models import ApiToken, Item, SealedBlob
from tests.helpers import (
    audit_tail,
    auth,
    face_photo_jpeg,
    png_header_only,
    raw_multipart,
    stored_blobs,
)

pytestmark = pytest.mark.integration

PROBLEM_FIELDS = {"type", "title", "status", "detail", "code", "request_id", "instance"}


@pytest.fixture
def small_limit_config(gateway_config: dict[str, Any]) -> dict[str, Any]:
    gateway_config["max_upload_bytes"] = 200_000
    return gateway_config


def _multipart(data: bytes, name: str = "photo.jpg") -> dict[str, Any]:
    return {"data": {"file": (io.BytesIO(data), name)}, "content_type": "multipart/form-data"}


# (case id, request kwargs builder, expected status, expected code, expected reason)
UPLOAD_CASES: list[tuple[str, Callable[[], dict[str, Any]], int, str, str]] = [
    # zero bytes in the file part
    ("empty", lambda: _multipart(b""), 422, "invalid_upload", "empty"),
    # text pretending to be a JPEG by its name
    ("not an image", lambda: _multipart(b"name,dob\nJane Roe,1970-01-01\n" * 20), 415,
     "unsupported_media_type", "unsupported_type"),
    # a real JPEG cut in half
    ("truncated jpeg", lambda: _multipart(face_photo_jpeg()[:40_000]), 422, "invalid_upload",
     "corrupt"),
    # a PNG whose header claims 50,000 x 50,000 pixels
    ("png bomb", lambda: _multipart(png_header_only(50_000, 50_000), "x.png"), 422,
     "invalid_upload", "too_many_pixels"),
    # more bytes than GATEWAY_MAX_UPLOAD_BYTES (200 kB in this test)
    ("over the limit", lambda: _multipart(face_photo_jpeg() + b"\0" * 300_000), 413,
     "upload_too_large", "too_large"),
    # a Content-Length far above the limit: refused before the body is read
    ("declared too large", lambda: raw_multipart(b"\xff\xd8\xff" + b"\0" * 1_400_000), 413,
     "upload_too_large", "too_large"),
    # a JSON body instead of multipart
    ("not multipart", lambda: {"json": {"file": "x"}}, 400, "invalid_request", "not_multipart"),
    # multipart without the 'file' part
    ("no file part", lambda: {"data": {"other": "x"}, "content_type": "multipart/form-data"},
     400, "invalid_request", "no_file"),
]


def _counts(runtime: Any) -> tuple[int, int]:
    with runtime.session() as s:
        return (s.scalar(select(func.count()).select_from(Item)),
                s.scalar(select(func.count()).select_from(SealedBlob)))


def _assert_problem(resp: Any, status: int, code: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.mimetype == "application/problem+json"
    body = resp.get_json()
    assert body.keys() >= PROBLEM_FIELDS
    assert body["status"] == status and body["code"] == code
    assert "Traceback" not in resp.get_data(as_text=True)
    return body


@pytest.mark.parametrize(("case", "build", "status", "code", "reason"), UPLOAD_CASES,
                         ids=[c[0] for c in UPLOAD_CASES])
def test_bad_uploads_are_refused_and_audited(
    small_limit_config: dict[str, Any], admin_token: str, case: str, build: Callable,
    status: int, code: str, reason: str,
) -> None:
    from gateway import create_app

    app = create_app(small_limit_config)
    try:
        client, runtime = app.test_client(), app.extensions["gateway"]
        dataset = client.post("/v1/datasets", json={"name": "d"},
                              headers=auth(admin_token)).get_json()["id"]
        resp = client.post(f"/v1/datasets/{dataset}/items", headers=auth(admin_token), **build())
        body = _assert_problem(resp, status, code)
        assert "Jane" not in body["detail"] and "photo.jpg" not in body["detail"]
        assert _counts(runtime) == (0, 0)
        assert stored_blobs(Path(small_limit_config["data_dir"])) == []
        event = audit_tail(runtime)[0].event
        assert (event.action, event.outcome, event.reason) == (
            "uploader:item:uploaded", "error", reason)
        assert event.dataset_id == dataset
    finally:
        app.extensions["gateway"].close()


def test_unknown_dataset(client: Any, admin_token: str, runtime: Any) -> None:
    resp = client.post("/v1/datasets/" + "0" * 32 + "/items", headers=auth(admin_token),
                       **_multipart(face_photo_jpeg()))
    _assert_problem(resp, 404, "not_found")
    assert _counts(runtime) == (0, 0)
    event = audit_tail(runtime)[0].event
    assert (event.action, event.outcome, event.reason) == ("uploader:item:uploaded", "error",
                                                           "not_found")


def test_garbage_ids_do_not_reach_the_audit_log(client: Any, admin_token: str,
                                                runtime: Any) -> None:
    resp = client.get("/v1/datasets/Jane%20Roe", headers=auth(admin_token))
    _assert_problem(resp, 404, "not_found")
    assert b"Jane" not in audit_tail(runtime)[0].event.canonical()


def _expire(runtime: Any, token_id: str | None = None) -> None:
    from gateway.db.models import utcnow

    with runtime.session() as s:
        for tok in s.scalars(select(ApiToken)).all():
            if token_id is None or tok.id == token_id:
                tok.expires_at = utcnow() - timedelta(seconds=1)
        s.commit()


@pytest.mark.parametrize("kind", ["missing", "malformed", "unknown", "expired", "revoked"])
def test_bad_tokens_are_refused_and_audited(client: Any, admin_token: str, runtime: Any,
                                            make_token: Any, kind: str) -> None:
    from gateway.accounts import revoke_token

    dataset = client.post("/v1/datasets", json={"name": "d"},
                          headers=auth(admin_token)).get_json()["id"]
    token = make_token("uploader")
    with runtime.session() as s:
        token_id = s.scalars(select(ApiToken.id).order_by(ApiToken.created_at.desc())).first()
    headers = {
        "missing": {},
        "malformed": {"Authorization": "Basic dXNlcjpwYXNz"},
        "unknown": auth("gw_" + "A" * 43),
        "expired": auth(token),
        "revoked": auth(token),
    }[kind]
    if kind == "expired":
        _expire(runtime, token_id)
    if kind == "revoked":
        with runtime.session() as s:
            revoke_token(runtime, s, token_id)
            s.commit()
    resp = client.post(f"/v1/datasets/{dataset}/items", headers=headers,
                       **_multipart(face_photo_jpeg()))
    body = _assert_problem(resp, 401, "authentication_required")
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    expected_reason = {"missing": "token_missing", "malformed": "token_missing",
                       "unknown": "token_invalid", "expired": "token_expired",
                       "revoked": "token_revoked"}[kind]
    assert body["reason"] == expected_reason
    assert _counts(runtime) == (0, 0)
    event = audit_tail(runtime)[0].event
    assert (event.action, event.outcome, event.reason) == ("uploader:item:uploaded", "denied",
                                                           expected_reason)


def test_role_without_permission_is_denied_and_audited(client: Any, make_token: Any,
                                                       runtime: Any) -> None:
    annotator = make_token("annotator")
    resp = client.post("/v1/datasets", json={"name": "x"}, headers=auth(annotator))
    _assert_problem(resp, 403, "access_denied")
    event = audit_tail(runtime)[0].event
    assert (event.action, event.outcome, event.actor_role) == ("uploader:dataset:created",
                                                               "denied", "annotator")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "body.name: required"),
        ({"name": ""}, "body.name: fails 'minLength'"),
        ({"name": "x", "owner": "y"}, "body: unknown field"),
        ({"name": 7}, "body.name: fails 'type'"),
    ],
)
def test_schema_errors_name_the_field(client: Any, admin_token: str, body: dict,
                                      message: str) -> None:
    resp = client.post("/v1/datasets", json=body, headers=auth(admin_token))
    assert message in _assert_problem(resp, 400, "invalid_request")["detail"]


def test_unknown_route_and_method_are_problems(client: Any) -> None:
    _assert_problem(client.get("/v1/nothing-here"), 404, "not_found")
    _assert_problem(client.delete("/healthz"), 405, "method_not_allowed")


def test_unexpected_error_is_a_500_with_an_error_id_only(client: Any, admin_token: str,
                                                         monkeypatch) -> None:
    from gateway.api import datasets

    def explode(_ds: Any) -> Any:
        raise RuntimeError("secret detail: Jane Roe 1970-01-01")

    monkeypatch.setattr(datasets, "dataset_json", explode)
    resp = client.post("/v1/datasets", json={"name": "x"}, headers=auth(admin_token))
    body = _assert_problem(resp, 500, "internal_error")
    assert len(body["error_id"]) == 32
    assert "Jane" not in resp.get_data(as_text=True)
    assert "RuntimeError" not in resp.get_data(as_text=True)
