"""Task queue benchmark: N annotators pulling and submitting over HTTP on PostgreSQL.

`python -m gateway serve` (gunicorn, --web-workers x --web-threads) runs on the local
PostgreSQL in a schema of its own. The bench uploads --items small PNGs (through the real
pipeline), creates a project with --overlap, adds --annotators annotator accounts, then
runs one thread per annotator (spread over --client-processes, so the client's own
interpreter lock does not add to what it measures), each looping
``POST /v1/projects/{id}/tasks/next`` + ``POST /v1/assignments/{id}/submit`` on its own
keep-alive connection until the queue says 204. Between a lease and its submission an
annotator thinks for --think-ms on average (a person looking at the picture: 2 s by
default, faster than anyone draws a box); annotators log in at random moments over the
first think time (--ramp-ms). --think-ms 0 makes every annotator a closed loop: that
measures the machine's saturation throughput, not an annotator's wait.

Reports next, submit and next+submit latency (p50, p95, p99, max, over every pair), the
slowest pairs and when they began, the pairs per second, the CPU time per pair of the
gateway's processes, PostgreSQL's and the whole machine's, and checks the outcome in the
database: no task leased beyond its overlap, no annotator twice on one task, every task
done exactly ``overlap`` times, and the agreement report computed. Latency is measured
against the machine it runs on: the figure to compare is printed, never asserted.

    .venv/bin/python bench/tasks.py --annotators 50 --items 2000 --overlap 2
    .venv/bin/python bench/tasks.py --annotators 50 --items 2000 --overlap 2 --think-ms 0
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import multiprocessing
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.storage import _free_port, _wait_started  # noqa: E402

PAGE = 500
PG = "postgresql://postgres@127.0.0.1:5432/test"
SCHEMA = {
    "languages": ["en"],
    "attributes": [{"id": "occluded", "kind": "boolean", "required": True,
                    "labels": {"en": "Occluded"}}],
    "classes": [{"id": "face", "labels": {"en": "Face"}, "types": ["bbox"],
                 "attributes": ["occluded"]}],
}


class Client:
    """One keep-alive HTTP connection with a bearer token."""

    def __init__(self, port: int, token: str) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        self.token = token

    def call(self, method: str, path: str, body: Any = None,
             raw: bytes | None = None, content_type: str | None = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.token}"}
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        elif content_type:
            headers["Content-Type"] = content_type
        try:
            self.conn.request(method, path, body=data, headers=headers)
            resp = self.conn.getresponse()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            # the server closed an idle keep-alive connection before reading the request
            self.conn.close()
            self.conn.request(method, path, body=data, headers=headers)
            resp = self.conn.getresponse()
        payload = resp.read()
        try:
            return resp.status, json.loads(payload) if payload else None
        except ValueError:
            return resp.status, None


def _png(i: int) -> bytes:
    img = Image.new("RGB", (64, 48), (i % 256, (i // 256) % 256, 120))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def _multipart(data: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"x.png\"\r\nContent-Type: image/png\r\n\r\n").encode()
    body += data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


@contextmanager
def server(env: dict[str, str], log: Path) -> Any:
    port = _free_port()
    env = {**env, "GATEWAY_PORT": str(port)}
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "gateway", "serve"],  # noqa: S603
                                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_started(proc, log, port)
        yield port, proc.pid
    finally:
        proc.terminate()
        proc.wait(60)


def _accounts(env: dict[str, str], names: list[tuple[str, str]]) -> dict[str, tuple[str, str]]:
    """Create users with tokens directly through the gateway's own account functions."""
    from gateway.accounts import create_token, create_user
    from gateway.config import load_settings
    from gateway.runtime import build_runtime

    runtime = build_runtime(load_settings(environ=env))
    out = {}
    try:
        with runtime.session() as session:
            for name, role in names:
                user = create_user(runtime, session, name, role)
                _, secret = create_token(runtime, session, user, None)
                out[name] = (user.id, secret)
            session.commit()
    finally:
        runtime.close()
    return out


def _cpu_seconds(server_pid: int) -> dict[str, float]:
    """CPU time used so far by the gateway's processes (the server and its workers), by
    PostgreSQL's, and by the whole machine (every core, from /proc/stat)."""
    tick = os.sysconf("SC_CLK_TCK")
    procs: dict[int, tuple[int, str, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        name = raw[raw.index("(") + 1:raw.rindex(")")]
        fields = raw[raw.rindex(")") + 2:].split()
        procs[int(entry.name)] = (int(fields[1]), name,
                                  (int(fields[11]) + int(fields[12])) / tick)
    gateway, seen = 0.0, {server_pid}
    for _ in range(3):  # the server, its workers, their pipeline processes
        seen |= {pid for pid, (ppid, _, _) in procs.items() if ppid in seen}
    gateway = sum(procs[pid][2] for pid in seen if pid in procs)
    postgres = sum(cpu for _, name, cpu in procs.values() if name.startswith("postgres"))
    machine = sum(int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:4])
    return {"gateway": gateway, "postgres": postgres, "machine": machine / tick}


def _percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]

    return {"p50": round(pct(50), 2), "p95": round(pct(95), 2), "p99": round(pct(99), 2),
            "max": round(ordered[-1], 2), "mean": round(statistics.fmean(ordered), 2)}


