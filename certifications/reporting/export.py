"""CSV export of a subject view: one line per subject per listed certification, streamed.

Memory stays flat whatever the view's size: the export reads keyset pages of subjects (plain
columns, no ORM objects), counts their rows in one statement, then reads the rows of runs of
consecutive subjects holding at most `ROWS_PER_PAGE` rows together, writing each run's lines
before reading the next; a subject with more rows than that on its own is read in keyset pages
of its rows.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import Row, literal, tuple_
from sqlalchemy.orm import Session

from certifications.assignments.models import Assignment
from certifications.catalog.models import Certification
from certifications.directory.models import SUBJECT_MODELS
from certifications.reporting.subjects import (
    ViewFilters,
    certification_counts,
    certification_rows,
    leading_within,
    narrows_certifications,
    subject_query,
)

CSV_COLUMNS = (
    "subject_type",
    "subject_id",
    "subject_name",
    "subject_external_id",
    "subject_active",
    "certification_id",
    "certification_name",
    "status",
    "required",
    "issued_on",
    "effective_on",
    "expires_on",
    "assignment_id",
    "exempt",
)
# Assignment rows read per statement (~400 KB of CSV; 10,000 cost +40 MB of peak RSS at
# 2,000 × 300, 2,000 under +10 MB, in the same time); at most this many subjects per page.
ROWS_PER_PAGE = 2_000
SUBJECTS_PER_PAGE = 1_000


def csv_chunks(session: Session, kind: str, f: ViewFilters) -> Iterator[str]:
    """The CSV text of the whole filtered view: the header, then one chunk per page.

    Text that a spreadsheet would run as a formula is prefixed with `'`.
    """
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for lines in _pages(session, kind, f):
        writer.writerows(lines)
        yield buf.getvalue()
        buf.seek(0)
        buf.truncate()
    if buf.tell():  # an empty view: the header alone
        yield buf.getvalue()


def _pages(session: Session, kind: str, f: ViewFilters) -> Iterator[list[list[str]]]:
    """Lists of CSV lines, each of at most `ROWS_PER_PAGE` assignment rows."""
    model: Any = SUBJECT_MODELS[kind]
    stmt, _keys = subject_query(kind, f)
    subjects_stmt = stmt.with_only_columns(
        model.id, model.name, model.external_id, model.active
    ).order_by(model.name, model.id)
    blank = not narrows_certifications(kind, f)
    after: tuple[str, uuid.UUID] | None = None
    while True:
        page_stmt = subjects_stmt
        if after is not None:
            page_stmt = page_stmt.where(
                tuple_(model.name, model.id)
                > tuple_(literal(after[0], model.name.type), literal(after[1], model.id.type))
            )
        subjects = session.execute(page_stmt.limit(SUBJECTS_PER_PAGE)).all()
        if not subjects:
            return
        ids = [s.id for s in subjects]
        counts = certification_counts(session, kind, f, ids, f.status)
        start = 0
        while start < len(ids):  # consecutive subjects with at most a page of rows together
            n = leading_within(ids[start:], counts, ROWS_PER_PAGE)
            batch = subjects[start : start + n]
            if counts.get(batch[0].id, 0) > ROWS_PER_PAGE:  # alone more than a page
                yield from _one_subject(session, kind, f, batch[0])
            else:
                rows = session.execute(
                    certification_rows(kind, f, ids[start : start + n], f.status)
                )
                yield _lines(kind, batch, rows.all(), blank)
            start += n
        if len(subjects) < SUBJECTS_PER_PAGE:
            return
        after = (subjects[-1].name, subjects[-1].id)


def _one_subject(
    session: Session, kind: str, f: ViewFilters, subject: Row[*tuple[Any, ...]]
) -> Iterator[list[list[str]]]:
    """A subject with more rows than a page: keyset pages of its rows."""
    after: tuple[Any, ...] | None = None
    while True:
        stmt = certification_rows(kind, f, [subject.id], f.status)
        if after is not None:
            stmt = stmt.where(
                tuple_(Certification.name, Certification.id, Assignment.id)
                > tuple_(
                    literal(after[0], Certification.name.type),
                    literal(after[1], Certification.id.type),
                    literal(after[2], Assignment.id.type),
                )
            )
        rows = session.execute(stmt.limit(ROWS_PER_PAGE)).all()
        if not rows:
            return
        yield _lines(kind, [subject], rows, blank=False)
        last = rows[-1]
        after = (last.name, last.certification_id, last.id)


def _lines(
    kind: str,
    subjects: Sequence[Row[*tuple[Any, ...]]],
    rows: Sequence[Row[*tuple[Any, ...]]],
    blank: bool,
) -> list[list[str]]:
    """One line per subject per row, subjects in their order, each one's rows in theirs; a
    subject without any: one blank line when `blank` (no filter asked for certifications)."""
    listed: dict[uuid.UUID, list[list[str]]] = {}
    # Plain tuples unpacked: this loop runs once per line of the export.
    for sid, aid, cid, name, status, required, issued, effective, expires, exempt_at in rows:
        listed.setdefault(sid, []).append(
            [
                str(cid),
                _cell(name),
                status,
                "true" if required else "false",
                issued.isoformat() if issued else "",
                effective.isoformat() if effective else "",
                expires.isoformat() if expires else "",
                str(aid),
                "true" if exempt_at is not None else "false",
            ]
        )
    lines: list[list[str]] = []
    for s in subjects:
        subject = [kind, str(s.id), _cell(s.name), _cell(s.external_id), _bool(s.active)]
        mine = listed.get(s.id)
        if mine:
            lines.extend(subject + entry for entry in mine)
        elif blank:
            lines.append(subject + [""] * (len(CSV_COLUMNS) - len(subject)))
    return lines


def _cell(value: str | None) -> str:
    if not value:
        return ""
    return "'" + value if value[0] in "=+-@\t\r" else value


def _bool(value: bool) -> str:
    return "true" if value else "false"
