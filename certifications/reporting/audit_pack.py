"""The audit pack's content for one scope on one day, read from history: what an inspector is
handed (rendered as PDF and XLSX by `reporting.audit_render`).

A handful of statements whatever the scope: the day's rows of the scope's subjects
(`history.asof.as_of_rows`, narrowed to them), twelve month-end figures for the trend, the
subjects' names, the exemptions standing that day, and the documents on record by then. Every
statement is tenant-scoped: another org's rows never appear.
"""

from __future__ import annotations

import io
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from certifications.assignments.status import add_months
from certifications.catalog.models import Certification
from certifications.directory.models import SUBJECT_MODELS
from certifications.evidence.models import Document
from certifications.evidence.storage import DocumentStore, object_key
from certifications.history.asof import AsOf, as_of_rows, covers, status_counts_as_of
from certifications.history.models import ExemptionPeriod
from certifications.history.scope import ReportScope, resolve_scope
from certifications.vocabulary import COMPLIANT_STATUSES, STATUSES
from tenancy.models import Organization

# Subjects a pack answers within the request; a larger scope is built by a worker job.
SYNC_SUBJECTS = 250


@dataclass
class Figures:
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATUSES, 0))
    exempt: int = 0
    required: int = 0
    compliant: int = 0

    def add(self, status: str, required: bool, exempt: bool, n: int) -> None:
        if exempt:
            self.exempt += n
            return
        self.counts[status] += n
        if required:
            self.required += n
            self.compliant += n if status in COMPLIANT_STATUSES else 0

    @property
    def compliance(self) -> float | None:
        return round(self.compliant / self.required, 4) if self.required else None


@dataclass
class AuditPack:
    org_name: str
    scope: ReportScope
    on: date
    generated_at: datetime
    totals: Figures
    by_certification: list[tuple[str, Figures]]
    trend: list[tuple[date, Figures]]
    members: list[tuple[uuid.UUID, str, str]]  # (id, kind, name)
    certifications: list[tuple[uuid.UUID, str]]
    # (subject id, certification id) -> (status, expires_on, exempt)
    cells: dict[tuple[uuid.UUID, uuid.UUID], tuple[str, date | None, bool]]
    exemptions: list[dict[str, Any]]
    documents: list[dict[str, Any]]


def month_ends(on: date, months: int = 12) -> list[date]:
    """`on` and the same day of each of the previous months (clamped), oldest first."""
    return [add_months(on, -i) for i in range(months - 1, -1, -1)]


def build_audit_pack(
    session: Session,
    org_name: str,
    timezone: str,
    scope: ReportScope,
    when: AsOf,
    now: datetime,
) -> AuditPack:
    subjects = list(scope.subject_ids or [])
    wanted = None if scope.certification_ids is None else set(scope.certification_ids)
    rows = as_of_rows(when, subject_ids=subjects)
    found = session.execute(
        select(
            rows.c.assignment_id,
            rows.c.subject_id,
            rows.c.certification_id,
            rows.c.status,
            rows.c.required,
            rows.c.exempt,
            rows.c.expires_on,
        )
    ).all()
    found = [r for r in found if wanted is None or r.certification_id in wanted]
    names = {r.id: r.name for r in session.execute(_certification_names(found))}
    totals, per_cert = Figures(), {cid: Figures() for cid in names}
    cells = {}
    for r in found:
        totals.add(r.status, bool(r.required), bool(r.exempt), 1)
        per_cert[r.certification_id].add(r.status, bool(r.required), bool(r.exempt), 1)
        cells[(r.subject_id, r.certification_id)] = (r.status, r.expires_on, bool(r.exempt))
    certs = sorted(names.items(), key=lambda kv: (kv[1].lower(), str(kv[0])))
    trend = []
    for day in month_ends(when.on):
        point = Figures()
        for cid, status, required, exempt, n in status_counts_as_of(
            session, AsOf.of(timezone, day), subject_ids=subjects
        ):
            if wanted is None or cid in wanted:
                point.add(status, required, exempt, n)
        trend.append((day, point))
    assignment_ids = [r.assignment_id for r in found]
    return AuditPack(
        org_name=org_name,
        scope=scope,
        on=when.on,
        generated_at=now,
        totals=totals,
        by_certification=[(name, per_cert[cid]) for cid, name in certs],
        trend=trend,
        members=_members(session, subjects),
        certifications=certs,
        cells=cells,
        exemptions=_exemptions(session, when, found, names),
        documents=_documents(session, when, assignment_ids, found, names),
    )


