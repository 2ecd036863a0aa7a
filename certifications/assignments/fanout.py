"""Role fan-out (SPEC §5): every active employee of a certification's roles holds it.

Set-based: one `INSERT … SELECT … ON CONFLICT DO NOTHING` creates every missing role-sourced
assignment of a change (a certification's roles, or a batch of employees), with
`valid_when_added` applied in the same statement;
removals are one DELETE (unrecorded) and one UPDATE (recorded: no longer required).
A new assignment's first status is stored on the row (`status`, `created_at`); status events
record changes from there on, as the recomputation and every later write do.

Idempotent. Fan-outs of one organization run one at a time (`lock_fanouts`, PostgreSQL): each
reads the links and the directory only after every earlier fan-out of the org has committed, so
the last one to run ends with exactly the membership at its end (see `lock_fanouts`). The
conflict target, the live unique index `(org_id, certification_id, subject_id) WHERE revoked_at
IS NULL`, still makes a duplicate row impossible whatever runs at once.
"""

from __future__ import annotations

import uuid
import zlib
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Date,
    Integer,
    String,
    Uuid,
    and_,
    case,
    delete,
    exists,
    func,
    literal,
    null,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.orm import Session

from certifications.assignments import status as rules
from certifications.assignments.models import Assignment
from certifications.catalog.models import Certification, CertificationRole
from certifications.directory.models import Employee
from certifications.history.periods import close_requirements, record_requirements
from certifications.vocabulary import MISSING, REVOKED
from infra.database import UTCDateTime
from infra.dialect import new_uuid_sql, upsert_insert

# Written on the mapped classes: the session's tenant criteria scopes every statement here.
A = Assignment
E = Employee
CR = CertificationRole

# Bound parameters per statement stay far below PostgreSQL's 65,535 and SQLite's 32,766.
EMPLOYEE_CHUNK = 5_000
# First key of the two-key advisory lock "the role fan-outs of one organization" (the
# certification group tree's is 4_0001).
FANOUT_LOCK_CLASS = 4_0002
# How long a fan-out waits for the org's running one (instead of the statement timeout), kept
# under the job's 15-minute time limit: the longest fan-out measured (100k rows) takes ~15 s.
FANOUT_LOCK_WAIT_MS = 10 * 60_000
# ORM UPDATE/DELETE as plain set-based SQL: no matching of rows to objects in the session.
_CORE_LIKE = {"synchronize_session": False}


def initial_record(cert: Certification, today: date) -> tuple[date | None, date | None, str]:
    """(issued_on, expires_on, status) of a new role assignment of `cert` created today."""
    if not cert.valid_when_added:
        return None, None, MISSING
    expires = rules.compute_expiry(today, cert.validity_months, cert.validity_days)
    status = rules.compute_status(
        revoked=False,
        issued_on=today,
        effective_on=today,
        expires_on=expires,
        forms_required=cert.forms_required,
        form_accepted=False,
        warning_days=cert.warning_days,
        today=today,
    )
    return today, expires, status


def fanout_certification(
    session: Session, org_id: uuid.UUID, certification_id: uuid.UUID, *, today: date, now: datetime
) -> dict[str, int]:
    """Bring one certification's role assignments in line with its roles (after a catalog edit)."""
    lock_fanouts(session, org_id)
    # Retire first: it then scans only the assignments that existed before this change.
    scope = [A.certification_id == certification_id]
    changes = _retire(session, today, now, scope)
    cert = session.get(Certification, certification_id)
    live = [cert] if cert is not None and _fans_out(cert) else []
    created = _insert_missing(session, org_id, live, today, now, employee_ids=None)
    # Requirement history (certifications.history): what now applies, from today.
    record_requirements(session, org_id, today, certification_ids=[certification_id])
    return {"created": created, **changes}


