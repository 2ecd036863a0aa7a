"""`python -m bench upload --size N`: N concurrent 5 MB document uploads through gunicorn.

A real stack on loopback: `gunicorn -c gunicorn.conf.py wsgi:app` (2 sync workers) on a fresh
PostgreSQL database, documents on the local store. N client threads each stream a distinct
5 MB PDF (multipart, with Content-Length) to `POST /assignments/{id}/documents` at once. Reported:
wall time, throughput, latency percentiles, statuses, and each worker's peak RSS (`VmHWM`)
against its RSS before the run: files are spooled to disk and streamed to the store in chunks,
so a worker's peak stays far below N × 5 MB (the issue's bar: under 100 MB).
"""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench._support import load_average

DEFAULT_SIZE = 100
FILE_BYTES = 5 * 1024 * 1024
CHUNK = 64 * 1024
WORKERS = 2
BOUNDARY = "bench-upload-boundary"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _workers(master: int) -> list[int]:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return [int(c) for c in children]


def _body(tag: int) -> tuple[int, Iterator[bytes]]:
    """(length, chunks) of one multipart upload: a distinct PDF of FILE_BYTES."""
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="certificate-{tag}.pdf"\r\nContent-Type: application/pdf\r\n\r\n'
    ).encode()
    pdf_head = f"%PDF-1.4\n% upload {tag} {uuid.uuid4()}\n".encode()
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()
    filler = FILE_BYTES - len(pdf_head)

    def chunks() -> Iterator[bytes]:
        yield head + pdf_head
        left = filler
        block = b"0" * CHUNK
        while left > 0:
            yield block[: min(CHUNK, left)]
            left -= CHUNK
        yield tail

    return len(head) + FILE_BYTES + len(tail), chunks()


def _upload(port: int, path: str, token: str, tag: int, out: list[Any]) -> None:
    length, chunks = _body(tag)
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    try:
        conn.request(
            "POST",
            path,
            body=chunks,
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
                "Content-Length": str(length),
            },
        )
        resp = conn.getresponse()
        resp.read()
        out.append((resp.status, time.perf_counter() - started))
    except OSError as exc:
        out.append((repr(exc), time.perf_counter() - started))
    finally:
        conn.close()


def main(size: int) -> None:
    from bench.views import _setup_env
    from tests.support.backend import create_backend, drop_backend

    os.environ["CERTS_TEST_BACKEND"] = "postgres"
    backend = create_backend()
    try:
        _setup_env(backend)
        with tempfile.TemporaryDirectory(prefix="bench-upload-") as tmp:
            _run(size, Path(tmp))
    finally:
        from infra import database as db

        if db.registry.engine is not None:
            db.registry.engine.dispose()
        drop_backend(backend)


def _seed() -> tuple[str, str]:
    """An org, a worker, a certification and the assignment the files go to; a token."""
    from certifications.assignments.models import Assignment
    from certifications.catalog.models import Certification
    from certifications.directory.models import Employee
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
        org = create_organization(s, name="Bench uploads", modules=["hse"])
        s.commit()
    with context.tenant(org.id), db.new_session() as s:
        emp = Employee(name="Bench Worker")
        cert = Certification(name="Forklift", type="employee", validity_months=12)
        s.add_all([emp, cert])
        s.flush()
        assignment = Assignment(
            certification_id=cert.id, subject_type="employee", subject_id=emp.id, status="missing"
        )
        s.add(assignment)
        s.commit()
        path = f"/api/v1/assignments/{assignment.id}/documents"
    token = issue_token(settings, sub="bench", org_id=str(org.id), scopes=["certifications:update"])
    return path, token


def _run(size: int, tmp: Path) -> None:
    path, token = _seed()
    port = _free_port()
    env = os.environ | {
        "DOCUMENT_DIR": str(tmp / "documents"),
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": str(WORKERS),
        "GUNICORN_TIMEOUT": "300",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp / "prom"),
        "LOG_LEVEL": "WARNING",
    }
    root = Path(__file__).resolve().parent.parent
    gunicorn = Path(sys.executable).parent / "gunicorn"
    log = (tmp / "gunicorn.log").open("wb")
    proc = subprocess.Popen(
        [str(gunicorn), "-c", "gunicorn.conf.py", "--no-control-socket", "wsgi:app"],
        cwd=root,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait(port, proc)
        idle = {pid: _kib(pid, "VmRSS") for pid in _workers(proc.pid)}
        warm: list[Any] = []
        for i in range(WORKERS * 2):  # every worker has imported and served once
            _upload(port, path, token, -1 - i, warm)
        workers = _workers(proc.pid)
        before = {pid: _kib(pid, "VmRSS") for pid in workers}
        results: list[Any] = []
        threads = [
            threading.Thread(target=_upload, args=(port, path, token, i, results))
            for i in range(size)
        ]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - started
        peaks = {pid: _kib(pid, "VmHWM") for pid in workers if Path(f"/proc/{pid}").exists()}
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        log.close()
    _report(size, wall, results, idle, before, peaks, warm)


def _wait(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {proc.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            conn.getresponse().read()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("gunicorn did not start")


def _report(
    size: int,
    wall: float,
    results: list[Any],
    idle: dict[int, int],
    before: dict[int, int],
    peaks: dict[int, int],
    warm: list[Any],
) -> None:
    statuses: dict[Any, int] = {}
    for status, _elapsed in results:
        statuses[status] = statuses.get(status, 0) + 1
    latencies = sorted(elapsed for _status, elapsed in results)

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))]

    mb = FILE_BYTES / 1024 / 1024
    print(f"upload: {size} concurrent {mb:.0f} MB uploads, {WORKERS} sync gunicorn workers")
    print(f"  warm-up statuses: {[s for s, _ in warm]}")
    print(f"  statuses: {statuses}")
    print(
        f"  wall {wall:.2f} s, {size * mb / wall:.1f} MB/s, {size / wall:.1f} uploads/s"
        f" (load {load_average()})"
    )
    print(f"  latency p50 {pct(0.5):.2f} s, p95 {pct(0.95):.2f} s, max {latencies[-1]:.2f} s")
    for pid, peak in sorted(peaks.items()):
        print(
            f"  worker {pid}: RSS idle {idle.get(pid, 0) / 1024:.1f} MB, "
            f"after warm-up {before.get(pid, 0) / 1024:.1f} MB, "
            f"peak (VmHWM) {peak / 1024:.1f} MB"
        )
    worst = max(peaks.values(), default=0) / 1024
    print(f"  peak RSS per worker {worst:.1f} MB ({'under' if worst < 100 else 'OVER'} 100 MB)")
