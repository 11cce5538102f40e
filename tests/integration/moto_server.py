"""Real HTTP endpoints for the S3 and KMS adapters: moto's server, and ways to break it.

Everything here speaks the wire protocol over loopback; nothing patches boto3. moto keeps
its state per process, so every server started here sees the same buckets and keys:
tests isolate themselves with fresh bucket and key names instead.

- :func:`running_moto`: moto's threaded server on a free loopback port.
- :class:`TcpProxy`: a relay in front of it that can drop every connection at once,
  the way a network partition or a crashed endpoint looks to the client.
- :func:`canned_kms_error`: a KMS endpoint that answers every request with one error, for
  the states moto does not enforce (moto still decrypts under a disabled key).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import socket
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from gateway.storage import kms, s3

REGION = "us-east-1"
# Passed to every client explicitly, so tests never read the environment or ~/.aws.
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


@contextlib.contextmanager
def running_moto() -> Iterator[str]:
    """Start moto's server on a free loopback port, yield its URL, stop it afterwards.

    Port 0 lets the kernel pick the port, so parallel runs never race for one. werkzeug
    logs every request at INFO to stderr; it is held at WARNING while the server runs.
    moto is imported here, not at module level: it takes ~0.6 s and hooks into every
    botocore client made afterwards (inertly, outside ``mock_aws``), so integration tests
    that never start it are spared both.
    """
    from moto.server import ThreadedMotoServer

    werkzeug_log = logging.getLogger("werkzeug")
    level = werkzeug_log.level
    werkzeug_log.setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()
        werkzeug_log.setLevel(level)


@functools.cache
def s3_client(endpoint: str) -> Any:
    """A client configured exactly like the adapter's own, with the dummy credentials.

    Cached per endpoint: boto3 clients are thread-safe, and building one takes ~50 ms.
    """
    return s3.make_client(endpoint, REGION, **CREDENTIALS)


@functools.cache
def kms_client(endpoint: str) -> Any:
    return kms.make_client(endpoint, REGION, **CREDENTIALS)


def create_bucket(endpoint: str) -> str:
    """A new, empty bucket with a unique name."""
    name = f"gateway-test-{uuid.uuid4().hex[:16]}"
    s3_client(endpoint).create_bucket(Bucket=name)
    return name


def create_key(endpoint: str, *, hmac: bool = False) -> str:
    """A new KMS key: symmetric encryption by default, else HMAC-SHA-256. Returns its ARN.

    The usage is always spelled out: AWS defaults it to ENCRYPT_DECRYPT, but moto leaves it
    unset and then omits ``KeyUsage`` from DescribeKey.
    """
    usage, spec = ("GENERATE_VERIFY_MAC", "HMAC_256") if hmac else ("ENCRYPT_DECRYPT", None)
    params = {"KeyUsage": usage, **({"KeySpec": spec} if spec else {})}
    return str(kms_client(endpoint).create_key(**params)["KeyMetadata"]["Arn"])


def closed_port_url() -> str:
    """A loopback URL nothing listens on: connections are refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


class TcpProxy:
    """Relays loopback connections to ``target``; :meth:`cut` makes the endpoint vanish.

    After a cut, open connections are shut down mid-transfer and new ones are refused.
    Used as a context manager, it is cut on exit if the test did not do it.
    """

    def __init__(self, target: str) -> None:
        parts = urlsplit(target)
        self._target = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)  # so the accept loop notices a cut
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        self._cut = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cut()

    def cut(self) -> None:
        with self._lock:
            self._cut.set()
            self._listener.close()
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)  # wakes the relay blocked in recv
                sock.close()
            self._open.clear()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue  # look again whether the listener was closed
            except OSError:
                return  # closed by cut()
            client.settimeout(None)
            upstream = socket.create_connection(self._target)
            with self._lock:
                if self._cut.is_set():  # cut while this connection was being set up
                    client.close()
                    upstream.close()
                    return
                self._open += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=_relay, args=(src, dst), daemon=True).start()


def _relay(src: socket.socket, dst: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := src.recv(1 << 16):
            dst.sendall(data)
        dst.shutdown(socket.SHUT_WR)


@contextlib.contextmanager
def canned_kms_error(code: str, status: int = 400) -> Iterator[str]:
    """A KMS endpoint answering every request with error ``code``; yields its URL."""
    body = json.dumps({"__type": code, "message": "canned error"}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the name http.server dispatches to
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(status)
            self.send_header("Content-Type", "application/x-amz-json-1.1")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass  # quiet: the tests assert on the client side

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
