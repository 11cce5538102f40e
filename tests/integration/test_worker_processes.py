"""The pipeline in worker processes: a worker that dies mid-item quarantines that item,
and the pool is rebuilt so later items still get processed."""

from __future__ import annotations

import io
import os
import signal
import time
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.helpers import auth, face_photo_jpeg, raw_multipart, wait_for_status

pytestmark = pytest.mark.integration


def _pool_workers(app: Any) -> list[int]:
    """Pids of the pipeline's worker processes (not multiprocessing's resource tracker)."""
    pool = app.extensions["gateway"].jobs._pool
    return list(pool._processes)


def _big_photo() -> bytes:
    """A 6000 x 4000 JPEG: seconds of detection, time enough to kill its worker."""
    rng = np.random.default_rng(7)
    img = Image.fromarray(rng.integers(0, 255, (4000, 6000, 3), dtype=np.uint8))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=70)
    return buf.getvalue()


def _upload(client: Any, token: str, dataset: str, data: bytes) -> str:
    resp = client.post(f"/v1/datasets/{dataset}/items", headers=auth(token),
                       **raw_multipart(data))
    assert resp.status_code == 202, resp.get_json()
    return resp.get_json()["id"]


def test_killed_worker_quarantines_its_item_and_the_pool_recovers(
    gateway_config: dict[str, Any], admin_token: str
) -> None:
    from gateway import create_app

    gateway_config.update(job_runner="process", job_workers=1)
    app = create_app(gateway_config)
    try:
        client = app.test_client()
        dataset = client.post("/v1/datasets", json={"name": "d"},
                              headers=auth(admin_token)).get_json()["id"]
        victim = _upload(client, admin_token, dataset, _big_photo())
        deadline = time.monotonic() + 120
        while client.get(f"/v1/items/{victim}", headers=auth(admin_token)).get_json()[
                "status"] != "processing":
            assert time.monotonic() < deadline, "the item never started processing"
            time.sleep(0.05)
        workers = _pool_workers(app)
        assert workers, "no worker process found"
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
        done = wait_for_status(client, admin_token, victim, timeout=60)
        assert (done["status"], done["quarantine_reason"]) == ("quarantined", "worker_crashed")

        after = _upload(client, admin_token, dataset, face_photo_jpeg())
        assert wait_for_status(client, admin_token, after, timeout=120)["status"] == "ready"
    finally:
        app.extensions["gateway"].close()
