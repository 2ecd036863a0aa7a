"""CSV export of a subject view: one line per subject per listed certification, streamed.

One ordered statement (the view's subjects, outer-joined to the rows it lists) read through a
server-side cursor in partitions of `ROWS_PER_PAGE`: memory stays flat whatever the view's size,
and the database sorts once instead of answering a statement per page of subjects.

On PostgreSQL the database writes each CSV line itself (`_line_sql`: the same quoting as
Python's `csv` module, formula prefix, `true`/`false`, ISO days), so the app only joins strings:
per line there is one text cell to fetch, not thirteen values to convert and re-encode. SQLite
returns the values and `csv.writer` writes them; a test keeps the two byte-identical.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

from sqlalchemy import ColumnElement, String, Subquery, and_, case, cast, func, literal, select
from sqlalchemy.orm import Session

from certifications.assignments.models import Assignment
from certifications.catalog.models import Certification
from certifications.directory.models import SUBJECT_MODELS
from certifications.reporting.subjects import (
    ViewFilters,
    certification_conditions,
    narrows_certifications,
    subject_query,
)
from tenancy.keys import tenant_join

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
# Rows fetched per round trip from the server-side cursor (~400 KB of CSV).
ROWS_PER_PAGE = 2_000
# A spreadsheet runs a cell starting with one of these as a formula: such text gets a `'`.
FORMULA_STARTS = "=+-@\t\r"


def csv_chunks(session: Session, kind: str, f: ViewFilters) -> Iterator[str]:
    """The CSV text of the whole filtered view: the header, then one chunk per page.

    Text that a spreadsheet would run as a formula is prefixed with `'`.
    """
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    yield buf.getvalue()
    if session.get_bind().dialect.name == "postgresql":
        yield from _lines_from_sql(session, kind, f)
        return
    for lines in _lines_in_python(session, kind, f):
        buf.seek(0)
        buf.truncate()
        writer.writerows(lines)
        yield buf.getvalue()


def _export_rows(kind: str, f: ViewFilters) -> tuple[Subquery, Subquery, bool]:
    """(the view's subjects, the rows it lists, whether a subject without rows gets a blank
    line): the two sides of the export's one join."""
    model: Any = SUBJECT_MODELS[kind]
    # Narrowing views: the inner join keeps only subjects holding a matching row.
    stmt, _keys = subject_query(kind, f, require_match=False)
    subjects = stmt.with_only_columns(
        model.org_id, model.id, model.name, model.external_id, model.active
    ).subquery("listed")
    a, c = Assignment, Certification
    held = (
        select(
            a.org_id,
            a.subject_id,
            a.certification_id,
            c.name.label("certification_name"),
            a.status,
            a.required,
            a.issued_on,
            a.effective_on,
            a.expires_on,
            a.id.label("assignment_id"),
            a.exempt_at.is_not(None).label("exempt"),
        )
        .join(c, tenant_join(c, a, "certification_id"))
        .where(*certification_conditions(kind, f))
    )
    if f.status:
        held = held.where(a.status.in_(f.status))
    return subjects, held.subquery("held"), not narrows_certifications(kind, f)


def _ordered(columns: list[Any], subjects: Subquery, rows: Subquery, blank: bool) -> Any:
    return (
        select(*columns)
        .select_from(subjects)
        .join(
            rows,
            and_(rows.c.org_id == subjects.c.org_id, rows.c.subject_id == subjects.c.id),
            isouter=blank,
        )
        .order_by(
            subjects.c.name,
            subjects.c.id,
            rows.c.certification_name,
            rows.c.certification_id,
            rows.c.assignment_id,
        )
        .execution_options(yield_per=ROWS_PER_PAGE)
    )


# --- PostgreSQL: the database writes the lines ---------------------------------------------------


