"""The CSV export streams in bounded pages and writes exactly what the unpaged export wrote.

`legacy_csv` is the export as it was before it was paged by assignment rows (subject chunks,
each with all of its assignments in memory): the reference the paged export must match byte for
byte, on data that crosses every page boundary (tests/concurrency/test_input_limits.py compares
the two at 2,000 × 300 through gunicorn).
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

import api.resources.views as views_resource
from api.pagination import paginate
from certifications.assignments.models import Assignment
from certifications.catalog.models import Certification
from certifications.directory.models import Asset, Employee
from certifications.reporting import export
from certifications.reporting.subjects import (
    ViewFilters,
    certification_conditions,
    narrows_certifications,
    subject_query,
)
from infra import context
from infra import database as db
from tenancy.keys import tenant_join
from tests.api.test_views import build_directory

LEGACY_COLUMNS = (
    "subject_type,subject_id,subject_name,subject_external_id,subject_active,certification_id,"
    "certification_name,status,required,issued_on,effective_on,expires_on,assignment_id,exempt"
)


def _cell(value: str | None) -> str:
    if not value:
        return ""
    return "'" + value if value[0] in "=+-@\t\r" else value


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _day(value: date | None) -> str:
    return value.isoformat() if value else ""


def legacy_csv(session: Session, kind: str, f: ViewFilters, chunk: int = 200) -> Iterator[str]:
    """The old export's text, piece by piece: subject chunks, then all of their assignments."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(LEGACY_COLUMNS.split(","))
    yield buf.getvalue()
    stmt, keys = subject_query(kind, f)
    cursor = None
    wanted = set(f.status)
    while True:
        page = paginate(session, stmt, keys, chunk, cursor)
        listed: dict[Any, list[Any]] = {s.id: [] for s in page.items}
        if listed:
            rows = session.execute(
                select(
                    Assignment.subject_id,
                    Assignment.id,
                    Assignment.certification_id,
                    Certification.name,
                    Assignment.status,
                    Assignment.required,
                    Assignment.issued_on,
                    Assignment.effective_on,
                    Assignment.expires_on,
                    Assignment.exempt_at,
                )
                .join(Certification, tenant_join(Certification, Assignment, "certification_id"))
                .where(Assignment.subject_id.in_(list(listed)), *certification_conditions(kind, f))
                .order_by(Certification.name, Certification.id)
            )
            for row in rows:
                if not wanted or row.status in wanted:
                    listed[row.subject_id].append(row)
        buf.seek(0)
        buf.truncate()
        for s in page.items:
            subject = [kind, str(s.id), _cell(s.name), _cell(s.external_id), _flag(s.active)]
            if not listed[s.id]:
                if not narrows_certifications(kind, f):
                    writer.writerow(subject + [""] * 9)
                continue
            for (
                _sid,
                aid,
                cid,
                name,
                status,
                required,
                issued,
                effective,
                expires,
                exempt_at,
            ) in listed[s.id]:
                writer.writerow(
                    subject
                    + [str(cid), _cell(name), status, _flag(required), _day(issued)]
                    + [_day(effective), _day(expires), str(aid), _flag(exempt_at is not None)]
                )
        session.expunge_all()
        yield buf.getvalue()
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


def legacy_text(org_id: Any, kind: str, f: ViewFilters) -> str:
    with context.tenant(org_id), db.new_session() as s:
        return "".join(legacy_csv(s, kind, f))


@pytest.fixture
def world(org, as_tenant):
    return build_directory(as_tenant, org)