def run(args: argparse.Namespace) -> dict[str, Any]:
    schema = f"bench_tasks_{uuid.uuid4().hex[:8]}"
    data_dir = Path(tempfile.mkdtemp(prefix="bench-tasks-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update(GATEWAY_HOST="127.0.0.1", GATEWAY_DATA_DIR=str(data_dir),
               GATEWAY_DATABASE_URL=args.database_url, GATEWAY_DATABASE_SCHEMA=schema,
               GATEWAY_LOG_FORMAT="json", GATEWAY_LOG_LEVEL="warning",
               GATEWAY_WEB_WORKERS=str(args.web_workers),
               GATEWAY_WEB_THREADS=str(args.web_threads))
    with server(env, data_dir / "server.log") as (port, server_pid):
        os.environ.update({k: v for k, v in env.items() if k.startswith("GATEWAY_")})
        names = [("owner", "uploader")] + [(f"annotator{i}", "annotator")
                                           for i in range(args.annotators)]
        accounts = _accounts(env, names)
        owner = Client(port, accounts["owner"][1])
        started = time.perf_counter()
        dataset = owner.call("POST", "/v1/datasets", {"name": "bench"})[1]["id"]
        items = []
        for i in range(args.items):
            body, ctype = _multipart(_png(i))
            status, item = owner.call("POST", f"/v1/datasets/{dataset}/items", raw=body,
                                      content_type=ctype)
            assert status == 202, item
            items.append(item["id"])
        while not _all_ready(owner, dataset, args.items):
            time.sleep(1)
        seeded = time.perf_counter() - started
        status, project = owner.call("POST", "/v1/projects", {
            "name": "bench", "dataset_id": dataset, "label_schema": SCHEMA,
            "overlap": args.overlap, "lease_seconds": 600})
        assert status == 201, project
        for name, (pid, _) in accounts.items():
            if name.startswith("annotator"):
                owner.call("POST", f"/v1/projects/{project['id']}/members",
                           {"principal_id": pid, "role": "annotator"})
        cpu_before = _cpu_seconds(server_pid)
        results = _annotate(port, project["id"], accounts, args)
        cpu_after = _cpu_seconds(server_pid)
        results["cpu_ms_per_pair"] = {
            k: round((cpu_after[k] - cpu_before[k]) * 1000 / max(1, results["pairs"]), 2)
            for k in cpu_before}
        progress = owner.call("GET", f"/v1/projects/{project['id']}")[1]["progress"]
        t0 = time.perf_counter()
        agreement = owner.call("GET", f"/v1/projects/{project['id']}/agreement")[1]
        agreement_ms = (time.perf_counter() - t0) * 1000
        checks = _check_db(args, schema, project["id"])
    return {"seed_seconds": round(seeded, 1), "progress": progress, **results,
            "agreement_ms": round(agreement_ms, 1),
            "agreement_project": agreement["project"], "checks": checks}


def _all_ready(owner: Client, dataset: str, total: int) -> bool:
    ready, after = 0, None
    while True:
        query = f"?limit={PAGE}&after={after}" if after else f"?limit={PAGE}"
        page = owner.call("GET", f"/v1/datasets/{dataset}/items{query}")[1]
        ready += sum(1 for it in page["items"] if it["status"] == "ready")
        after = page["next"]
        if after is None:
            return ready == total


def _annotate(port: int, project: str, accounts: dict[str, tuple[str, str]],
              args: argparse.Namespace) -> dict[str, Any]:
    """Annotators as threads spread over --client-processes processes, so the client's
    own interpreter lock does not add to the latency it measures."""
    tokens = [secret for name, (_, secret) in accounts.items() if name.startswith("annotator")]
    ramp = (args.think_ms if args.ramp_ms is None else args.ramp_ms) / 1000
    start_at = time.monotonic() + 3.0  # every process starts its annotators then
    groups = [list(enumerate(tokens))[i::args.client_processes]
              for i in range(args.client_processes)]
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(len(groups)) as pool:
        parts = pool.starmap(_annotator_group, [
            (port, project, group, args.think_ms, ramp, start_at) for group in groups if group])
    records = [r for part in parts for r in part["records"]]
    errors = [e for part in parts for e in part["errors"]]
    seconds = max(part["ended"] for part in parts) - start_at
    starts = [r[0] for r in records]
    pairs = [r[1] + r[2] for r in records]
    return {"annotators": len(tokens), "client_processes": len(parts), "pairs": len(records),
            "seconds": round(seconds, 1), "pairs_per_second": round(len(records) / seconds, 1),
            "errors": errors[:10], "next_ms": _percentiles([r[1] for r in records]),
            "submit_ms": _percentiles([r[2] for r in records]),
            "next_plus_submit_ms": _percentiles(pairs),
            "over_50ms_by_tenth_of_run": _by_tenth(starts, pairs, seconds),
            "slowest_pairs": [{"at_s": round(r[0], 2), "next_ms": round(r[1], 1),
                               "submit_ms": round(r[2], 1)}
                              for r in sorted(records, key=lambda r: -(r[1] + r[2]))[:20]]}


def _annotator_group(port: int, project: str, annotators: list[tuple[int, str]],
                     think_ms: float, ramp: float, start_at: float) -> dict[str, Any]:
    """One client process: a thread per annotator; returns (start, next ms, submit ms)."""
    records: list[tuple[float, float, float]] = []
    errors: list[str] = []
    lock = threading.Lock()

    def annotator(seed: int, token: str) -> None:
        rng = random.Random(seed)
        client = Client(port, token)
        time.sleep(max(0.0, start_at - time.monotonic()) + rng.uniform(0, ramp))
        while True:
            t0 = time.monotonic()
            status, lease = client.call("POST", f"/v1/projects/{project}/tasks/next")
            t1 = time.monotonic()
            if status == 204:
                return
            if status != 200:
                with lock:
                    errors.append(f"next {status}")
                return
            if think_ms:
                time.sleep(rng.uniform(0.5, 1.5) * think_ms / 1000)
            box = [rng.randint(0, 20), rng.randint(0, 10), 20, 16]
            t2 = time.monotonic()
            status, _ = client.call("POST", f"/v1/assignments/{lease['id']}/submit", {
                "annotations": [{"type": "bbox", "class": "face", "bbox": box,
                                 "attributes": {"occluded": False}}]})
            t3 = time.monotonic()
            with lock:
                records.append((t0 - start_at, (t1 - t0) * 1000, (t3 - t2) * 1000))
                if status != 200:
                    errors.append(f"submit {status}")

    threads = [threading.Thread(target=annotator, args=pair) for pair in annotators]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"records": records, "errors": errors, "ended": time.monotonic()}