def _quoted(text: ColumnElement[Any]) -> ColumnElement[Any]:
    """`csv.QUOTE_MINIMAL`: quoted (inner quotes doubled) when holding `"`, `,`, CR or LF."""
    return case(
        (text.regexp_match('[",\r\n]'), '"' + func.replace(text, '"', '""', type_=String) + '"'),
        else_=text,
    )


def _cell_sql(value: Any) -> ColumnElement[Any]:
    """`_cell` in SQL: empty for NULL or '', a formula-looking text prefixed with `'`."""
    starts = func.left(value, 1).in_(list(FORMULA_STARTS))
    return _quoted(
        case((value.is_(None), ""), (starts, "'" + value), else_=func.coalesce(value, ""))
    )


def _flag_sql(value: Any) -> ColumnElement[Any]:
    return case((value.is_(True), "true"), (value.is_(False), "false"), else_="")


def _text_sql(value: Any) -> ColumnElement[Any]:
    return func.coalesce(cast(value, String), "")


def _day_sql(value: Any) -> ColumnElement[Any]:
    return func.coalesce(func.to_char(value, "YYYY-MM-DD"), "")


def _line_sql(kind: str, s: Subquery, r: Subquery) -> ColumnElement[Any]:
    """The whole CSV line of one row, terminator included (every cell is '' when the subject
    has no row: the outer join's NULLs)."""
    cells = [
        literal(kind),
        cast(s.c.id, String),
        _cell_sql(s.c.name),
        _cell_sql(s.c.external_id),
        _flag_sql(s.c.active),
        _text_sql(r.c.certification_id),
        case((r.c.assignment_id.is_(None), ""), else_=_cell_sql(r.c.certification_name)),
        func.coalesce(r.c.status, ""),
        _flag_sql(r.c.required),
        _day_sql(r.c.issued_on),
        _day_sql(r.c.effective_on),
        _day_sql(r.c.expires_on),
        _text_sql(r.c.assignment_id),
        _flag_sql(r.c.exempt),
    ]
    return func.concat_ws(",", *cells, type_=String) + "\r\n"


def _lines_from_sql(session: Session, kind: str, f: ViewFilters) -> Iterator[str]:
    subjects, rows, blank = _export_rows(kind, f)
    query = _ordered([_line_sql(kind, subjects, rows)], subjects, rows, blank)
    for partition in session.execute(query).scalars().partitions():
        yield "".join(partition)


# --- SQLite: Python writes them ------------------------------------------------------------------


def _lines_in_python(session: Session, kind: str, f: ViewFilters) -> Iterator[list[list[str]]]:
    subjects, r, blank = _export_rows(kind, f)
    s = subjects.c
    columns = [s.id, s.name, s.external_id, s.active, *[r.c[name] for name in _ROW_COLUMNS]]
    query = _ordered(columns, subjects, r, blank)
    subject: list[str] = []
    last: Any = None
    for partition in session.execute(query).partitions():
        lines: list[list[str]] = []
        for (
            sid,
            name,
            ext,
            active,
            cid,
            cname,
            status,
            req,
            iss,
            eff,
            exp,
            aid,
            exempt,
        ) in partition:
            if sid != last:
                last = sid
                subject = [kind, str(sid), _cell(name), _cell(ext), _bool(active)]
            if aid is None:  # a subject without rows (outer join): one blank line
                lines.append(subject + [""] * (len(CSV_COLUMNS) - len(subject)))
                continue
            lines.append(
                subject
                + [
                    str(cid),
                    _cell(cname),
                    status,
                    _bool(req),
                    iss.isoformat() if iss else "",
                    eff.isoformat() if eff else "",
                    exp.isoformat() if exp else "",
                    str(aid),
                    _bool(exempt),
                ]
            )
        yield lines


_ROW_COLUMNS = (
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


def _cell(value: str | None) -> str:
    if not value:
        return ""
    return "'" + value if value[0] in FORMULA_STARTS else value


def _bool(value: bool) -> str:
    return "true" if value else "false"
