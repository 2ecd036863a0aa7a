"""`python -m bench api --size N`: per-request overhead of the API against a bare baseline.

On a throwaway PostgreSQL database (N employees × 20 certifications, the `views` benchmark's
data), as the app role bound by RLS:

* project: gunicorn with the project's production settings (`gunicorn.conf.py`,
  `CERTS_ENV=production`, Redis for the rate-limit counters) and `WORKERS` workers; two
  departures, both stated: the rate-limit budgets are raised so the load is never refused
  (the counters still run), and worker recycling (`max_requests`) is off, so a round measures
  requests, not a worker's start-up;
* baseline: `bench.api_baseline` under gunicorn with the same worker class, workers and threads:
  PyJWT, the same `set_config` tenant, the project's own SQL text for the endpoint (recorded
  here from the project, statement by statement) from a small psycopg pool, orjson. Its bodies
  are checked byte-equal to the project's before anything is measured.

Load: `CONNECTIONS` keep-alive connections (threads writing prepared requests on raw sockets) for
`BENCH_API_SECONDS` (default 10) per round; project and baseline rounds alternate
(`bench._support.alternate`), 3 each, the load average printed beside each figure. Figures are
requests per second; `seconds` / `floor_seconds` are their inverse (wall seconds per request at
that concurrency), and `ratio` is project ÷ baseline requests per second (higher is better; 1.0 is
as fast as the baseline).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from bench._support import alternate, load_average

DEFAULT_SIZE = 1_000
WORKERS = 2
THREADS = 2  # gunicorn.conf.py's default, for both servers
CONNECTIONS = 16
ROOT = Path(__file__).resolve().parent.parent
PAGE = 50
ENDPOINTS = {  # name: path (the JSON names them by path)
    "org": "/api/v1/org",
    "employees": f"/api/v1/employees?limit={PAGE}",
    "views": f"/api/v1/views/employees?limit={PAGE}",
}


def _seconds() -> float:
    return float(os.environ.get("BENCH_API_SECONDS", "10"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- Load generator -------------------------------------------------------------------------


def _read_response(sock: socket.socket, buf: bytes) -> tuple[int, bytes, bytes, bool]:
    """One HTTP/1.1 response off `sock`: (status, body, leftover bytes, server closes)."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the headers")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = 0
    closes = False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"connection" and value.strip().lower() == b"close":
            closes = True
    while len(rest) < length:
        chunk = sock.recv(max(65536, length - len(rest)))
        if not chunk:
            raise ConnectionError("closed mid-body")
        rest += chunk
    return status, rest[:length], rest[length:], closes