def fanout_employees(
    session: Session,
    org_id: uuid.UUID,
    employee_ids: Sequence[uuid.UUID],
    *,
    today: date,
    now: datetime,
) -> dict[str, int]:
    """Bring these employees' role assignments in line with their role and `active` flag."""
    lock_fanouts(session, org_id)
    report = {"created": 0, "removed": 0, "not_required": 0, "required_again": 0}
    for chunk in _chunks(sorted(set(employee_ids)), EMPLOYEE_CHUNK):
        # subject_type first: the (org, type, subject) index then probes just these employees.
        scope = [A.subject_type == "employee", A.subject_id.in_(chunk)]
        for key, value in _retire(session, today, now, scope).items():
            report[key] += value
        certs = _certifications_for(session, chunk)
        report["created"] += _insert_missing(session, org_id, certs, today, now, employee_ids=chunk)
        record_requirements(session, org_id, today, subject_ids=chunk)
    return report


def lock_fanouts(session: Session, org_id: uuid.UUID) -> None:
    """Wait for the org's running fan-out, then hold off the next one until this transaction ends.

    Without it a certification fan-out's INSERT … SELECT reads the members as of its start: an
    employee moved out or deactivated meanwhile gets a row, and that employee's own fan-out,
    running before this one commits, cannot see the row to retire it (it stayed required
    forever); two fan-outs of one certification likewise left the union of two role sets.
    Serialized, every fan-out takes its snapshots after the previous one committed, and every
    directory or link change commits before its own fan-out is queued, so whichever fan-out runs
    last sees the final links and membership, and every row an earlier one wrote.
    A transaction-level advisory lock per organization (PostgreSQL; SQLite has one writer at a
    time anyway): fan-outs of different orgs still run in parallel. It is taken before the
    fan-out touches any shared row (a job has locked only its own job row by then), so waiting
    on it cannot close a cycle with row locks.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    org_key = zlib.crc32(org_id.bytes) - 2**31  # fits int4
    # The wait is bounded by FANOUT_LOCK_WAIT_MS rather than the statement timeout (a 100k-row
    # fan-out ahead would otherwise fail the waiting job), which is restored right after.
    set_timeout = text("SELECT set_config('statement_timeout', :t, true)")  # SET LOCAL
    timeout = session.execute(text("SELECT current_setting('statement_timeout')")).scalar_one()
    session.execute(set_timeout, {"t": f"{FANOUT_LOCK_WAIT_MS}ms"})
    session.execute(
        text("SELECT pg_advisory_xact_lock(:cls, :obj)"),
        {"cls": FANOUT_LOCK_CLASS, "obj": org_key},
    )
    session.execute(set_timeout, {"t": timeout})


def count_role_members(session: Session, org_id: uuid.UUID, certification_id: uuid.UUID) -> int:
    """Active employees in the certification's roles (the size of a fan-out, for job progress)."""
    stmt = (
        select(func.count())
        .select_from(E)
        .join(CR, and_(CR.org_id == E.org_id, CR.role_id == E.role_id))
        .where(E.active, CR.certification_id == certification_id)
    )
    return int(session.execute(stmt).scalar_one())


def _fans_out(cert: Certification) -> bool:
    return cert.type == "employee" and cert.archived_at is None


def _certifications_for(session: Session, employee_ids: Sequence[uuid.UUID]) -> list[Certification]:
    """The live employee certifications of the roles these employees hold (a few, not rows)."""
    roles = select(E.role_id).where(E.id.in_(employee_ids))
    cert_ids = select(CR.certification_id).where(CR.role_id.in_(roles))
    stmt = select(Certification).where(Certification.id.in_(cert_ids))
    return [c for c in session.scalars(stmt) if _fans_out(c)]


