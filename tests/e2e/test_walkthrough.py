"""The README walkthrough, run verbatim against the real server process.

The shell blocks between the README's walkthrough markers are executed with bash,
in order, with GW and TOKEN set the way the README tells a newcomer to set them.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image

from tests.helpers import database_overrides, drop_schema, face_photo_jpeg, shares_run

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, data_dir: Path, db: dict[str, str]) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
        self.env.update({"GATEWAY_PORT": str(self.port), "GATEWAY_DATA_DIR": str(data_dir),
                         "GATEWAY_LOG_FORMAT": "json"})
        self.env.update({f"GATEWAY_{k.upper()}": v for k, v in db.items()})
        self.proc: subprocess.Popen[str] | None = None
        self.banner: list[str] = []

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve"], env=self.env, cwd=ROOT,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        assert self.proc.stdout is not None
        self.banner = []
        for line in self.proc.stdout:
            self.banner.append(line)
            if line.startswith("Serving on"):
                break
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        raise AssertionError("server did not become ready: " + "".join(self.banner))

    def token(self) -> str | None:
        found = re.findall(r"\bgw_[A-Za-z0-9_-]{40,}", "".join(self.banner))
        return found[0] if found else None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)
            if self.proc.stdout is not None:
                self.proc.stdout.close()
            self.proc = None


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    db = database_overrides()
    srv = Server(tmp_path_factory.mktemp("gw") / "var", db)
    srv.start()
    yield srv
    srv.stop()
    drop_schema(db)


def walkthrough_script() -> str:
    text = README.read_text()
    section = text.split("<!-- walkthrough:start -->")[1].split("<!-- walkthrough:end -->")[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, flags=re.S)
    assert len(blocks) >= 5, "the README walkthrough has lost steps"
    return "\n".join(blocks)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_readme_walkthrough(server: Server, tmp_path: Path) -> None:
    token = server.token()
    assert token, "first start must print the bootstrap admin token"
    original = face_photo_jpeg()
    (tmp_path / "photo.jpg").write_bytes(original)
    env = {**os.environ, "GW": server.url, "TOKEN": token}
    run = subprocess.run(["bash", "-euo", "pipefail", "-c", walkthrough_script()], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "ready" in run.stdout

    out = Image.open(tmp_path / "anonymized.jpg")
    assert out.format == "JPEG" and not out.getexif() and "comment" not in out.info
    before = np.asarray(Image.open(io.BytesIO(original)).convert("RGB"), dtype=np.int16)
    after = np.asarray(out.convert("RGB"), dtype=np.int16)
    assert np.abs(before[90:150, 175:225] - after[90:150, 175:225]).mean() > 40

    for action in ("uploader:item:uploaded", "system:item:processing",
                   "system:item:anonymized", "uploader:media:downloaded"):
        assert action in run.stdout

    # Acceptance: nothing under the data directory holds the original's bytes.
    data_dir = Path(server.env["GATEWAY_DATA_DIR"])
    for path in (p for p in data_dir.rglob("*") if p.is_file()):
        content = path.read_bytes()
        assert not content.startswith(original[:4]), path
        assert not shares_run(content, original, 64), path


def test_second_start_keeps_data_and_prints_no_token(server: Server) -> None:
    token = server.token()
    server.stop()
    server.start()
    assert server.token() is None
    resp = requests.get(server.url + "/v1/datasets", timeout=10,
                        headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 200 and resp.json()["items"], resp.text


def test_bad_configuration_stops_start_with_the_variable_named(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update({"GATEWAY_PORT": "eighty", "GATEWAY_DATA_DIR": str(tmp_path / "var")})
    run = subprocess.run([sys.executable, "-m", "gateway", "serve"], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert "GATEWAY_PORT" in run.stderr and "Traceback" not in run.stderr


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs it)")
def test_docs_page_renders_every_operation_in_a_real_browser(server: Server,
                                                             tmp_path: Path) -> None:
    doc = requests.get(server.url + "/openapi.json", timeout=10).json()
    operations = {op["operationId"] for ms in doc["paths"].values() for op in ms.values()}
    assert CHROMIUM is not None
    dom = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
         "--virtual-time-budget=5000", "--dump-dom", server.url + "/docs"],
        capture_output=True, text=True, timeout=120,
    ).stdout
    rendered = set(re.findall(r'data-operation="([^"]+)"', dom))
    assert rendered == operations
    assert "Privacy gateway API 0.1.0" in dom  # the script replaced the static title