def test_the_legacy_reference_is_the_export(api, world):
    """The reference reproduces the export on the shared directory (every status, revoked
    history, an archived certification, a formula-like external id, filters)."""
    org_id = world.alice.org_id
    for kind, query, f in [
        ("employee", "", ViewFilters()),
        ("employee", "&status=expired,missing", ViewFilters(status=("expired", "missing"))),
        ("employee", f"&group_id={world.safety.id}", ViewFilters(group_id=world.safety.id)),
        ("asset", "", ViewFilters()),
        ("client", "", ViewFilters()),
        ("location", "", ViewFilters()),
    ]:
        resp = api.get(f"/views/{kind}s?format=csv{query}")
        assert resp.status_code == 200
        assert resp.get_data(as_text=True) == legacy_text(org_id, kind, f), (kind, query)


# Text the CSV must quote: commas, quotes, line breaks (and nothing to quote).
_ODD = ("", ', "Jr"', "\nsecond line", '\r\ttab, and "quote"')


@pytest.fixture
def uneven(org, as_tenant) -> Any:
    """30 employees (names repeating) with 0 to 12 of 12 certifications each, every status,
    revoked history; an archived certification; and 3 assets."""
    statuses = ("valid", "expires_soon", "expired", "missing", "upcoming", "revoked")
    with as_tenant(org.id) as s:
        certs = [
            Certification(
                name=f"{'=' if i % 5 == 0 else ''}Cert {i:02d}{_ODD[i % 4]}", type="employee"
            )  # fmt: skip
            for i in range(12)
        ]
        certs.append(
            Certification(
                name="Archived", type="employee", archived_at=datetime(2026, 1, 1, tzinfo=UTC)
            )
        )
        people = [
            Employee(name=f"{'-' if i % 7 == 4 else ''}Person {i % 7}{_ODD[i % 7 % 4]}",
                     external_id=f"{'@' if i % 4 == 0 else ''}E{i}{_ODD[i % 3]}",
                     active=i % 6 != 0)
            for i in range(30)
        ]  # fmt: skip
        s.add_all(certs + people)
        s.flush()
        rows: list[dict[str, Any]] = []
        for i, p in enumerate(people):
            for j, c in enumerate(certs[: i % 13]):
                status = statuses[(i + j) % len(statuses)]
                day = date(2025, 1 + j, 1 + i % 28)
                base = {
                    "org_id": org.id, "certification_id": c.id, "subject_type": "employee",
                    "subject_id": p.id, "required": (i + j) % 4 != 0,
                }  # fmt: skip
                if (i + j) % 3 == 0:  # an older revoked cycle, never listed
                    rows.append(
                        base | {"id": uuid.uuid4(), "status": "revoked", "issued_on": day,
                                "revoked_at": datetime(2024, 1, 1, tzinfo=UTC)}
                    )  # fmt: skip
                current = base | {"id": uuid.uuid4(), "status": status}
                if status != "missing":
                    current |= {"issued_on": day, "effective_on": day, "expires_on": day}
                if (i + j) % 5 == 0:
                    current["exempt_at"] = datetime(2025, 3, 1, tzinfo=UTC)
                if status == "revoked":
                    current["revoked_at"] = datetime(2025, 6, 1, tzinfo=UTC)
                rows.append(current)
        s.execute(insert(Assignment), rows)
        s.add_all([Asset(name=f"Asset {i}") for i in range(3)])
        s.commit()
    return SimpleNamespace(org=org, certs=certs, people=people)


@pytest.mark.parametrize("rows_per_page", [1, 2, 3, 5, 8, 13, 10_000])
def test_the_paged_export_is_byte_identical(api, uneven, monkeypatch, rows_per_page):
    """Every page boundary: a page cut inside a subject's rows, a subject with more rows than a
    page, subjects without any certification, repeated names, text to quote or to defuse. On
    PostgreSQL this also holds the database-written lines to Python's `csv` module."""
    monkeypatch.setattr(export, "ROWS_PER_PAGE", rows_per_page)
    cert = uneven.certs[3]
    for kind, query, f in [
        ("employee", "", ViewFilters()),
        ("employee", "&status=expired,revoked", ViewFilters(status=("expired", "revoked"))),
        ("employee", f"&certification_id={cert.id}", ViewFilters(certification_id=cert.id)),
        ("employee", "&active=false&q=person%201", ViewFilters(active=False, q="person 1")),
        ("employee", "&include_inactive=true", ViewFilters(include_inactive=True)),
        ("employee", "&exempt=true", ViewFilters(exempt=True)),
        ("asset", "", ViewFilters()),
        ("client", "", ViewFilters()),
    ]:
        resp = api.get(f"/views/{kind}s?format=csv{query}")
        assert resp.status_code == 200
        text = resp.get_data(as_text=True)
        assert text == legacy_text(uneven.org.id, kind, f), (kind, query)
    assert text.count("\r\n") == 1  # clients: the header alone


