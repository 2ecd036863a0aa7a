"""The production process layout, for real: gunicorn with gunicorn.conf.py (2 workers) and a
`certs worker` process against PostgreSQL and Redis, driven over HTTP."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from infra import context
from infra import database as db
from jobs.models import OutboxMessage
from tenancy.auth import TENANT_SCOPES, issue_token
from tests.support.suite import SUBPROCESS_ENV

ROOT = Path(__file__).resolve().parents[2]
REQUEST_ID = f"smoke-{uuid.uuid4().hex}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _call(
    base: str, method: str, path: str, token: str | None = None, body: Any = None, **headers: str
):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method)  # noqa: S310 - loopback
    for name, value in headers.items():
        req.add_header(name.replace("_", "-"), value)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=15) as resp:  # noqa: S310 - loopback
            raw = resp.read()
            status = resp.status
    except urllib.error.HTTPError as err:
        raw, status = err.read(), err.code
    text = raw.decode()
    try:
        return status, json.loads(text) if text else None
    except json.JSONDecodeError:
        return status, text


def _wait_for(url: str, procs: list[subprocess.Popen[bytes]], timeout: float = 45) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in procs:
            assert proc.poll() is None, f"{proc.args} exited with {proc.returncode}"
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - loopback
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise TimeoutError(url)


def _counter(base: str, endpoint_part: str, status: str) -> float:
    status_code, text = _call(base, "GET", "/metrics")
    assert status_code == 200
    total = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if (
                s.name == "certs_http_request_duration_seconds_count"
                and endpoint_part in s.labels["endpoint"]
                and s.labels["status"] == status
            ):
                total += s.value
    return total


@pytest.fixture
def production_layout(tmp_path, settings):
    port, metrics_port = _free_port(), _free_port()
    env = {
        **SUBPROCESS_ENV,
        "GUNICORN_WORKERS": "2",
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom-api"),
        "METRICS_DB_CACHE_SECONDS": "0",
        "LOG_FORMAT": "json",
        "HOME": str(tmp_path),  # proves gunicorn does not need a writable $HOME (control socket)
        "PYTHONPATH": str(ROOT),
        # Its own queues: the suite's worker process (started by earlier tests) listens on the
        # run's namespace and would otherwise take this layout's messages.
        "REDIS_NAMESPACE": f"certs-smoke-{uuid.uuid4().hex[:8]}",
    }
    worker_env = {
        **env,
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom-worker"),
        "WORKER_METRICS_PORT": str(metrics_port),
    }
    logs = {name: open(tmp_path / f"{name}.log", "wb") for name in ("api", "worker")}  # noqa: SIM115
    api = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
        cwd=ROOT,
        env=env,
        stdout=logs["api"],
        stderr=subprocess.STDOUT,
    )
    worker = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "worker", "--processes", "1", "--threads", "2"],
        cwd=ROOT,
        env=worker_env,
        stdout=logs["worker"],
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for(base + "/healthz", [api, worker])
        _wait_for(f"http://127.0.0.1:{metrics_port}/metrics", [api, worker])
        yield {"base": base, "worker_metrics": f"http://127.0.0.1:{metrics_port}/metrics"}
    finally:
        for proc in (api, worker):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        codes = [proc.wait(timeout=60) for proc in (api, worker)]
        for f in logs.values():
            f.close()
    assert codes == [0, 0], {n: (tmp_path / f"{n}.log").read_text()[-3000:] for n in logs}
    api_log = (tmp_path / "api.log").read_text().splitlines()
    access = [json.loads(line) for line in api_log if '"gunicorn.access"' in line]
    assert access, "access lines are JSON objects"
    assert all({"timestamp", "level", "request_id", "status"} <= set(a) for a in access)
    assert any(a["org_id"] and a["path"] == "/api/v1/org" for a in access), "tenant on access lines"
    # The request id of the request that asked for the job is on the job's log lines.
    worker_log = [json.loads(line) for line in (tmp_path / "worker.log").read_text().splitlines()]
    job_lines = [r for r in worker_log if r.get("request_id") == REQUEST_ID]
    assert job_lines, "the worker's lines for the job carry the request's id"
    assert job_lines[0]["actor"] == "fanout_employees"
    assert job_lines[0]["org_id"]


@pytest.mark.postgres
@pytest.mark.redis
def test_gunicorn_and_worker_serve_the_product(production_layout, settings) -> None:
    base = production_layout["base"]
    assert _call(base, "GET", "/readyz")[0] == 200

    platform = issue_token(settings, sub="ops", org_id=None, scopes=["platform:admin"])
    status, org = _call(
        base, "POST", "/api/v1/organizations", platform, {"name": "Smoke", "modules": ["hse"]}
    )
    assert status == 201, org
    token = issue_token(settings, sub="smoke", org_id=org["id"], scopes=list(TENANT_SCOPES))

    before = _counter(base, "Organization", "200")
    for _ in range(6):  # spread over both gunicorn workers; the scrape must merge them
        assert _call(base, "GET", "/api/v1/org", token)[0] == 200
    assert _counter(base, "Organization", "200") - before >= 6

    status, role = _call(base, "POST", "/api/v1/roles", token, {"name": "Welder"})
    assert status == 201, role
    status, emp = _call(
        base,
        "POST",
        "/api/v1/employees",
        token,
        {"name": "Ada Smoke", "email": "ada@example.com", "role_id": role["id"]},
        X_Request_ID=REQUEST_ID,
    )
    assert status == 201, emp
    assert _call(base, "GET", f"/api/v1/employees/{uuid.uuid4()}", token)[0] == 404

    # The employee's role fan-out went through the outbox to the real worker process.
    deadline = time.monotonic() + 60
    while True:
        with context.platform(), db.new_session() as s:
            states = s.scalars(
                select(OutboxMessage.status).where(OutboxMessage.org_id == uuid.UUID(org["id"]))
            ).all()
        if states and all(st == "done" for st in states):
            break
        assert time.monotonic() < deadline, f"outbox not processed: {states}"
        time.sleep(0.3)

    _status, text = _call(base, "GET", "/metrics")
    assert "certs_outbox_backlog" in text
    assert "certs_http_request_total{" in text
    with urllib.request.urlopen(production_layout["worker_metrics"], timeout=5) as resp:  # noqa: S310
        worker_text = resp.read().decode()
    assert 'dramatiq_messages_total{actor_name="fanout_employees"' in worker_text
