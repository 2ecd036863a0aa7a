"""A bounded load run against gunicorn on loopback: mixed reads and writes from 5 orgs.

stdlib threads + http.client (no load-tool dependency). Asserts 0 5xx and 0 responses carrying
another org's ids; prints throughput and p95. ~10 s in CI, 60 s in `make soak`.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.security import support
from tests.support.suite import SUBPROCESS_ENV

pytestmark = pytest.mark.postgres
ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _gunicorn(port: int) -> subprocess.Popen[bytes]:
    exe = shutil.which("gunicorn", path=str(Path(sys.executable).parent))
    assert exe, "gunicorn not installed in the venv"
    cmd = [exe, "-w", "2", "--no-control-socket", "-b", f"127.0.0.1:{port}", "wsgi:app"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=SUBPROCESS_ENV, start_new_session=True)
    for _ in range(200):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        try:
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return proc
        except OSError:
            time.sleep(0.05)
        finally:
            conn.close()
    proc.terminate()
    raise RuntimeError("gunicorn did not start")


def _run_load(make_org, make_world, token_for, seconds: float, threads: int = 8) -> dict[str, Any]:
    orgs = [make_org(name=f"Load {i}") for i in range(5)]
    worlds = {o.id: make_world(o) for o in orgs}
    tokens = {o.id: token_for(o) for o in orgs}
    own_ids = {o.id: {str(v) for v in worlds[o.id].values()} | {str(o.id)} for o in orgs}
    lists = [op.path for op in support.operations() if op.method == "get" and not op.path_params]
    reads = [
        (op, support.build_path(op, worlds[orgs[0].id]))
        for op in support.operations()
        if op.method == "get" and op.uuid_params
    ]
    lock = threading.Lock()
    stats: dict[str, Any] = {"n": 0, "lat": [], "5xx": [], "leaks": [], "writes": 0}
    created: dict[uuid.UUID, set[str]] = {o.id: set() for o in orgs}
    port = _free_port()
    proc = _gunicorn(port)
    stop_at = time.monotonic() + seconds

    def one(conn: http.client.HTTPConnection, org: Any) -> None:
        headers = {"Authorization": f"Bearer {tokens[org.id]}", "Content-Type": "application/json"}
        r = random.random()
        body = None
        if r < 0.15:
            method, path = "POST", "/roles"
            body = json.dumps({"name": f"role {uuid.uuid4().hex}"})
        elif r < 0.25:
            method, path = "PATCH", "/org"
            body = json.dumps({"name": f"Load {uuid.uuid4().hex[:6]}"})
        elif r < 0.5 and reads:
            op, _ = random.choice(reads)
            method, path = "GET", support.build_path(op, worlds[org.id])
        else:
            method, path = "GET", random.choice(lists)
        t0 = time.perf_counter()
        conn.request(method, "/api/v1" + path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read().decode("utf-8", "replace")
        dt = time.perf_counter() - t0
        foreign = set()
        with lock:
            for other in orgs:
                if other.id != org.id:
                    foreign |= own_ids[other.id] | created[other.id]
        leaked = [i for i in foreign if i in data]
        with lock:
            stats["n"] += 1
            stats["lat"].append(dt)
            if resp.status >= 500:
                stats["5xx"].append((method, path, resp.status, data[:200]))
            if leaked:
                stats["leaks"].append((method, path, leaked[:2]))
            if method != "GET":
                stats["writes"] += 1
                if resp.status == 201:
                    created[org.id].add(json.loads(data)["id"])

    def loop() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            while time.monotonic() < stop_at:
                one(conn, random.choice(orgs))
        finally:
            conn.close()

    started = time.monotonic()
    try:
        pool = [threading.Thread(target=loop) for _ in range(threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    elapsed = time.monotonic() - started
    lat = sorted(stats["lat"])
    stats["rps"] = stats["n"] / elapsed
    stats["p95_ms"] = lat[int(len(lat) * 0.95)] * 1000 if lat else None
    print(  # noqa: T201
        f"\nload: {stats['n']} requests ({stats['writes']} writes) in {elapsed:.1f}s, "
        f"{stats['rps']:.0f} req/s, p95 {stats['p95_ms']:.1f} ms, "
        f"5xx {len(stats['5xx'])}, leaks {len(stats['leaks'])}"
    )
    return stats


def _check(stats: dict[str, Any]) -> None:
    assert stats["n"] >= 20  # a floor, not a benchmark: the CI box is shared
    assert stats["5xx"] == [], stats["5xx"][:5]
    assert stats["leaks"] == [], stats["leaks"][:5]


def test_load_short(make_org, make_world, token_for):
    _check(_run_load(make_org, make_world, token_for, float(os.environ.get("LOAD_SECONDS", "10"))))


@pytest.mark.slow
def test_load_soak(make_org, make_world, token_for):
    _check(_run_load(make_org, make_world, token_for, 60.0))
