"""The file a scheduled report sends: an audit pack (PDF or XLSX, `audit_pack`) or a compliance
summary (CSV: per certification, then the total; org-wide or over one scope)."""

from __future__ import annotations

import csv
import io
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy.orm import Session

from certifications.history.asof import AsOf
from certifications.history.scope import ReportScope, resolve_scope
from certifications.reporting.audit_pack import CONTENT_TYPES, build_audit_pack, filename, render
from certifications.reporting.compliance import compliance_summary
from certifications.vocabulary import STATUSES

SUMMARY_COLUMNS = (
    "scope",
    "certification",
    *STATUSES,
    "required",
    "compliant",
    "compliance",
    "exempt",
)
CSV_TYPE = "text/csv; charset=utf-8"


@dataclass(frozen=True)
class ReportFile:
    filename: str
    content_type: str
    data: bytes
    scope_name: str


def report_file(
    session: Session,
    *,
    org_name: str,
    timezone: str,
    kind: str,
    fmt: str,
    scope_kind: str | None,
    scope_id: uuid.UUID | None,
    on: date,
    now: datetime,
) -> ReportFile:
    """Build the report of day `on` (tenant-scoped reads only: no other org's rows)."""
    when = AsOf.of(timezone, on)
    scope = None
    if scope_kind is not None:
        scope = resolve_scope(session, when, **{f"{scope_kind}_id": scope_id})
    if kind == "audit-pack":
        assert scope is not None  # noqa: S101 - the schedule's checks require one
        pack = build_audit_pack(session, org_name, timezone, scope, when, now)
        return ReportFile(
            filename(scope, on, fmt), CONTENT_TYPES[fmt], render(pack, fmt), scope.name
        )
    rows = _scope_rows(session, org_name, timezone, scope, when, now) if scope else None
    if rows is None:
        rows = _org_rows(session, org_name, when)
    name = scope.name if scope else org_name
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in name)[:60] or "org"
    return ReportFile(f"summary-{safe}-{on.isoformat()}.csv", CSV_TYPE, _csv(rows), name)


def _org_rows(session: Session, org_name: str, when: AsOf) -> list[list[Any]]:
    summary = compliance_summary(session, False, when)
    certs = sorted(summary["certifications"], key=lambda c: (c["name"].lower(), str(c["name"])))
    rows = [_row(org_name, c["name"], c) for c in certs]
    rows.append(_row(org_name, "Total", summary["totals"]))
    return rows


def _scope_rows(
    session: Session,
    org_name: str,
    timezone: str,
    scope: ReportScope,
    when: AsOf,
    now: datetime,
) -> list[list[Any]]:
    pack = build_audit_pack(session, org_name, timezone, scope, when, now)

    def figures(f: Any) -> dict[str, Any]:
        return {
            "counts": f.counts,
            "required": f.required,
            "compliant": f.compliant,
            "compliance": f.compliance,
            "exempt": f.exempt,
        }

    rows = [_row(scope.name, name, figures(f)) for name, f in pack.by_certification]
    rows.append(_row(scope.name, "Total", figures(pack.totals)))
    return rows


def _row(scope: str, certification: str, f: dict[str, Any]) -> list[Any]:
    share = f["compliance"]
    return [
        _cell(scope),
        _cell(certification),
        *(f["counts"].get(s, 0) for s in STATUSES),
        f["required"],
        f["compliant"],
        "" if share is None else f"{share:.4f}",
        f["exempt"],
    ]


def _csv(rows: list[list[Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(SUMMARY_COLUMNS)
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


def _cell(value: str) -> str:
    """A name a spreadsheet would run as a formula is written as text (a leading quote)."""
    return "'" + value if value and value[0] in "=+-@\t\r" else value
