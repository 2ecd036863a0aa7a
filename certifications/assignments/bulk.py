"""Bulk actions on assignments: a training day, an inspection round or a site closure at once.

`POST /assignments/bulk` assigns, renews or revokes one certification for up to `MAX_SUBJECTS`
subjects with the rules of the single-assignment endpoints, and reports every subject by its
position (`index`), as the directory bulk import does. It costs a bounded number of statements
whatever its size: the certification, the subjects (or their live assignments, locked), then one
set-based statement per kind of write per `IN_CHUNK` ids (PostgreSQL takes each list as one
array), one audit event for the whole request, and one tick request. Rows are plain tuples,
never ORM objects (no flush sees them: the audit event is written explicitly).

Renewal follows single renew: a new cycle closes the current one into `assignment_cycles`
(unique per assignment and cycle) and records a status event; the same dates as the current
cycle change nothing (`unchanged`); an `effective_on` earlier than the current cycle's is that
row's `conflict`. Live assignments are locked (`SELECT … FOR UPDATE`, in id order, so two
overlapping requests queue instead of deadlocking) before they are read.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    Date,
    String,
    and_,
    bindparam,
    case,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from certifications.assignments import equivalence
from certifications.assignments import status as rules
from certifications.assignments.models import Assignment, AssignmentCycle, StatusEvent
from certifications.assignments.recompute import recompute_with_dependents
from certifications.assignments.schedule import request_tick
from certifications.assignments.service import _dates
from certifications.audit import trail as audit
from certifications.automation.models import Notification
from certifications.automation.tasks import close_superseded_tasks
from certifications.catalog.models import Certification
from certifications.directory.models import SUBJECT_MODELS
from certifications.history.periods import record_requirements
from certifications.vocabulary import REVOKED
from infra.context import require_org_id
from infra.dialect import new_uuid_sql, one_of
from infra.errors import Invalid
from tenancy.organizations import org_today_for

MAX_SUBJECTS = 10_000
ACTIONS = ("assign", "renew", "revoke")
# Ids per `IN (...)` list on SQLite (PostgreSQL sends each list as one array parameter).
IN_CHUNK = 5_000
ROW_STATUSES = ("created", "renewed", "revoked", "unchanged", "conflict", "error")


@dataclass(frozen=True)
class Live:
    """A live assignment of the certification, as read (locked) before the writes."""

    id: uuid.UUID
    subject_id: uuid.UUID
    issued_on: date | None
    effective_on: date | None
    expires_on: date | None


@dataclass
class Plan:
    """What the request will do: row results so far, and the ids each write applies to."""

    results: dict[int, dict[str, Any]]
    write_ids: list[uuid.UUID]  # assignment ids to renew/revoke, or subject ids to assign


def bulk_assignments(
    session: Session, data: dict[str, Any], *, atomic: bool, actor: str, now: datetime
) -> dict[str, Any]:
    """Apply `data["action"]` to every subject of `data["subject_ids"]`; the per-row report.

    With `atomic`, any refused row raises `Invalid` carrying the report and nothing is written.
    """
    org_id = require_org_id()
    cert = _certification(session, data)
    today = org_today_for(session, org_id, now)
    action = data["action"]
    results: dict[int, dict[str, Any]] = {}
    subjects = _unique_subjects(data["subject_ids"], results)
    if action == "assign":
        plan = _plan_assign(session, cert, subjects, results)
    else:
        plan = _plan_change(session, cert, subjects, results, action, data, today)
    refused = [r for r in results.values() if r["status"] in ("conflict", "error")]
    if atomic and refused:
        errors = {str(r["index"]): r["errors"] for r in refused}
        raise Invalid(
            {"subject_ids": errors, "report": _report(action, results)},
            f"{len(refused)} subject(s) refused; nothing was written (atomic=true).",
        )
    if plan.write_ids:
        if action == "assign":
            _assign(session, org_id, cert, plan, data, today, actor=actor, now=now)
        elif action == "renew":
            _renew(session, org_id, cert, plan.write_ids, data, today, actor=actor, now=now)
        else:
            _revoke(session, org_id, plan.write_ids, data["reason"], today, actor=actor, now=now)
        _follow_equivalences(session, org_id, cert, action, plan, today, now)
        request_tick(session)
    report = _report(action, results)
    if plan.write_ids:  # one event for the request, as the directory bulk import records
        audit.record(session, f"bulk_{action}", "assignment", after=_audit_summary(cert, report))
    return report


def _follow_equivalences(
    session: Session,
    org_id: uuid.UUID,
    cert: Certification,
    action: str,
    plan: Plan,
    today: date,
    now: datetime,
) -> None:
    """With equivalences in the org, the written rows take their providers' status (when
    `cert` has `satisfied_by`) and the rows they provide for follow them (set-based)."""
    if not equivalence.dependent_certification_ids(session):
        return
    if action == "assign":
        written = [r["assignment_id"] for r in plan.results.values() if "assignment_id" in r]
    else:
        written = list(plan.write_ids)
    recompute_with_dependents(session, org_id, today, written, now=now)


# --- planning ---------------------------------------------------------------------------------


def _certification(session: Session, data: dict[str, Any]) -> Certification:
    cert = session.get(Certification, data["certification_id"])
    if cert is None:
        raise Invalid({"certification_id": ["No certification with this id."]})
    if data["action"] == "assign" and cert.archived_at is not None:
        raise Invalid({"certification_id": ["This certification is archived."]})
    if data["subject_type"] != cert.type:
        raise Invalid({"subject_type": [f"This certification applies to {cert.type}s."]})
    return cert


def _unique_subjects(
    subject_ids: list[uuid.UUID], results: dict[int, dict[str, Any]]
) -> list[tuple[int, uuid.UUID]]:
    first: dict[uuid.UUID, int] = {}
    kept = []
    for index, subject_id in enumerate(subject_ids):
        seen = first.setdefault(subject_id, index)
        if seen != index:
            results[index] = _refused(
                index, subject_id, "error", f"Duplicate of subject {seen} in this request."
            )
        else:
            kept.append((index, subject_id))
    return kept


def _plan_assign(
    session: Session,
    cert: Certification,
    subjects: list[tuple[int, uuid.UUID]],
    results: dict[int, dict[str, Any]],
) -> Plan:
    table: Any = SUBJECT_MODELS[cert.type]
    ids = [s for _, s in subjects]
    active: dict[uuid.UUID, bool] = {}
    held: dict[uuid.UUID, uuid.UUID] = {}
    a = Assignment
    for chunk in _chunks(session, ids):
        active.update(
            session.execute(
                select(table.id, table.active).where(one_of(session, table.id, chunk))
            ).all()
        )
        held.update(
            session.execute(
                select(a.subject_id, a.id).where(
                    a.certification_id == cert.id,
                    a.revoked_at.is_(None),
                    one_of(session, a.subject_id, chunk),
                )
            ).all()
        )
    planned = []
    for index, subject_id in subjects:
        if subject_id not in active:
            results[index] = _refused(index, subject_id, "error", f"No {cert.type} with this id.")
        elif not active[subject_id]:
            results[index] = _refused(
                index, subject_id, "conflict", f"This {cert.type} is inactive."
            )
        elif subject_id in held:
            results[index] = _refused(
                index,
                subject_id,
                "conflict",
                "Already holds a live assignment of this certification.",
                assignment_id=held[subject_id],
            )
        else:
            results[index] = {"index": index, "subject_id": subject_id, "status": "created"}
            planned.append(subject_id)
    return Plan(results, planned)


def _plan_change(
    session: Session,
    cert: Certification,
    subjects: list[tuple[int, uuid.UUID]],
    results: dict[int, dict[str, Any]],
    action: str,
    data: dict[str, Any],
    today: date,
) -> Plan:
    live = _lock_live(session, cert.id, [s for _, s in subjects])
    new_dates = _renewal_dates(cert, data, today) if action == "renew" else None
    write = []
    for index, subject_id in subjects:
        found = live.get(subject_id)
        if found is None:
            results[index] = _refused(
                index, subject_id, "error", "No live assignment of this certification."
            )
            continue
        row = {"index": index, "subject_id": subject_id, "assignment_id": found.id}
        if new_dates is not None:
            current = (found.issued_on, found.effective_on, found.expires_on)
            current_start = found.effective_on or found.issued_on
            if new_dates == current:
                results[index] = row | {"status": "unchanged"}
                continue
            if current_start is not None and new_dates[1] is not None:
                if new_dates[1] < current_start:
                    results[index] = _refused(
                        index,
                        subject_id,
                        "conflict",
                        f"effective_on {new_dates[1]} is before the current cycle's "
                        f"({current_start}, issued {found.issued_on}, expires "
                        f"{found.expires_on}); correct that cycle with PATCH "
                        f"/assignments/{found.id} instead.",
                        assignment_id=found.id,
                        field="effective_on",
                    )
                    continue
        results[index] = row | {"status": "renewed" if action == "renew" else "revoked"}
        write.append(found.id)
    return Plan(results, write)


def _renewal_dates(
    cert: Certification, data: dict[str, Any], today: date
) -> tuple[date | None, date | None, date | None]:
    return _checked_dates(cert, data.get("issued_on") or today, data)


def _checked_dates(
    cert: Certification, issued: date | None, data: dict[str, Any]
) -> tuple[date | None, date | None, date | None]:
    """`service._dates`, refusing an `effective_on` before the (possibly defaulted) issue date."""
    effective = data.get("effective_on")
    if issued is not None and effective is not None and effective < issued:
        raise Invalid({"effective_on": [f"Must not be before issued_on ({issued})."]})
    return _dates(cert, issued, effective, data.get("expires_on"))


def _lock_live(
    session: Session, certification_id: uuid.UUID, subject_ids: list[uuid.UUID]
) -> dict[uuid.UUID, Live]:
    """The live assignments of these subjects, locked until commit (in id order)."""
    a = Assignment
    if session.get_bind().dialect.name == "sqlite":
        # No row locks on SQLite: a no-op write takes its database write lock first, as
        # `service.lock_assignment` does, so concurrent writers take turns.
        session.execute(
            update(Certification)
            .where(Certification.id == certification_id)
            .values(updated_at=Certification.updated_at),
            execution_options={"synchronize_session": False},
        )
    found: dict[uuid.UUID, Live] = {}
    for chunk in _chunks(session, subject_ids):
        rows = session.execute(
            select(a.id, a.subject_id, a.issued_on, a.effective_on, a.expires_on)
            .where(
                a.certification_id == certification_id,
                a.revoked_at.is_(None),
                one_of(session, a.subject_id, chunk),
            )
            .order_by(a.id)
            .with_for_update()
        )
        for row in rows:
            found[row.subject_id] = Live(*row)
    return found


# --- writes -----------------------------------------------------------------------------------


def _assign(
    session: Session,
    org_id: uuid.UUID,
    cert: Certification,
    plan: Plan,
    data: dict[str, Any],
    today: date,
    *,
    actor: str,
    now: datetime,
) -> None:
    """One INSERT per chunk; a live assignment created meanwhile makes that row a conflict."""
    issued = data.get("issued_on")
    if issued is None and cert.valid_when_added:
        issued = today
    issued, effective, expires = _checked_dates(cert, issued, data)
    shape = _Row(issued, effective, expires)
    status = rules.assignment_status(shape, cert, today)
    constants = {
        "org_id": org_id,
        "certification_id": cert.id,
        "subject_type": cert.type,
        "source": "manual",
        "required": True,
        "cycle": 1,
        "issued_on": issued,
        "effective_on": effective,
        "expires_on": expires,
        "expires_explicit": data.get("expires_on") is not None,
        "notes": data.get("notes"),
        "status": status,
        "status_changed_at": now,
        "created_by": actor,
        "cycle_recorded_by": actor,
        "created_at": now,
        "updated_at": now,
        # Required from today: the open requirement period (certifications.history.periods).
        "counted_since": today,
        "counted_required": True,
    }
    created: dict[uuid.UUID, uuid.UUID] = {}
    for chunk in _chunks(session, plan.write_ids):
        pairs = [(uuid.uuid4(), subject_id) for subject_id in chunk]
        created.update(_insert_assignments(session, Assignment, constants, pairs))
    # Requirement history: one pass over the certification's rows, whatever the chunks.
    record_requirements(session, org_id, today, certification_ids=[cert.id])
    for result in plan.results.values():
        if result["status"] != "created":
            continue
        assignment_id = created.get(result["subject_id"])
        if assignment_id is None:  # a concurrent request assigned it since our read
            plan.results[result["index"]] = _refused(
                result["index"],
                result["subject_id"],
                "conflict",
                "Already holds a live assignment of this certification.",
            )
        else:
            result["assignment_id"] = assignment_id


def _insert_assignments(
    session: Session,
    a: Any,
    constants: dict[str, Any],
    pairs: list[tuple[uuid.UUID, uuid.UUID]],
) -> dict[uuid.UUID, uuid.UUID]:
    """INSERT … ON CONFLICT (the live slot) DO NOTHING RETURNING subject_id, id (every row
    carries the tenant's `org_id`, which the tenant guard checks)."""
    a = a.__table__
    live_slot = {
        "index_elements": [a.c.org_id, a.c.certification_id, a.c.subject_id],
        "index_where": a.c.revoked_at.is_(None),
    }
    if session.get_bind().dialect.name == "postgresql":
        # Two arrays unnest into the INSERT: one short statement for 10,000 rows.
        rows = (
            func.unnest(
                bindparam("b_ids", [p[0] for p in pairs], type_=ARRAY(a.c.id.type)),
                bindparam("b_subjects", [p[1] for p in pairs], type_=ARRAY(a.c.subject_id.type)),
            )
            .table_valued("id", "subject_id")
            .render_derived(name="rows")
        )
        names = list(constants)
        source = select(
            rows.c.id, rows.c.subject_id, *(literal(constants[n], a.c[n].type) for n in names)
        )
        pg = (
            postgresql.insert(a)
            .from_select(["id", "subject_id", *names], source)
            .on_conflict_do_nothing(**live_slot)
            .returning(a.c.subject_id, a.c.id)
        )
        return {row[0]: row[1] for row in session.execute(pg)}
    lite = sqlite.insert(a).on_conflict_do_nothing(**live_slot).returning(a.c.subject_id, a.c.id)
    params = [constants | {"id": i, "subject_id": s} for i, s in pairs]
    return {row[0]: row[1] for row in session.execute(lite, params)}


def _renew(
    session: Session,
    org_id: uuid.UUID,
    cert: Certification,
    ids: list[uuid.UUID],
    data: dict[str, Any],
    today: date,
    *,
    actor: str,
    now: datetime,
) -> None:
    """Close the current cycles, record the events, start the new cycles: 3 statements."""
    issued, effective, expires = _renewal_dates(cert, data, today)
    status = rules.assignment_status(_Row(issued, effective, expires), cert, today)
    a = Assignment
    c = AssignmentCycle
    new_id = new_uuid_sql(session.get_bind().dialect.name)
    values: dict[str, Any] = {
        "cycle": a.cycle + 1,
        "issued_on": issued,
        "effective_on": effective,
        "expires_on": expires,
        "expires_explicit": data.get("expires_on") is not None,
        "form_accepted_at": None,  # a new cycle needs its own accepted form
        "cycle_recorded_by": actor,
        "status": status,
        "status_changed_at": case((a.status != status, now), else_=a.status_changed_at),
        "updated_at": now,
    }
    if "notes" in data:
        values["notes"] = data["notes"]
    for chunk in _chunks(session, ids):
        mine = one_of(session, a.id, chunk)
        session.execute(
            insert(c).from_select(
                [
                    "id",
                    "org_id",
                    "assignment_id",
                    "cycle",
                    "issued_on",
                    "effective_on",
                    "expires_on",
                    "notes",
                    "recorded_by",
                    "created_at",
                    "closed_at",
                ],
                select(
                    new_id,
                    a.org_id,
                    a.id,
                    a.cycle,
                    a.issued_on,
                    a.effective_on,
                    a.expires_on,
                    a.notes,
                    a.cycle_recorded_by,
                    a.updated_at,
                    literal(now, AssignmentCycle.__table__.c.closed_at.type),
                ).where(mine),
            )
        )
        _record_events(session, a, mine, a.cycle + 1, status, today, now)
        session.execute(
            update(a).where(mine).values(**values),
            execution_options={"synchronize_session": False},
        )
    close_superseded_tasks(session, org_id, now)
    _cancel_superseded_reminders(session, org_id, ids, now)


def _revoke(
    session: Session,
    org_id: uuid.UUID,
    ids: list[uuid.UUID],
    reason: str,
    today: date,
    *,
    actor: str,
    now: datetime,
) -> None:
    a = Assignment
    for chunk in _chunks(session, ids):
        mine = one_of(session, a.id, chunk)
        _record_events(session, a, and_(mine, a.status != REVOKED), a.cycle, REVOKED, today, now)
        session.execute(
            update(a)
            .where(mine)
            .values(
                revoked_at=now,
                revoked_reason=reason,
                revoked_by=actor,
                status=REVOKED,
                status_changed_at=case((a.status != REVOKED, now), else_=a.status_changed_at),
                updated_at=now,
            ),
            execution_options={"synchronize_session": False},
        )
    close_superseded_tasks(session, org_id, now)


def _record_events(
    session: Session, a: Any, where: Any, cycle: Any, status: str, today: date, now: datetime
) -> None:
    e = StatusEvent
    new_id = new_uuid_sql(session.get_bind().dialect.name)
    session.execute(
        insert(e).from_select(
            [
                "id",
                "org_id",
                "assignment_id",
                "cycle",
                "from_status",
                "to_status",
                "on_date",
                "created_at",
            ],
            select(
                new_id,
                a.org_id,
                a.id,
                cycle,
                a.status,
                literal(status, String(16)),
                literal(today, Date()),
                literal(now, StatusEvent.__table__.c.created_at.type),
            ).where(where),
        )
    )


def _cancel_superseded_reminders(
    session: Session, org_id: uuid.UUID, ids: list[uuid.UUID], now: datetime
) -> None:
    """Unsent reminders of the cycles just closed are never sent (as the tick would decide)."""
    n = Notification
    a = Assignment
    current = select(a.cycle).where(a.org_id == n.org_id, a.id == n.assignment_id).scalar_subquery()
    for chunk in _chunks(session, ids):
        session.execute(
            update(n)
            .where(
                one_of(session, n.assignment_id, chunk),
                n.status == "pending",
                n.cycle < current,
            )
            .values(status="cancelled", last_error="superseded by a renewal", updated_at=now),
            execution_options={"synchronize_session": False},
        )


# --- plumbing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Row:
    """The fields `status.assignment_status` reads, for a new cycle (no form accepted yet)."""

    issued_on: date | None
    effective_on: date | None
    expires_on: date | None
    revoked_at: datetime | None = None
    form_accepted_at: datetime | None = None


def _chunks(session: Session, values: list[uuid.UUID]) -> Iterator[list[uuid.UUID]]:
    if not values:
        return
    size = len(values) if session.get_bind().dialect.name == "postgresql" else IN_CHUNK
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _refused(
    index: int,
    subject_id: uuid.UUID,
    status: str,
    message: str,
    *,
    assignment_id: uuid.UUID | None = None,
    field: str = "subject_id",
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "index": index,
        "subject_id": subject_id,
        "status": status,
        "errors": {field: [message]},
        "message": f"{field}: {message}",
    }
    if assignment_id is not None:
        row["assignment_id"] = assignment_id
    return row


def _report(action: str, results: dict[int, dict[str, Any]]) -> dict[str, Any]:
    counts = dict.fromkeys(ROW_STATUSES, 0)
    rows = []
    for index in sorted(results):
        counts[results[index]["status"]] += 1
        rows.append(_plain(results[index]))
    return {"action": action, "counts": counts, "rows": rows}


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    return {k: str(v) if isinstance(v, uuid.UUID) else v for k, v in row.items()}


def _audit_summary(cert: Certification, report: dict[str, Any]) -> dict[str, Any]:
    """One audit event per request: what changed, by assignment id, and what was refused."""
    changed = [r["assignment_id"] for r in report["rows"] if r["status"] in _CHANGED]
    return {
        "certification_id": str(cert.id),
        "counts": report["counts"],
        "assignment_ids": changed,
    }


_CHANGED = ("created", "renewed", "revoked")
