"""CSV export of a subject view: one line per subject per listed certification."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from certifications.reporting.subjects import SubjectRow, ViewFilters, narrows_certifications

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


def csv_lines(kind: str, rows: Iterable[SubjectRow], f: ViewFilters) -> Iterable[list[str]]:
    """One line per subject per listed certification (a subject without any: one blank line,
    unless a filter asked for certifications). Text that a spreadsheet would run as a formula
    is prefixed with `'`."""
    for r in rows:
        subject = [kind, str(r.id), _cell(r.name), _cell(r.external_id), _bool(r.active)]
        if not r.certifications:
            if not narrows_certifications(kind, f):
                yield subject + [""] * (len(CSV_COLUMNS) - len(subject))
            continue
        for c in r.certifications:
            yield subject + [
                str(c["certification_id"]),
                _cell(c["name"]),
                c["status"],
                _bool(c["required"]),
                _date(c["issued_on"]),
                _date(c["effective_on"]),
                _date(c["expires_on"]),
                str(c["assignment_id"]),
                _bool(c["exempt"]),
            ]


def _cell(value: str | None) -> str:
    if not value:
        return ""
    return "'" + value if value[0] in "=+-@\t\r" else value


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _date(value: date | None) -> str:
    return value.isoformat() if value else ""
