"""A streamed CSV export either arrives whole or visibly broken, never as a clean short file.

The defect: a sync gunicorn worker only beats its heartbeat between requests, so the master
killed it at `timeout` in the middle of a long export and the client got HTTP 200 and a
truncated body (137 MB of 403 MB with a 10 s timeout). Here a stack of its own runs with
`GUNICORN_TIMEOUT=3` and one API worker, and an export that takes several seconds must arrive
whole; then the worker is SIGKILLed mid-stream and the client must see an incomplete transfer.
"""

from __future__ import annotations

import http.client
import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.concurrency.live import Live, stack
from tests.concurrency.test_input_limits import _EXPORT_SEED
from tests.support.suite import BACKEND

SUBJECTS, CERTS = 3_000, 300  # 900,006 lines, ~190 MB: ~12 s on a quiet machine
TIMEOUT = 3  # GUNICORN_TIMEOUT of this stack, seconds
LINES = 1 + SUBJECTS * CERTS + 5  # header + assignments + employees without certifications
PATH = "/api/v1/views/employees?format=csv"


@pytest.fixture(scope="module")
def short_timeout(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """The production gunicorn.conf.py, one worker, a 3-second worker timeout."""
    if not BACKEND.is_postgres:
        pytest.skip("the concurrency suite runs on PostgreSQL with real processes")
    yield from stack(
        tmp_path_factory.mktemp("short-timeout"),
        api_workers=1,
        env={"GUNICORN_TIMEOUT": str(TIMEOUT)},
    )


@pytest.fixture(scope="module")
def export_org(short_timeout: Live) -> str:
    """3,000 employees × 300 certifications, loaded set-based; a read token."""
    from sqlalchemy import create_engine, text

    from infra import context
    from infra import database as db
    from tenancy.auth import issue_token
    from tenancy.organizations import create_organization
    from tests.support.suite import SETTINGS

    with context.platform(), db.new_session() as s:
        org = create_organization(s, name=f"Stream {uuid.uuid4().hex[:6]}", modules=["hse"])
        s.commit()
    owner = create_engine(SETTINGS.migration_database_url)
    try:
        with owner.begin() as conn:
            conn.execute(text("SELECT set_config('app.org_id', :o, true)"), {"o": str(org.id)})
            for sql in _EXPORT_SEED:
                conn.execute(text(sql), {"org": org.id, "n": SUBJECTS, "certs": CERTS})
        with owner.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE employees, certifications, assignments"))
    finally:
        owner.dispose()
    return issue_token(SETTINGS, sub="stream", org_id=str(org.id), scopes=["certifications:read"])


def _workers(live: Live) -> list[int]:
    master = live.procs[0].pid
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return [int(pid) for pid in children]


def _open_export(live: Live, token: str) -> tuple[http.client.HTTPConnection, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", live.port, timeout=120)
    conn.request("GET", PATH, headers={"Authorization": f"Bearer {token}"})
    resp = conn.getresponse()
    assert resp.status == 200, resp.read(300)
    # Chunked: the terminating chunk is how a client tells a whole file from a cut one.
    assert resp.getheader("Transfer-Encoding") == "chunked", resp.getheaders()
    return conn, resp


def test_an_export_longer_than_the_worker_timeout_arrives_whole(
    short_timeout: Live, export_org: str
) -> None:
    started = time.monotonic()
    conn, resp = _open_export(short_timeout, export_org)
    try:
        body = resp.read()  # IncompleteRead if the worker was killed mid-stream
    finally:
        conn.close()
    elapsed = time.monotonic() - started
    lines = body.count(b"\r\n")
    print(f"\nexport {lines:,} lines, {len(body) / 1e6:.0f} MB in {elapsed:.1f} s")  # noqa: T201
    # A sync worker is killed once it went TIMEOUT seconds without notifying the arbiter, which
    # checks about every second: a response lasting longer than that would have been cut.
    assert elapsed > TIMEOUT + 1.5, f"too fast ({elapsed:.1f} s) to prove anything: load more rows"
    assert lines == LINES


def test_a_worker_killed_mid_stream_is_an_incomplete_transfer(
    short_timeout: Live, export_org: str
) -> None:
    conn, resp = _open_export(short_timeout, export_org)
    try:
        first = resp.read(1_000_000)
        assert len(first) == 1_000_000
        (worker,) = _workers(short_timeout)
        os.kill(worker, signal.SIGKILL)
        with pytest.raises(http.client.IncompleteRead):
            resp.read()
    finally:
        conn.close()
    # The master replaces the worker: the stack answers again.
    deadline = time.monotonic() + 30
    while True:
        probe = http.client.HTTPConnection("127.0.0.1", short_timeout.port, timeout=5)
        try:
            probe.request("GET", "/healthz")
            if probe.getresponse().status == 200:
                break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
        finally:
            probe.close()
