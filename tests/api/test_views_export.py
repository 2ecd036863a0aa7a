"""The CSV export streams in bounded pages and writes exactly what the unpaged export wrote.

`legacy_csv` is the export as it was before it was paged by assignment rows (subject chunks,
each with all of its assignments in memory): the reference the paged export must match byte for
byte, on data that crosses every page boundary (tests/concurrency/test_input_limits.py compares
the two at 2,000 × 300 through gunicorn).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.pagination import paginate
from certifications.assignments.models import Assignment
from certifications.catalog.models import Certification
from certifications.reporting.subjects import (
    ViewFilters,
    _certification_conditions,
    narrows_certifications,
    subject_query,
)
from infra import context
from infra import database as db
from tenancy.keys import tenant_join
from tests.api.test_views import build_directory

LEGACY_COLUMNS = (
    "subject_type,subject_id,subject_name,subject_external_id,subject_active,certification_id,"
    "certification_name,status,required,issued_on,effective_on,expires_on,assignment_id"
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
                )
                .join(Certification, tenant_join(Certification, Assignment, "certification_id"))
                .where(Assignment.subject_id.in_(list(listed)), *_certification_conditions(kind, f))
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
                    writer.writerow(subject + [""] * 8)
                continue
            for _sid, aid, cid, name, status, required, issued, effective, expires in listed[s.id]:
                writer.writerow(
                    subject
                    + [str(cid), _cell(name), status, _flag(required), _day(issued)]
                    + [_day(effective), _day(expires), str(aid)]
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