def _by_tenth(starts: list[float], pairs: list[float], seconds: float) -> list[int]:
    """How many pairs over 50 ms began in each tenth of the run: a burst at the start
    (everyone at once) reads differently from a tail spread over the whole run."""
    counts = [0] * 10
    for began, ms in zip(starts, pairs, strict=True):
        if ms > 50:
            counts[min(9, int(began / seconds * 10))] += 1
    return counts


def _check_db(args: argparse.Namespace, schema: str, project: str) -> dict[str, int]:
    import sqlalchemy as sa

    engine = sa.create_engine(args.database_url)
    with engine.connect() as conn:
        conn.execute(sa.text(f'SET search_path TO "{schema}"'))
        per_task = conn.execute(sa.text(
            "SELECT t.id, t.slots_left, count(a.id) FILTER (WHERE a.state = 'submitted') "
            "FROM tasks t LEFT JOIN assignments a ON a.task_id = t.id "
            "WHERE t.project_id = :p GROUP BY t.id, t.slots_left"), {"p": project}).all()
        doubles = conn.execute(sa.text(
            "SELECT count(*) FROM (SELECT task_id, annotator_id FROM assignments "
            "GROUP BY task_id, annotator_id HAVING count(*) > 1) d")).scalar_one()
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        conn.commit()
    engine.dispose()
    return {"tasks": len(per_task),
            "beyond_overlap": sum(1 for _, _, n in per_task if n > args.overlap),
            "lost": sum(1 for _, slots, n in per_task if n < args.overlap or slots != 0),
            "double_leases": int(doubles)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--annotators", type=int, default=50)
    ap.add_argument("--items", type=int, default=2000)
    ap.add_argument("--overlap", type=int, default=2)
    ap.add_argument("--think-ms", type=float, default=2000.0,
                    help="mean pause between a lease and its submission, uniform over "
                         "0.5x-1.5x (a person looking at the picture; 0: none, every "
                         "annotator a closed loop, which measures saturation instead)")
    ap.add_argument("--ramp-ms", type=float, default=None,
                    help="annotators join at random moments over this span (default: the "
                         "think time; 0: all at the same instant)")
    ap.add_argument("--client-processes", type=int, default=5,
                    help="processes the annotator threads are spread over")
    ap.add_argument("--web-workers", type=int, default=2 * (os.cpu_count() or 1),
                    help="gunicorn processes (default: two per core)")
    ap.add_argument("--web-threads", type=int, default=4)
    ap.add_argument("--database-url", default=PG)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    result = run(args)
    print(json.dumps(result, indent=1))
    pair = result["next_plus_submit_ms"]
    c = result["checks"]
    print(f"{result['annotators']} annotators, {result['pairs']} next+submit pairs in "
          f"{result['seconds']} s ({result['pairs_per_second']}/s), think {args.think_ms} ms: "
          f"next+submit p50 {pair['p50']} ms, p99 {pair['p99']} ms (target < 50); "
          f"tasks {c['tasks']}, beyond overlap {c['beyond_overlap']}, lost {c['lost']}, "
          f"double leases {c['double_leases']}, errors {len(result['errors'])}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
