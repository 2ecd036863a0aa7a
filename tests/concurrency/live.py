"""A production-like stack for the concurrency suite: gunicorn (4 gthread workers, the project's
gunicorn.conf.py) and a `certs worker` process on the suite's PostgreSQL (as the RLS-bound app
role) and Redis, plus a small HTTP client and a parallel runner.

Load loops are bounded in count and time and talk to loopback only.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from jobs.broker import build_broker
from tests.support.suite import SETTINGS, SUBPROCESS_ENV, free_port

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class _Connection(http.client.HTTPConnection):
    """gthread workers keep connections alive: a thread's connection is closed when the
    thread (a `parallel` pool thread) drops it, not left to warn as an unclosed socket."""

    def __del__(self) -> None:
        self.close()


class Live:
    """The running stack: `request()` speaks HTTP to gunicorn on loopback."""

    def __init__(
        self, port: int, procs: list[subprocess.Popen[bytes]], namespace: str = ""
    ) -> None:
        self.port = port
        self.procs = procs
        self._local = threading.local()
        # Publishes into the stack's own namespace (its worker's queues), for `drain`.
        self.broker = build_broker(replace(SETTINGS, redis_namespace=namespace))

    def drain(self, timeout: float = 60.0) -> None:
        """Wait until the stack's jobs are done; a row still pending goes to the stack's worker
        (the suite's own broker would put it on queues nobody here reads)."""
        from tests.conftest import drain

        drain(timeout, broker=self.broker)

    def _conn(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = _Connection("127.0.0.1", self.port, timeout=60)
            self._local.conn = conn
        return conn

    def request(
        self,
        method: str,
        path: str,
        token: str | None = None,
        json_body: Any = None,
        *,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        """One request (on this thread's keep-alive connection, reopened if the server closed)."""
        hdrs = dict(headers or {})
        if token:
            hdrs.setdefault("Authorization", f"Bearer {token}")
        if json_body is not None:
            body = json.dumps(json_body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        url = path if path.startswith(("/healthz", "/readyz", "/metrics")) else "/api/v1" + path
        for attempt in (1, 2):
            conn = self._conn()
            try:
                conn.request(method, url, body=body, headers=hdrs)
                resp = conn.getresponse()
                data = resp.read()
                if resp.getheader("Connection", "").lower() == "close":
                    conn.close()
                    self._local.conn = None
                return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                conn.close()
                self._local.conn = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


def parallel(n: int, fn: Callable[[int], T], *, threads: int = 20) -> list[T]:
    """Run fn(0..n-1) on `threads` threads, released together by a barrier; results in order."""
    barrier = threading.Barrier(min(n, threads))

    def start(i: int) -> T:
        if i < threads:
            barrier.wait(timeout=60)
        return fn(i)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(start, range(n)))


def _wait_http(port: int, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {proc.returncode}")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        try:
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.1)
        finally:
            conn.close()
    raise RuntimeError("gunicorn did not start")


def start_stack(tmp: Path, *, api_workers: int = 4, env: dict[str, str] | None = None) -> Live:
    """gunicorn + one `certs worker` process, with CERTS_ENV=production-like settings."""
    port = free_port()
    # Own queues: the suite's worker process must not take the stack's messages (nor this
    # stack's worker, which declares no test actors, the suite's).
    namespace = f"certs-live-{uuid.uuid4().hex[:8]}"
    base = {
        **SUBPROCESS_ENV,
        "PYTHONPATH": str(ROOT),
        "HOME": str(tmp),
        "GUNICORN_WORKERS": str(api_workers),
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "LOG_FORMAT": "json",
        "WORKER_METRICS_PORT": "0",
        "REDIS_NAMESPACE": namespace,
        **(env or {}),
    }
    api_env = base | {"PROMETHEUS_MULTIPROC_DIR": str(tmp / "prom-api")}
    worker_env = base | {"PROMETHEUS_MULTIPROC_DIR": str(tmp / "prom-worker")}
    gunicorn = Path(sys.executable).parent / "gunicorn"
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(
            _spawn([str(gunicorn), "-c", "gunicorn.conf.py", "wsgi:app"], api_env, tmp / "api")
        )
        procs.append(
            _spawn(
                [sys.executable, "-m", "cli.main", "worker", "--processes", "1", "--threads", "4"],
                worker_env,
                tmp / "worker",
            )
        )
        _wait_http(port, procs[0])
    except BaseException:
        stop(procs)
        raise
    return Live(port, procs, namespace)


def _spawn(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """A process in its own group, its output in `log`.out/.err (closed here once inherited)."""
    with log.with_suffix(".out").open("wb") as out, log.with_suffix(".err").open("wb") as err:
        return subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=out, stderr=err, start_new_session=True
        )


def stop(procs: Sequence[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def stack(tmp: Path, **kw: Any) -> Iterator[Live]:
    live = start_stack(tmp, **kw)
    try:
        yield live
    finally:
        stop(live.procs)
