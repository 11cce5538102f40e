"""The whole gateway on S3 + KMS (moto's server over loopback HTTP), and its faults."""

from __future__ import annotations

import io
from typing import Any

import pytest
from sqlalchemy import func, select

from gateway.db.models import Item, SealedBlob
from tests.helpers import audit_tail, auth, dicom_like, face_photo_jpeg, wait_for_status
from tests.integration.moto_server import (
    TcpProxy,
    closed_port_url,
    create_bucket,
    create_key,
    s3_client,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """boto3's default credential chain, as a deployment would use it."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)


def _scale_config(base: dict[str, Any], s3_url: str, kms_url: str, bucket: str,
                  moto: str) -> dict[str, Any]:
    return {**base, "blob_store": "s3", "s3_bucket": bucket, "s3_prefix": "gw/",
            "s3_endpoint_url": s3_url, "s3_region": "us-east-1", "key_provider": "kms",
            "kms_key_id": create_key(moto), "kms_hmac_key_id": create_key(moto, hmac=True),
            "kms_endpoint_url": kms_url, "kms_region": "us-east-1"}


def _app(config: dict[str, Any]) -> Any:
    from gateway import create_app
    from gateway.bootstrap import initialize
    from gateway.config import load_settings

    token = initialize(load_settings(config))
    app = create_app(config)
    return app, token


def test_upload_to_anonymized_copy_on_s3_and_kms(gateway_config: dict[str, Any], aws_env: None,
                                                  moto_endpoint: str) -> None:
    bucket = create_bucket(moto_endpoint)
    config = _scale_config(gateway_config, moto_endpoint, moto_endpoint, bucket, moto_endpoint)
    app, token = _app(config)
    try:
        client = app.test_client()
        assert client.get("/readyz").get_json()["checks"] == {
            "database": "ok", "storage": "ok", "keys": "ok"}
        dataset = client.post("/v1/datasets", json={"name": "d"},
                              headers=auth(token)).get_json()["id"]
        original = face_photo_jpeg()
        item = client.post(f"/v1/datasets/{dataset}/items", headers=auth(token),
                           data={"file": (io.BytesIO(original), "a.jpg")},
                           content_type="multipart/form-data").get_json()["id"]
        assert wait_for_status(client, token, item)["status"] == "ready"
        assert client.get(f"/v1/items/{item}/content", headers=auth(token)).status_code == 200
        objects = s3_client(moto_endpoint).list_objects_v2(Bucket=bucket)["Contents"]
        assert len(objects) == 3
        for obj in objects:
            assert obj["Key"].startswith("gw/")
            body = s3_client(moto_endpoint).get_object(Bucket=bucket, Key=obj["Key"])[
                "Body"].read()
            assert original[:64] not in body and not body.startswith(original[:3])
    finally:
        app.extensions["gateway"].close()


class _CuttingStream:
    """A request body that makes S3 vanish once ``after`` bytes have been read."""

    def __init__(self, body: bytes, proxy: TcpProxy, after: int) -> None:
        self._body = io.BytesIO(body)
        self._proxy, self._after, self._read = proxy, after, 0

    def tell(self) -> int:
        return self._body.tell()

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._body.seek(offset, whence)

    def read(self, size: int = -1) -> bytes:
        data = self._body.read(size)
        self._read += len(data)
        if self._read >= self._after:
            self._proxy.cut()
        return data


def test_s3_vanishing_mid_upload_stores_nothing(gateway_config: dict[str, Any], aws_env: None,
                                                moto_endpoint: str) -> None:
    from tests.helpers import raw_multipart

    bucket = create_bucket(moto_endpoint)
    with TcpProxy(moto_endpoint) as proxy:
        config = _scale_config(gateway_config, proxy.url, moto_endpoint, bucket, moto_endpoint)
        app, token = _app(config)
        try:
            client, runtime = app.test_client(), app.extensions["gateway"]
            dataset = client.post("/v1/datasets", json={"name": "d"},
                                  headers=auth(token)).get_json()["id"]
            envelope = raw_multipart(dicom_like(20 * 1024 * 1024))  # several 8 MiB parts
            body = envelope.pop("data")
            resp = client.post(f"/v1/datasets/{dataset}/items", headers=auth(token),
                               input_stream=_CuttingStream(body, proxy, 10 * 1024 * 1024),
                               content_length=len(body), **envelope)
            assert resp.status_code == 503
            assert resp.get_json()["code"] == "storage_unavailable"
            with runtime.session() as s:
                assert s.scalar(select(func.count()).select_from(Item)) == 0
                assert s.scalar(select(func.count()).select_from(SealedBlob)
                                .where(SealedBlob.state == "stored")) == 0
            event = audit_tail(runtime)[0].event
            assert (event.action, event.outcome, event.reason) == (
                "uploader:item:uploaded", "error", "storage_unavailable")
        finally:
            app.extensions["gateway"].close()
    assert s3_client(moto_endpoint).list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0


def test_kms_unreachable_fails_closed(gateway_config: dict[str, Any], aws_env: None,
                                      moto_endpoint: str) -> None:
    bucket = create_bucket(moto_endpoint)
    config = _scale_config(gateway_config, moto_endpoint, moto_endpoint, bucket, moto_endpoint)
    app, token = _app(config)
    app.extensions["gateway"].close()
    config["kms_endpoint_url"] = closed_port_url()
    from gateway import create_app

    app = create_app(config)
    try:
        client, runtime = app.test_client(), app.extensions["gateway"]
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.get_json()["checks"]["keys"] == "unavailable"
        resp = client.post("/v1/datasets", json={"name": "d"}, headers=auth(token))
        assert resp.status_code == 503
        assert resp.get_json()["code"] == "keys_unavailable"
        event = audit_tail(runtime)[0].event
        assert (event.action, event.outcome, event.reason) == (
            "uploader:dataset:created", "error", "keys_unavailable")
    finally:
        app.extensions["gateway"].close()