def _insert_missing(
    session: Session,
    org_id: uuid.UUID,
    certs: list[Certification],
    today: date,
    now: datetime,
    *,
    employee_ids: Sequence[uuid.UUID] | None,
) -> int:
    """The one INSERT … SELECT … ON CONFLICT DO NOTHING of a change; returns rows created."""
    if not certs:
        return 0
    initial = {c.id: initial_record(c, today) for c in certs}
    issued = _per_cert(initial, 0, Date())
    expires = _per_cert(initial, 1, Date())
    status = _per_cert(initial, 2, String())
    stamp = literal(now, UTCDateTime())
    dialect = session.get_bind().dialect.name
    rows = (
        select(
            new_uuid_sql(dialect),
            literal(org_id, Uuid()),
            CR.certification_id,
            literal("employee", String()),
            E.id,
            literal("role", String()),
            literal(True, Boolean()),
            literal(1, Integer()),
            issued,
            issued,
            expires,
            status,
            stamp,
            stamp,
            stamp,
        )
        .select_from(E)
        .join(CR, and_(CR.org_id == E.org_id, CR.role_id == E.role_id))
        .where(
            E.active,
            CR.certification_id.in_(list(initial)),
            # A revoked certificate stays the subject's record until someone assigns it anew.
            # NOT IN over the (few) revoked pairs: one hashed pass, whatever the statistics say
            # (a per-employee NOT EXISTS probe degrades to a quadratic plan on fresh tables).
            tuple_(CR.certification_id, E.id).not_in(
                select(A.certification_id, A.subject_id).where(
                    A.certification_id.in_(list(initial)),
                    A.status == REVOKED,  # probes (org, certification, status)
                    A.revoked_at.is_not(None),
                )
            ),
        )
    )
    if employee_ids is not None:
        rows = rows.where(E.id.in_(list(employee_ids)))
    columns = [
        "id",
        "org_id",
        "certification_id",
        "subject_type",
        "subject_id",
        "source",
        "required",
        "cycle",
        "issued_on",
        "effective_on",
        "expires_on",
        "status",
        "status_changed_at",
        "created_at",
        "updated_at",
    ]
    stmt = upsert_insert(dialect, A).from_select(columns, rows, include_defaults=False)
    stmt = stmt.on_conflict_do_nothing(
        index_elements=[A.org_id, A.certification_id, A.subject_id],
        index_where=A.revoked_at.is_(None),
    )
    return _rowcount(session, stmt)


def _rowcount(session: Session, stmt: Any) -> int:
    # SQLAlchemy reports INSERT row counts only when asked to keep them.
    result = session.execute(stmt.execution_options(preserve_rowcount=True))
    return max(result.rowcount or 0, 0)  # type: ignore[attr-defined]


def _retire(
    session: Session, today: date, now: datetime, scope: list[ColumnElement[bool]]
) -> dict[str, int]:
    """Role assignments whose role no longer applies: unrecorded ones go, recorded ones stay
    (history) but stop counting as required; ones whose role applies again count again. The
    requirement periods of the rows that go end today (the caller records the rest)."""
    applies = exists().where(
        E.org_id == A.org_id,
        E.id == A.subject_id,
        E.active,
        CR.org_id == A.org_id,
        CR.certification_id == A.certification_id,
        CR.role_id == E.role_id,
    )
    role_live = [A.source == "role", A.revoked_at.is_(None), *scope]
    removed_ids = session.scalars(
        delete(A).where(*role_live, A.issued_on.is_(None), ~applies).returning(A.id),
        execution_options=_CORE_LIKE,
    ).all()
    close_requirements(session, today, removed_ids)
    unrequired = session.execute(
        update(A)
        .where(*role_live, A.issued_on.is_not(None), A.required, ~applies)
        .values(required=False, updated_at=now),
        execution_options=_CORE_LIKE,
    )
    required_again = session.execute(
        update(A).where(*role_live, ~A.required, applies).values(required=True, updated_at=now),
        execution_options=_CORE_LIKE,
    )
    return {
        "removed": len(removed_ids),
        "not_required": max(unrequired.rowcount or 0, 0),  # type: ignore[attr-defined]
        "required_again": max(required_again.rowcount or 0, 0),  # type: ignore[attr-defined]
    }


def _per_cert(initial: dict[uuid.UUID, tuple[Any, ...]], index: int, type_: Any) -> Any:
    """One value per certification, as a literal or a CASE on the certification id."""
    values = {cid: v[index] for cid, v in initial.items()}
    distinct = set(values.values())
    if len(distinct) == 1:
        (only,) = distinct
        return literal(only, type_) if only is not None else null()
    return case(
        *[(CR.certification_id == cid, literal(v, type_)) for cid, v in values.items()],
        else_=null(),
    )


def _chunks(items: list[uuid.UUID], size: int) -> Iterable[list[uuid.UUID]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
