"""Input limits through the production stack (gunicorn with gunicorn.conf.py): request bodies,
headers, and the memory one request may cost an API worker (attack run, defects 7 and 16).

Memory is read from /proc: each gunicorn worker's resident set before a request, and its peak
(VmHWM, reset through /proc/<pid>/clear_refs) during it. The chart gives an API pod 768 Mi for
several workers, so one request must stay well under a hundred or so megabytes.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.concurrency.live import Live, Response

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

MB = 1024 * 1024
BODY_LIMIT = 10 * MB  # MAX_REQUEST_BYTES' default
GROWTH_BOUND = 150 * MB  # one request, peak over the worker's resident set before it
ERROR_KEYS = {"code", "status", "message", "errors"}


# --- gunicorn workers' memory ----------------------------------------------------------------


def _workers(live: Live) -> list[int]:
    master = live.procs[0].pid
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return [int(pid) for pid in children]


def _status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process, in bytes."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) * 1024
    return out


@dataclass
class Memory:
    """Per worker: resident set before, peak during, resident set after (bytes)."""

    before: dict[int, int] = field(default_factory=dict)
    peak: dict[int, int] = field(default_factory=dict)
    after: dict[int, int] = field(default_factory=dict)

    @property
    def peak_growth(self) -> int:
        return max(self.peak[p] - self.before[p] for p in self.before if p in self.peak)

    @property
    def retained(self) -> int:
        return max(self.after[p] - self.before[p] for p in self.before if p in self.after)

    def __str__(self) -> str:
        return f"peak +{self.peak_growth / MB:.0f} MB, retained +{self.retained / MB:.0f} MB"


@contextmanager
def memory(live: Live) -> Iterator[Memory]:
    m = Memory()
    pids = _workers(live)
    for pid in pids:
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS
        m.before[pid] = _status(pid)["VmRSS"]
    yield m
    for pid in pids:
        try:
            status = _status(pid)
        except FileNotFoundError:  # the worker died (e.g. killed): no figure
            continue
        m.peak[pid], m.after[pid] = status["VmHWM"], status["VmRSS"]


@pytest.fixture(scope="module")
def warm(live: Live, make_org_module: Any) -> tuple[Any, str]:
    """An org and a token, every worker having served a few requests (imports, caches)."""
    org, token = make_org_module
    rows = [{"external_id": f"w{i}", "name": f"Warm {i}"} for i in range(200)]
    for _ in range(12):  # sequential: gunicorn spreads new connections over the workers
        live.request("POST", "/roles/bulk", token, {"items": rows})
        live.request("GET", "/roles?limit=500", token)
    return org, token


@pytest.fixture(scope="module")
def make_org_module() -> tuple[Any, str]:
    from infra import context
    from infra import database as db
    from tenancy.auth import TENANT_SCOPES, issue_token
    from tenancy.organizations import create_organization
    from tests.support.suite import SETTINGS

    with context.platform(), db.new_session() as s:
        org = create_organization(s, name=f"Limits {uuid.uuid4().hex[:6]}", modules=["hse"])
        s.commit()
    token = issue_token(SETTINGS, sub="limits", org_id=str(org.id), scopes=list(TENANT_SCOPES))
    return org, token


# --- raw HTTP (bodies the client controls byte by byte) ---------------------------------------


def _raw(live: Live, head: bytes, chunks: Iterable[bytes] = (), timeout: float = 30.0) -> Response:
    """Send `head` then `chunks` (on a thread, so the answer is read even if the server
    stops reading early), and read one response."""
    sock = socket.create_connection(("127.0.0.1", live.port), timeout=timeout)

    def send() -> None:
        try:
            for chunk in chunks:
                sock.sendall(chunk)
        except OSError:  # the server answered and closed: the rest is not wanted
            pass

    try:
        sock.sendall(head)
        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        resp = http.client.HTTPResponse(sock)
        resp.begin()
        body = resp.read()
        sender.join(timeout)
        return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, body)
    finally:
        sock.close()


def _head(method: str, path: str, token: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} /api/v1{path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"Authorization: Bearer {token}", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _error(resp: Response, status: int) -> dict[str, Any]:
    assert resp.status == status, (resp.status, resp.body[:300])
    # The one error shape, gunicorn's own refusals included (api.limits.server_error_writer).
    ctype = resp.headers.get("content-type", "")
    assert ctype.startswith("application/problem+json"), resp.headers
    body = resp.json()
    assert set(body) >= ERROR_KEYS, body
    return body


# --- request bodies ----------------------------------------------------------------------------


def test_a_declared_body_over_the_limit_is_413_before_it_is_sent(live: Live, warm: Any) -> None:
    _, token = warm
    head = _head(
        "POST",
        "/roles/bulk",
        token,
        {"Content-Type": "application/json", "Content-Length": str(BODY_LIMIT + 1)},
    )
    started = time.monotonic()
    body = _error(_raw(live, head, timeout=20), 413)  # no byte of the body sent
    assert time.monotonic() - started < 10
    assert str(BODY_LIMIT) in body["message"], body


def test_a_chunked_body_is_cut_off_at_the_limit(live: Live, warm: Any) -> None:
    _, token = warm
    head = _head(
        "POST",
        "/roles/bulk",
        token,
        {"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
    )
    piece = b'{"external_id": "x", "name": "' + b"y" * 65_000 + b'"},'

    def chunks() -> Iterator[bytes]:
        first = b'{"items": ['
        yield b"%x\r\n%s\r\n" % (len(first), first)
        sent = len(first)
        while sent <= BODY_LIMIT + 64 * 1024:
            yield b"%x\r\n%s\r\n" % (len(piece), piece)
            sent += len(piece)
        yield b"0\r\n\r\n"

    body = _error(_raw(live, head, chunks()), 413)
    assert str(BODY_LIMIT) in body["message"], body


def test_a_bulk_body_just_under_the_limit_costs_little_memory(live: Live, warm: Any) -> None:
    """The attack run's body: a 32 MB `{"items": [{}, ...]}` took a worker from 119 to 939 MB
    and kept it there. Just under the limit, millions of empty rows must be refused before
    they become Python objects."""
    _, token = warm
    prefix, item, suffix = b'{"items": [', b"{},", b"{}]}"
    count = (BODY_LIMIT - len(prefix) - len(suffix) - 16) // len(item)
    body = prefix + item * count + suffix
    assert BODY_LIMIT - 64 < len(body) <= BODY_LIMIT
    with memory(live) as m:
        resp = live.request(
            "POST", "/roles/bulk", token, body=body, headers={"Content-Type": "application/json"}
        )
    print(f"\n{count:,} empty rows ({len(body):,} bytes): {resp.status}, {m}")  # noqa: T201
    assert 400 <= resp.status < 500, resp.body[:300]
    _error(resp, resp.status)
    assert m.peak_growth < GROWTH_BOUND, str(m)
    assert m.retained < 50 * MB, str(m)


def test_a_full_bulk_import_stays_within_the_bound(live: Live, warm: Any) -> None:
    """10,000 rows (the documented maximum) of the longest fields: accepted, bounded."""
    _, token = warm
    rows = [
        {"external_id": f"R{i:05d}" + "e" * 194, "name": f"Role {i:05d} " + "n" * 189}
        for i in range(10_000)
    ]
    payload = json.dumps({"items": rows}).encode()
    assert len(payload) < BODY_LIMIT
    with memory(live) as m:
        resp = live.request(
            "POST", "/roles/bulk", token, body=payload, headers={"Content-Type": "application/json"}
        )
    print(f"\n10,000 roles ({len(payload):,} bytes): {resp.status}, {m}")  # noqa: T201
    assert resp.status == 200, resp.body[:300]
    assert resp.json()["counts"]["created"] == 10_000
    assert m.peak_growth < GROWTH_BOUND, str(m)


# --- the CSV export ------------------------------------------------------------------------------

EXPORT_SUBJECTS, EXPORT_CERTS = 2_000, 300
EXPORT_BOUND = 100 * MB  # an export of any size: bounded pages, not the whole view at once

# 2,000 employees (names colliding now and then, formula-like and missing external ids) × 300
# certifications, every status, plus a few employees without any certification.
_EXPORT_SEED = [
    """INSERT INTO certifications (org_id, id, name, type, cost, validity_months, warning_days,
                                   valid_when_added, forms_required, notification_rules,
                                   task_rules)
       SELECT :org, gen_random_uuid(),
              CASE WHEN g % 50 = 0 THEN '=Cert ' ELSE 'Certification ' END || lpad(g::text, 3, '0'),
              'employee', 10 * g, 12, 30, false, false, '[]', '[]'
       FROM generate_series(1, :certs) g""",
    """INSERT INTO employees (org_id, id, name, external_id, email, active)
       SELECT :org, gen_random_uuid(),
              CASE WHEN g % 100 = 0 THEN 'Same Name'
                   ELSE initcap(substr(md5(g::text), 1, 8)) || ' Zoë ' || g END,
              CASE WHEN g % 7 = 0 THEN NULL WHEN g % 11 = 0 THEN '=E' || g ELSE 'E' || g END,
              'e' || g || '@example.com', true
       FROM generate_series(1, :n + 5) g""",
    """INSERT INTO assignments (org_id, id, certification_id, subject_type, subject_id, source,
                                required, status, issued_on, effective_on, expires_on,
                                revoked_at, revoked_reason)
       SELECT :org, gen_random_uuid(), c.id, 'employee', e.id, 'role', h % 9 <> 0,
              CASE WHEN h < 700 THEN 'valid' WHEN h < 850 THEN 'expired'
                   WHEN h < 930 THEN 'missing' WHEN h < 970 THEN 'upcoming' ELSE 'revoked' END,
              CASE WHEN h BETWEEN 850 AND 929 THEN NULL ELSE current_date - h END,
              CASE WHEN h BETWEEN 850 AND 929 THEN NULL ELSE current_date - h END,
              CASE WHEN h BETWEEN 850 AND 929 THEN NULL ELSE current_date + 1000 - h END,
              CASE WHEN h >= 970 THEN now() END,
              CASE WHEN h >= 970 THEN 'seeded' END
       FROM (SELECT id FROM employees WHERE org_id = :org ORDER BY email LIMIT :n) e
       CROSS JOIN (SELECT id FROM certifications WHERE org_id = :org) c
       CROSS JOIN LATERAL (SELECT abs(hashtext(e.id::text || c.id::text)) % 1000 AS h) x""",
]


@pytest.fixture(scope="module")
def big_view(live: Live) -> tuple[Any, str]:
    """An organization with 2,000 employees × 300 certifications (600,000 assignments)."""
    from sqlalchemy import create_engine, text

    from infra import context
    from infra import database as db
    from tenancy.auth import issue_token
    from tenancy.organizations import create_organization
    from tests.support.suite import SETTINGS

    with context.platform(), db.new_session() as s:
        org = create_organization(s, name=f"Export {uuid.uuid4().hex[:6]}", modules=["hse"])
        s.commit()
    owner = create_engine(SETTINGS.migration_database_url)
    try:
        with owner.begin() as conn:
            # RLS is forced on the owner too: insert as the organization.
            conn.execute(text("SELECT set_config('app.org_id', :o, true)"), {"o": str(org.id)})
            for sql in _EXPORT_SEED:
                conn.execute(
                    text(sql), {"org": org.id, "n": EXPORT_SUBJECTS, "certs": EXPORT_CERTS}
                )
        with owner.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE employees, certifications, assignments"))
    finally:
        owner.dispose()
    token = issue_token(SETTINGS, sub="export", org_id=str(org.id), scopes=["certifications:read"])
    for _ in range(12):  # every worker has served the view once (imports, compiled SQL)
        live.request("GET", "/views/employees?format=csv&q=nobody", token)
        live.request("GET", "/views/employees?limit=5", token)
    return org, token


def test_a_csv_export_of_2000_by_300_costs_little_memory(live: Live, big_view: Any) -> None:
    """The attack run's export (+700 MB peak in one worker): pages of a bounded number of
    assignment rows keep it flat, and the file is the one the unpaged export wrote."""
    from certifications.reporting.subjects import ViewFilters
    from infra import context
    from infra import database as db
    from tests.api.test_views_export import legacy_csv

    org, token = big_view
    started = time.monotonic()
    with memory(live) as m:
        resp = live.request("GET", "/views/employees?format=csv", token)
    elapsed = time.monotonic() - started
    lines = resp.body.count(b"\r\n")
    print(  # noqa: T201
        f"\nCSV export {EXPORT_SUBJECTS:,} × {EXPORT_CERTS}: {resp.status}, {lines:,} lines, "
        f"{len(resp.body) / MB:.0f} MB in {elapsed:.1f} s, {m}"
    )
    assert resp.status == 200, resp.body[:300]
    assert resp.headers["content-type"] == "text/csv; charset=utf-8"
    assert lines == 1 + EXPORT_SUBJECTS * EXPORT_CERTS + 5
    expected = hashlib.sha256()
    with context.tenant(org.id), db.new_session() as s:
        for piece in legacy_csv(s, "employee", ViewFilters()):
            expected.update(piece.encode())
    assert hashlib.sha256(resp.body).hexdigest() == expected.hexdigest()
    assert m.peak_growth < EXPORT_BOUND, str(m)


def test_a_json_view_page_stops_at_20000_certification_entries(live: Live, big_view: Any) -> None:
    """`limit=500` of 300 certifications each would be 150,000 entries in one page."""
    _, token = big_view
    with memory(live) as m:
        resp = live.request("GET", "/views/employees?limit=500", token)
    body = resp.json()
    print(  # noqa: T201
        f"\nJSON page limit=500 of {EXPORT_CERTS}: {len(body['items'])} subjects, "
        f"{len(resp.body) / MB:.1f} MB, {m}"
    )
    assert resp.status == 200
    assert len(body["items"]) == 20_000 // EXPORT_CERTS  # 66 × 300 = 19,800
    assert body["next_cursor"] is not None
    assert m.peak_growth < EXPORT_BOUND, str(m)


# --- headers: gunicorn's own errors in the error shape -------------------------------------------


@pytest.mark.parametrize("size", [9_000, 20_000])
def test_an_oversized_header_is_a_json_431(live: Live, warm: Any, size: int) -> None:
    """gunicorn refuses a header line over 8,190 bytes before the app runs (attack run: a 9 KB
    bearer got its HTML page); the answer is the API's JSON error."""
    body = _error(_raw(live, _head("GET", "/roles", "a" * size, {})), 431)
    assert body["code"] == 431
    assert "8190" in body["message"], body
    assert "headers" in body["errors"], body


def test_too_many_headers_is_a_json_431(live: Live, warm: Any) -> None:
    _, token = warm
    many = {f"X-Filler-{i}": "x" for i in range(120)}
    body = _error(_raw(live, _head("GET", "/roles", token, many)), 431)
    assert "100" in body["message"], body


def test_a_header_just_under_the_limit_reaches_the_app(live: Live, warm: Any) -> None:
    """An 8,000-byte bearer is the app's to judge: not a token, 401."""
    assert _error(_raw(live, _head("GET", "/roles", "a" * 8_000, {})), 401)["code"] == 401


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET /api/v1/roles HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", 400),
        (b"GET /api/v1/roles HTTP/9.9\r\nHost: x\r\n\r\n", 400),
        (b"GET /api/v1/roles?" + b"q" * 5_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    ],
    ids=["request-line", "header-without-colon", "http-version", "long-url"],
)
def test_every_error_gunicorn_answers_is_json(
    live: Live, warm: Any, head: bytes, status: int
) -> None:
    body = _error(_raw(live, head), status)
    assert body["code"] == status, body
    assert body["message"], body