def fetch(port: int, path: str, token: str) -> tuple[int, bytes]:
    """One GET on a fresh connection (set-up checks)."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(_request(path, token))
        status, body, _, _ = _read_response(sock, b"")
    return status, body


def _request(path: str, token: str) -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
        "Accept: application/json\r\n\r\n"
    ).encode()


def hammer(
    port: int, path: str, token: str, seconds: float, connections: int = CONNECTIONS
) -> dict[str, float]:
    """`connections` keep-alive clients sending GET `path` for `seconds`: requests per second
    and latency percentiles (ms). Any answer but 200 fails the run."""
    request = _request(path, token)
    latencies: list[list[float]] = [[] for _ in range(connections)]
    errors: list[str] = []
    start = threading.Barrier(connections + 1)
    deadline = [0.0]

    def client(mine: list[float]) -> None:
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buf = b""
        start.wait()
        try:
            while True:
                t0 = time.perf_counter()
                if t0 >= deadline[0]:
                    break
                sock.sendall(request)
                status, _body, buf, closes = _read_response(sock, buf)
                if status != 200:
                    errors.append(f"HTTP {status}")
                    return
                mine.append(time.perf_counter() - t0)
                if closes:
                    sock.close()
                    sock = socket.create_connection(("127.0.0.1", port))
                    buf = b""
        except OSError as exc:
            errors.append(repr(exc))
        finally:
            sock.close()

    threads = [threading.Thread(target=client, args=(lat,)) for lat in latencies]
    for t in threads:
        t.start()
    began = time.perf_counter()
    deadline[0] = began + seconds
    start.wait()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    if errors:
        raise RuntimeError(f"load on port {port} {path} failed: {errors[:3]}")
    every = sorted(x for lat in latencies for x in lat)
    if not every:
        raise RuntimeError(f"no request completed on port {port} {path}")
    return {
        "req_s": len(every) / elapsed,
        "p50_ms": every[len(every) // 2] * 1000,
        "p99_ms": every[min(len(every) - 1, int(len(every) * 0.99))] * 1000,
    }


# --- Set-up ---------------------------------------------------------------------------------


def _environment(backend: Any) -> dict[str, str]:
    """Production settings for the throwaway database (and for this process's set-up)."""
    from cryptography.fernet import Fernet

    return {
        "CERTS_ENV": "production",
        "DATABASE_URL": backend.app_url,
        "MIGRATION_DATABASE_URL": backend.owner_url,
        "DB_APP_ROLE": backend.app_role,
        "JWT_SECRET_KEY": "bench-api-" + uuid.uuid4().hex + uuid.uuid4().hex,
        "WEBHOOK_SECRET_KEYS": Fernet.generate_key().decode(),
        "DB_PLATFORM_KEYS": uuid.uuid4().hex + uuid.uuid4().hex,
        "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        "REDIS_NAMESPACE": f"bench-api-{uuid.uuid4().hex[:8]}",
        "RATE_LIMIT_PER_SUBJECT": "100000000/minute",
        "RATE_LIMIT_PER_ORG": "100000000/minute",
        "LOG_LEVEL": "WARNING",
    }


class _Recorder:
    """The statements a request runs, with their result columns."""

    def __init__(self) -> None:
        self.statements: list[tuple[str, Any, list[str] | None]] = []

    def __call__(self, conn, cursor, statement, params, context, executemany) -> None:  # type: ignore[no-untyped-def]
        columns = [d[0] for d in cursor.description] if cursor.description else None
        self.statements.append((statement, params, columns))


def _tag(value: Any) -> Any:
    if isinstance(value, list):  # an array parameter (`= ANY(…)`)
        return [_tag(v) for v in value]
    return {"uuid": str(value)} if isinstance(value, uuid.UUID) else value


def _record(client: Any, name: str, path: str, headers: dict[str, str]) -> dict[str, Any]:
    """The endpoint's own SQL as the project runs it: the tenant set-up and (except for
    GET /org, whose SQL it is) the organization lookup of auth are left to the baseline."""
    from sqlalchemy import event

    from infra import database as db
    from tenancy import driver_reads

    client.get(path, headers=headers)  # warm: compiled caches as in a running worker
    rec = _Recorder()
    engine = db.get_engine()
    event.listen(engine, "after_cursor_execute", rec)
    # A read run on the driver's cursor (GET /org's) passes no engine event: recorded through
    # SQLAlchemy's execution instead, the same SQL text (tests/tenancy/test_tenant_reader.py).
    driver_reads.enabled = False
    try:
        resp = client.get(path, headers=headers)
    finally:
        driver_reads.enabled = True
        event.remove(engine, "after_cursor_execute", rec)
    if resp.status_code != 200:
        raise RuntimeError(f"{path}: HTTP {resp.status_code} {resp.get_data(as_text=True)[:300]}")
    kept = []
    for statement, params, columns in rec.statements:
        org_lookup = "FROM organizations" in statement
        if (name == "org") != org_lookup or (not org_lookup and "set_config(" in statement):
            continue
        kept.append((statement, params, columns))
    return {
        "statements": [[s, {k: _tag(v) for k, v in (p or {}).items()}] for s, p, _ in kept],
        "columns": [c for _, _, c in kept],
    }


def _setup(size: int, workdir: Path) -> dict[str, Any]:
    """Migrate, load, record; the spec the baseline reads (also: org id, token)."""
    from api import create_app
    from bench.views import _load
    from infra import context, migrate
    from infra import database as db
    from infra.settings import load_settings
    from runtime import bootstrap
    from tenancy.auth import issue_token
    from tenancy.organizations import create_organization

    settings = load_settings()
    migrate.upgrade(settings)
    bootstrap(settings)
    with context.platform(), db.new_session() as s:
        org = create_organization(s, name="Bench", modules=["hse"])
        s.commit()
        org_id = org.id
    load_seconds = _load(settings, org_id, size)
    print(f"api: loaded {size} employees x 20 certifications in {load_seconds:.1f}s", flush=True)
    token = issue_token(
        settings,
        sub="bench",
        org_id=str(org_id),
        scopes=["certifications:read", "directory:read"],
        ttl=settings.jwt_max_lifetime_seconds,
    )
    headers = {"Authorization": f"Bearer {token}"}
    app = create_app(settings)
    client = app.test_client()
    spec = {
        "database_url": settings.database_url,
        "jwt_secret": settings.jwt_secret_key,
        "jwt_algorithm": settings.jwt_algorithm,
        "endpoints": {
            name: _record(client, name, path, headers) for name, path in ENDPOINTS.items()
        },
    }
    (workdir / "baseline.json").write_text(json.dumps(spec))
    db.get_engine().dispose()
    return {"token": token, "org_id": str(org_id)}


def _start(cmd: list[str], env: dict[str, str], port: int, token: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
        cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise RuntimeError(f"{cmd} exited {proc.returncode}: {err[-2000:]}")
        try:
            status, _ = fetch(port, ENDPOINTS["org"], token)
            if status == 200:
                return proc
        except OSError:
            pass
        time.sleep(0.2)
    proc.terminate()
    raise RuntimeError(f"{cmd} did not answer within 60 s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def main(size: int) -> None:
    from tests.support.backend import create_backend, drop_backend

    saved = dict(os.environ)
    os.environ["CERTS_TEST_BACKEND"] = "postgres"
    backend = create_backend()
    workdir = Path(tempfile.mkdtemp(prefix="bench-api-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        env = {**os.environ, **_environment(backend)}
        os.environ.update(env)
        made = _setup(size, workdir)
        token = made["token"]
        project_port, baseline_port = _free_port(), _free_port()
        project_env = {
            **env,
            "GUNICORN_BIND": f"127.0.0.1:{project_port}",
            "GUNICORN_WORKERS": str(WORKERS),
            "GUNICORN_THREADS": str(THREADS),
            "GUNICORN_MAX_REQUESTS": "0",
            "PROMETHEUS_MULTIPROC_DIR": str(workdir / "prometheus"),
            "CERTS_INSTANCE_DIR": str(workdir / "instance"),
        }
        baseline_env = {**env, "BENCH_BASELINE_SPEC": str(workdir / "baseline.json")}
        gunicorn = [sys.executable, "-m", "gunicorn"]
        project_cmd = [*gunicorn, "-c", "gunicorn.conf.py", "wsgi:app"]
        # gunicorn reads ./gunicorn.conf.py unless told another file: without this empty one
        # the baseline ran with the project's settings too, recycling its workers every
        # ~10,000 requests and writing JSON access lines.
        bare_config = workdir / "baseline.gunicorn.conf.py"
        bare_config.write_text("")
        procs.append(_start(project_cmd, project_env, project_port, token))
        procs.append(
            _start(
                [
                    *gunicorn,
                    "-c", str(bare_config),
                    "--bind", f"127.0.0.1:{baseline_port}",
                    "--workers", str(WORKERS),
                    "--worker-class", "gthread",
                    "--threads", str(THREADS),
                    "--no-control-socket",
                    "bench.api_baseline:app",
                ],
                baseline_env,
                baseline_port,
                token,
            )
        )  # fmt: skip
        _check_bodies(project_port, baseline_port, token)
        result = _measure(size, project_port, baseline_port, token)
        print(json.dumps(result))
    finally:
        for proc in procs:
            _stop(proc)
        from infra import database as db

        if db.registry.engine is not None:
            db.registry.engine.dispose()
        drop_backend(backend)
        shutil.rmtree(workdir, ignore_errors=True)
        os.environ.clear()
        os.environ.update(saved)


def _check_bodies(project_port: int, baseline_port: int, token: str) -> None:
    for path in ENDPOINTS.values():
        p_status, p_body = fetch(project_port, path, token)
        b_status, b_body = fetch(baseline_port, path, token)
        if (p_status, p_body) != (b_status, b_body):
            at = next(
                (i for i, (a, b) in enumerate(zip(p_body, b_body, strict=False)) if a != b),
                min(len(p_body), len(b_body)),
            )
            raise RuntimeError(
                f"{path}: the baseline's answer differs from the project's at byte {at}: "
                f"{p_status} …{p_body[at - 200 : at + 200]!r} vs "
                f"{b_status} …{b_body[at - 200 : at + 200]!r}"
            )


def _measure(size: int, project_port: int, baseline_port: int, token: str) -> dict[str, Any]:
    seconds = _seconds()
    endpoints: dict[str, Any] = {}
    ratios: dict[str, float] = {}
    for path in ENDPOINTS.values():
        label = f"GET {path.removeprefix('/api/v1')}"
        for port in (project_port, baseline_port):  # warm both: caches, pools, branches
            hammer(port, path, token, min(2.0, seconds))
        detail: dict[str, list[dict[str, float]]] = {"project": [], "baseline": []}

        def run(
            side: str, port: int, path: str = path, label: str = label, detail: Any = detail
        ) -> float:
            figures = hammer(port, path, token, seconds)
            detail[side].append(figures)
            print(
                f"api: {label} {side}: p50 {figures['p50_ms']:.1f} ms, "
                f"p99 {figures['p99_ms']:.1f} ms",
                flush=True,
            )
            return figures["req_s"]

        medians = alternate(
            f"api {label}",
            {
                "project": lambda: run("project", project_port),
                "baseline": lambda: run("baseline", baseline_port),
            },
            unit="req/s",
        )
        ratio = round(medians["project"] / medians["baseline"], 2)
        ratios[label] = ratio
        endpoints[label] = {
            "scenario": f"api {label}",
            "size": size,
            "seconds": round(1 / medians["project"], 6),
            "floor_seconds": round(1 / medians["baseline"], 6),
            "req_s": round(medians["project"], 1),
            "floor_req_s": round(medians["baseline"], 1),
            "p99_ms": round(_median([f["p99_ms"] for f in detail["project"]]), 1),
            "floor_p99_ms": round(_median([f["p99_ms"] for f in detail["baseline"]]), 1),
            "ratio": ratio,
        }
        print(
            f"api: {label}: project {medians['project']:.0f} req/s, baseline "
            f"{medians['baseline']:.0f} req/s, ratio {ratio} (medians of 3; load {load_average()})",
            flush=True,
        )
    first = endpoints[next(iter(endpoints))]
    return {
        "scenario": "api",
        "size": size,
        "seconds": first["seconds"],
        "floor_seconds": first["floor_seconds"],
        "connections": CONNECTIONS,
        "round_seconds": seconds,
        "load_average": load_average(),
        "endpoints": endpoints,
        "ratios": ratios,
    }


def _median(values: list[float]) -> float:
    import statistics

    return statistics.median(values)