def test_the_export_reads_bounded_pages(api, uneven, monkeypatch, count_queries):
    """One statement, read a page of rows at a time, whatever the view's size."""
    monkeypatch.setattr(export, "ROWS_PER_PAGE", 4)
    resp = api.get("/views/employees?format=csv")
    chunks = list(resp.response)
    body = b"".join(c if isinstance(c, bytes) else c.encode() for c in chunks)
    lines = len(list(csv.reader(io.StringIO(body.decode(), newline="")))) - 1
    assert lines > 100
    assert len(chunks) == 1 + -(-lines // 4)  # the header, then a chunk per page of 4 rows


# --- the JSON page's certification entries ---------------------------------------------------


def _walk(api: Any, path: str) -> list[list[dict[str, Any]]]:
    pages, cursor = [], None
    while True:
        body = api.get(path + (f"&cursor={cursor}" if cursor else "")).get_json()
        pages.append(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages


@pytest.mark.parametrize("cap", [1, 5, 12, 40])
def test_a_json_page_stops_at_its_entry_cap(api, uneven, monkeypatch, cap):
    """Capped pages hold whole subjects within the cap (one subject alone may pass it) and,
    followed by their cursors, list exactly what the uncapped pages list."""
    paths = ("/views/employees?limit=500", "/views/employees?limit=500&status=expired")
    full = {path: [i for page in _walk(api, path) for i in page] for path in paths}
    assert len(full[paths[0]]) == 25  # the 5 inactive employees only with include_inactive
    monkeypatch.setattr(views_resource, "MAX_PAGE_ENTRIES", cap)
    for path in paths:
        pages = _walk(api, path)
        assert [i for page in pages for i in page] == full[path]
        assert len(pages) > 1
        for page in pages:
            # applicable certifications (the summary's), also under a status filter
            entries = sum(sum(i["summary"].values()) for i in page)
            assert entries <= cap or len(page) == 1, (cap, entries, len(page))


def test_a_json_page_holds_at_most_20000_certification_entries(api, org, as_tenant):
    """The documented cap at its size: 70 employees × 300 certifications, `limit=100`."""
    with as_tenant(org.id) as s:
        certs = [Certification(name=f"C{i:03d}", type="employee") for i in range(300)]
        people = [Employee(name=f"P{i:03d}") for i in range(70)]
        s.add_all(certs + people)
        s.flush()
        s.execute(
            insert(Assignment),
            [
                {"org_id": org.id, "id": uuid.uuid4(), "certification_id": c.id,
                 "subject_type": "employee", "subject_id": p.id, "status": "missing"}
                for p in people for c in certs
            ],
        )  # fmt: skip
        s.commit()
    resp = api.get("/views/employees?limit=100")
    assert resp.status_code == 200, resp.get_json()
    first = resp.get_json()
    assert len(first["items"]) == 66  # 66 × 300 = 19,800; a 67th would pass 20,000
    assert first["items"][-1]["name"] == "P065"
    assert sum(len(i["certifications"]) for i in first["items"]) == 19_800
    rest = api.get(f"/views/employees?limit=100&cursor={first['next_cursor']}").get_json()
    assert [i["name"] for i in rest["items"]] == ["P066", "P067", "P068", "P069"]
    assert rest["next_cursor"] is None