def _certification_names(found: list[Any]) -> Any:
    ids = sorted({r.certification_id for r in found})
    return select(Certification.id, Certification.name).where(Certification.id.in_(ids))


def _members(session: Session, subject_ids: list[uuid.UUID]) -> list[tuple[uuid.UUID, str, str]]:
    """The scope's subjects by name (every kind: a site, its client, later its crew)."""
    out: list[tuple[uuid.UUID, str, str]] = []
    for kind, model in SUBJECT_MODELS.items():
        m: Any = model
        for start in range(0, len(subject_ids), 1000):
            chunk = subject_ids[start : start + 1000]
            out.extend((r.id, kind, r.name) for r in session.execute(
                select(m.id, m.name).where(m.id.in_(chunk))
            ))  # fmt: skip
    return sorted(out, key=lambda m: (m[2].lower(), str(m[0])))


def _exemptions(
    session: Session, when: AsOf, found: list[Any], names: dict[uuid.UUID, str]
) -> list[dict[str, Any]]:
    by_assignment = {r.assignment_id: r for r in found if r.exempt}
    if not by_assignment:
        return []
    x = ExemptionPeriod
    stmt = select(x).where(x.assignment_id.in_(list(by_assignment)), covers(x, when.on))
    out = []
    for e in session.scalars(stmt):
        r = by_assignment[e.assignment_id]
        out.append(
            {
                "subject_id": r.subject_id,
                "certification": names.get(r.certification_id, ""),
                "reason": e.reason or "",
                "since": e.starts_on,
                "until": e.until,
                "by": e.exempt_by or "",
            }
        )
    return out


def _documents(
    session: Session,
    when: AsOf,
    assignment_ids: list[uuid.UUID],
    found: list[Any],
    names: dict[uuid.UUID, str],
) -> list[dict[str, Any]]:
    """Documents on record at the end of the day (uploaded by then, not yet deleted)."""
    by_assignment = {r.assignment_id: r for r in found}
    out = []
    for start in range(0, len(assignment_ids), 1000):
        chunk = assignment_ids[start : start + 1000]
        stmt = (
            select(Document)
            .where(
                Document.assignment_id.in_(chunk),
                Document.created_at < when.cutoff,
                or_(Document.deleted_at.is_(None), Document.deleted_at >= when.cutoff),
            )
            .order_by(Document.created_at, Document.id)
        )
        for d in session.scalars(stmt):
            r = by_assignment[d.assignment_id]
            out.append(
                {
                    "subject_id": r.subject_id,
                    "certification": names.get(r.certification_id, ""),
                    "cycle": d.cycle,
                    "filename": d.filename,
                    "sha256": d.sha256,
                    "size": d.size,
                    "uploaded_at": d.created_at,
                }
            )
    return out


# --- one call: scope → file ---------------------------------------------------------------------

CONTENT_TYPES = {
    "pdf": "application/pdf",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


def filename(scope: ReportScope, on: date, fmt: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in scope.name)[:60] or "scope"
    return f"audit-pack-{scope.kind}-{safe}-{on.isoformat()}.{fmt}"


def render(pack: AuditPack, fmt: str) -> bytes:
    from certifications.reporting import audit_render  # the renderers import fpdf2/XlsxWriter

    return audit_render.render_pdf(pack) if fmt == "pdf" else audit_render.render_xlsx(pack)


def produce_audit_pack(
    session: Session,
    store: DocumentStore,
    org_id: uuid.UUID,
    job_id: uuid.UUID,
    *,
    scope_kind: str,
    scope_id: uuid.UUID,
    on: date,
    fmt: str,
    now: datetime,
) -> dict[str, Any]:
    """The worker's job: build and render the pack, put the file in the document store under
    the job's id (the periodic sweep removes it after about an hour: no document row holds it),
    and return what the download needs. Idempotent: a re-run overwrites the same object."""
    org = session.get(Organization, org_id)
    assert org is not None
    when = AsOf.of(org.timezone, on)
    scope = resolve_scope(session, when, **{f"{scope_kind}_id": scope_id})
    pack = build_audit_pack(session, org.name, org.timezone, scope, when, now)
    data = render(pack, fmt)
    key = object_key(org_id, job_id)
    store.put(key, io.BytesIO(data), CONTENT_TYPES[fmt])
    return {
        "key": key,
        "filename": filename(scope, on, fmt),
        "content_type": CONTENT_TYPES[fmt],
        "size": len(data),
        "download": f"/api/v1/reports/audit-pack/{job_id}",
    }
