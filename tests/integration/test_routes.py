"""Every route declares its permission and audit event; the OpenAPI document covers all."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.api.endpoint import PUBLIC
from gateway.api.openapi import specs
from gateway.auth.roles import PERMISSIONS

pytestmark = pytest.mark.integration

# Routes anyone may call: they reveal no data. Adding one here is a security decision.
PUBLIC_ROUTES = {"/healthz", "/readyz", "/openapi.json", "/docs", "/docs.js",
                 "/v1/audit/public-key"}


def test_every_route_declares_a_permission(app: Any) -> None:
    for rule, spec in specs(app):
        assert spec is not None, f"{rule} was not declared with gateway.api.endpoint"
        if spec.permission == PUBLIC:
            assert rule in PUBLIC_ROUTES, f"{rule} is public but not in the public list"
        else:
            assert spec.permission in PERMISSIONS
            assert spec.event, f"{rule} declares no audit event"


def test_openapi_document_is_valid_and_complete(client: Any, app: Any) -> None:
    from openapi_spec_validator import validate

    doc = client.get("/openapi.json").get_json()
    validate(doc)
    assert doc["openapi"].startswith("3.1")
    operations = {(m.upper(), p) for p, ms in doc["paths"].items() for m in ms}
    for rule, spec in specs(app):
        path = rule.replace("<", "{").replace(">", "}")
        assert (spec.method, path) in operations
    upload = doc["paths"]["/v1/datasets/{dataset_id}/items"]["post"]
    assert "multipart/form-data" in upload["requestBody"]["content"]
    assert upload["x-permission"] == "items:create"
    create = doc["paths"]["/v1/datasets"]["post"]
    from gateway.api.schemas import DATASET_CREATE

    assert create["requestBody"]["content"]["application/json"]["schema"] == DATASET_CREATE


def test_health_and_readiness(client: Any, runtime: Any, monkeypatch) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.get_json()["checks"] == {"database": "ok", "storage": "ok", "keys": "ok"}

    def broken() -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(runtime.store, "check", broken)
    not_ready = client.get("/readyz")
    assert not_ready.status_code == 503
    assert not_ready.get_json()["checks"]["storage"] == "unavailable"
