"""Erasure (crypto-shredding), key rotation, retention and orphan collection."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select, update

from gateway.db.models import Item, ScopeKey, SealedBlob
from gateway.errors import DecryptionError
from tests.helpers import (
    audit_tail,
    auth,
    events_of,
    face_photo_jpeg,
    stored_blobs,
    wait_for_status,
)

pytestmark = pytest.mark.integration


def _ready_item(client: Any, token: str, dataset: str | None = None) -> tuple[str, str]:
    if dataset is None:
        dataset = client.post("/v1/datasets", json={"name": "d"},
                              headers=auth(token)).get_json()["id"]
    resp = client.post(f"/v1/datasets/{dataset}/items", headers=auth(token),
                       data={"file": (io.BytesIO(face_photo_jpeg()), "a.jpg")},
                       content_type="multipart/form-data")
    item = resp.get_json()["id"]
    assert wait_for_status(client, token, item)["status"] == "ready"
    return dataset, item


def _blobs(runtime: Any, **where: Any) -> list[SealedBlob]:
    with runtime.session() as s:
        rows = s.scalars(select(SealedBlob).filter_by(**where)).all()
        s.expunge_all()
        return list(rows)


def test_erasure_makes_every_object_unreadable(client: Any, admin_token: str, runtime: Any,
                                               gateway_config: dict) -> None:
    from gateway.sealing import open_blob

    dataset, item = _ready_item(client, admin_token)
    _, other_item = _ready_item(client, admin_token)  # another dataset stays readable
    before = _blobs(runtime, dataset_id=dataset)
    assert len(before) == 3

    resp = client.delete(f"/v1/datasets/{dataset}", headers=auth(admin_token))
    assert resp.status_code == 200
    cert = resp.get_json()
    assert cert["objects"] == "3" and len(cert["objects_sha256"]) == 64

    # the certificate is in the audit log, in the same transaction as the shredding
    event = audit_tail(runtime)[0].event
    assert (event.action, event.object_id, event.refs) == (
        "admin:dataset:erased", dataset, {k: v for k, v in cert.items() if k != "dataset_id"})
    with runtime.session() as s:
        key = s.get(ScopeKey, cert["scope_key"])
        assert key.destroyed_at is not None and key.wrapped == b""
    # even with the old rows (wrapped data keys included), nothing opens any more
    for blob in before:
        blob.state = "stored"
        with pytest.raises(DecryptionError):
            b"".join(open_blob(runtime, blob))
    # the bytes are gone too; the other dataset's blobs remain
    remaining = {p.name for p in stored_blobs(Path(gateway_config["data_dir"]))}
    assert not remaining & {b.blob_key for b in before}
    assert len(remaining) == 3
    assert client.get(f"/v1/items/{other_item}/content",
                      headers=auth(admin_token)).status_code == 200
    # the API says what happened
    assert client.get(f"/v1/items/{item}", headers=auth(admin_token)).get_json()[
        "status"] == "erased"
    assert client.get(f"/v1/datasets/{dataset}", headers=auth(admin_token)).get_json()[
        "erased_at"]
    assert client.delete(f"/v1/datasets/{dataset}",
                         headers=auth(admin_token)).status_code == 410
    upload = client.post(f"/v1/datasets/{dataset}/items", headers=auth(admin_token),
                         data={"file": (io.BytesIO(face_photo_jpeg()), "a.jpg")},
                         content_type="multipart/form-data")
    assert upload.status_code == 410


def test_uploaders_cannot_erase(client: Any, make_token: Any, runtime: Any) -> None:
    uploader = make_token("uploader")
    dataset, _ = _ready_item(client, uploader)
    assert client.delete(f"/v1/datasets/{dataset}", headers=auth(uploader)).status_code == 403
    event = audit_tail(runtime)[0].event
    assert (event.action, event.outcome) == ("admin:dataset:erased", "denied")


def test_rotation_rewraps_dataset_keys_without_touching_blobs(
    client: Any, admin_token: str, runtime: Any, gateway_config: dict, monkeypatch
) -> None:
    from gateway.cli import main

    dataset, item = _ready_item(client, admin_token)
    blob_bytes = {p: p.read_bytes() for p in stored_blobs(Path(gateway_config["data_dir"]))}
    with runtime.session() as s:
        old_row = s.scalar(select(ScopeKey).where(ScopeKey.scope_id == dataset))
        old_kek, old_wrapped = old_row.kek_id, old_row.wrapped
    for key, value in gateway_config.items():
        monkeypatch.setenv(f"GATEWAY_{key.upper()}", str(value))
    result = CliRunner().invoke(main, ["keys", "rotate"])
    assert result.exit_code == 0, result.output
    assert "re-wrapped 1 dataset keys" in result.stdout

    with runtime.session() as s:
        new_kek = s.scalar(select(ScopeKey.kek_id).where(ScopeKey.scope_id == dataset))
    assert new_kek != old_kek
    assert old_kek not in runtime.keys.key_ids()  # retired after rewrap: material destroyed
    # blobs untouched, still readable (through a fresh runtime: nothing cached)
    assert {p: p.read_bytes() for p in blob_bytes} == blob_bytes
    from gateway import create_app

    fresh = create_app(gateway_config)
    try:
        got = fresh.test_client().get(f"/v1/items/{item}/content", headers=auth(admin_token))
        assert got.status_code == 200
    finally:
        fresh.extensions["gateway"].close()
    event = audit_tail(runtime, 3)
    assert "admin:key:rotated" in [r.event.action for r in event]

    # rolling the dataset key's row back to its old wrapping (e.g. a database backup
    # from before the rotation) no longer opens anything: the old KEK is gone
    with runtime.session() as s:
        s.execute(update(ScopeKey).where(ScopeKey.scope_id == dataset)
                  .values(kek_id=old_kek, wrapped=old_wrapped))
        s.commit()
    fresh = create_app(gateway_config)
    try:
        got = fresh.test_client().get(f"/v1/items/{item}/content", headers=auth(admin_token))
        assert got.status_code == 500 and got.get_json()["code"] == "decryption_failed"
    finally:
        fresh.extensions["gateway"].close()


@contextlib.contextmanager
def _app_with_retention(config: dict, folder: Path, retention: str) -> Iterator[Any]:
    """The app under the default policy with its ``originals: keep`` line replaced."""
    from importlib import resources

    from gateway import create_app

    policy = resources.files("policies").joinpath("default.yaml").read_text()
    path = folder / "policy.yaml"
    path.write_text(policy.replace("originals: keep", retention))
    app = create_app({**config, "policy": str(path)})
    try:
        yield app
    finally:
        app.extensions["gateway"].close()


def test_discard_policy_keeps_only_derivatives(gateway_config: dict, admin_token: str,
                                               tmp_path: Path) -> None:
    with _app_with_retention(gateway_config, tmp_path, "originals: discard") as app:
        client, runtime = app.test_client(), app.extensions["gateway"]
        _, item = _ready_item(client, admin_token)
        assert "system:original:purged" in events_of(runtime, item)
        gone = client.get(f"/v1/items/{item}/original", headers=auth(admin_token))
        assert gone.status_code == 410
        kinds = sorted(b.kind for b in _blobs(runtime, state="stored"))
        assert kinds == ["derivative", "report"]
        assert len(stored_blobs(Path(gateway_config["data_dir"]))) == 2


def test_expired_originals_are_purged(gateway_config: dict, admin_token: str,
                                      tmp_path: Path) -> None:
    from gateway.db.models import utcnow
    from gateway.retention import expire_originals

    expire = "originals: expire\n  expire_after_days: 30"
    with _app_with_retention(gateway_config, tmp_path, expire) as app:
        client, runtime = app.test_client(), app.extensions["gateway"]
        _, young = _ready_item(client, admin_token)
        _, old = _ready_item(client, admin_token)
        with runtime.session() as s:
            original = s.scalar(select(Item.original_id).where(Item.id == old))
            s.execute(update(SealedBlob).where(SealedBlob.id == original)
                      .values(created_at=utcnow() - timedelta(days=31)))
            s.commit()
        assert expire_originals(runtime) == 1
        assert client.get(f"/v1/items/{old}/original",
                          headers=auth(admin_token)).status_code == 410
        assert client.get(f"/v1/items/{young}/original",
                          headers=auth(admin_token)).status_code == 200
        assert expire_originals(runtime) == 0


def test_crash_between_blob_write_and_commit_leaves_a_collectable_orphan(
    client: Any, admin_token: str, runtime: Any, gateway_config: dict
) -> None:
    from gateway.sealing import blob_context, collect_orphans, seal_blob

    dataset = client.post("/v1/datasets", json={"name": "d"},
                          headers=auth(admin_token)).get_json()["id"]
    # the writer sealed its blob, then "crashed" before the transaction that keeps it
    orphan = seal_blob(runtime, [b"x" * 1000], blob_context(dataset, "original"))
    data_dir = Path(gateway_config["data_dir"])
    assert [p.name for p in stored_blobs(data_dir)] == [orphan.blob_key]
    # nothing references it: no item shows it
    assert client.get(f"/v1/datasets/{dataset}/items",
                      headers=auth(admin_token)).get_json()["items"] == []
    # young pending blobs are left alone (an upload may still be writing)
    assert collect_orphans(runtime) == 0
    assert collect_orphans(runtime, grace=timedelta(0)) == 1
    assert stored_blobs(data_dir) == []
    assert _blobs(runtime, dataset_id=dataset) == []
    assert audit_tail(runtime)[0].event.action == "system:storage:collected"
