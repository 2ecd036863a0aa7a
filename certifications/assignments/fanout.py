"""Requirement fan-out (SPEC §5, issue 15): every subject a source requires holds the
certification.

Sources (roles, dated memberships of clients and sites, asset categories and locations, linked
clients and locations, `applies_to_all`) are one SQL union (`assignments.requirements`).
Set-based: one `INSERT … SELECT … ON CONFLICT DO NOTHING` creates every missing rule-made
assignment of a change (a certification's sources, or a batch of subjects), with
`valid_when_added` applied in the same statement; removals are one DELETE (unrecorded) and one
UPDATE (recorded: no longer required, what automation queued for them withdrawn).
A new assignment's first status is stored on the row (`status`, `created_at`); status events
record changes from there on, as the recomputation and every later write do. Rule-made rows keep
`source = 'role'` (the stored value predates other sources); `sources` on the API says why.

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
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Date,
    Integer,
    String,
    Uuid,
    case,
    delete,
    false,
    func,
    literal,
    null,
    or_,
    select,
    text,
    true,
    tuple_,
    update,
)
from sqlalchemy.orm import Session

from certifications.assignments import status as rules
from certifications.assignments.models import Assignment
from certifications.assignments.requirements import (
    Scope,
    live_certifications,
    required_pairs,
    scope_of,
)
from certifications.automation.withdraw import withdraw
from certifications.catalog.models import Certification
from certifications.directory.models import Membership
from certifications.history.periods import close_requirements, record_requirements
from certifications.vocabulary import MISSING, REVOKED
from infra.database import UTCDateTime
from infra.dialect import new_uuid_sql, upsert_insert

# Written on the mapped classes: the session's tenant criteria scopes every statement here.
A = Assignment

# Bound parameters per statement stay below PostgreSQL's 65,535 and SQLite's 32,766: each of
# the requirement union's branches (up to 11) repeats the chunk's subject ids.
EMPLOYEE_CHUNK = 2_000
# First key of the two-key advisory lock "the role fan-outs of one organization" (the
# certification group tree's is 4_0001).
FANOUT_LOCK_CLASS = 4_0002
# How long a fan-out waits for the org's running one (instead of the statement timeout), kept
# under the job's 15-minute time limit: the longest fan-out measured (100k rows) takes ~15 s.
FANOUT_LOCK_WAIT_MS = 10 * 60_000
# The tick re-evaluates the members whose membership started or ended within this many days:
# a tick that ran at least once a week misses no date boundary (see docs/decisions.md).
MEMBERSHIP_WINDOW_DAYS = 7
# ORM UPDATE/DELETE as plain set-based SQL: no matching of rows to objects in the session.
_CORE_LIKE = {"synchronize_session": False}


def initial_record(cert: Certification, today: date) -> tuple[date | None, date | None, str]:
    """(issued_on, expires_on, status) of a new rule-made assignment of `cert` created today."""
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
    """Bring one certification's assignments in line with its sources (after a catalog edit)."""
    lock_fanouts(session, org_id)
    # Archived ones keep what their sources require; they only stop creating new rows.
    certs = live_certifications(session, [certification_id], archived=True)
    # Retire first: it then scans only the assignments that existed before this change.
    scope = scope_of(certs, None)
    changes = _retire(session, org_id, now, today, scope, [A.certification_id == certification_id])
    live = [c for c in certs if c.archived_at is None]
    created = _insert_missing(session, org_id, live, today, now, subject_ids=None)
    # Requirement history (certifications.history): what now applies, from today.
    record_requirements(session, org_id, today, certification_ids=[certification_id])
    return {"created": created, **changes}


def fanout_subjects(
    session: Session,
    org_id: uuid.UUID,
    subject_ids: Sequence[uuid.UUID],
    *,
    today: date,
    now: datetime,
) -> dict[str, int]:
    """Bring these subjects' rule-made assignments in line with every source that applies to
    them today (roles, memberships, category, location, client, `applies_to_all`)."""
    lock_fanouts(session, org_id)
    report = {"created": 0, "removed": 0, "not_required": 0, "required_again": 0}
    certs = live_certifications(session, None, archived=True)
    live = [c for c in certs if c.archived_at is None]
    for chunk in _chunks(sorted(set(subject_ids)), EMPLOYEE_CHUNK):
        # subject_ids also probe the (org, type, subject) index through the scope's branches.
        scope = scope_of(certs, chunk)
        retired = _retire(session, org_id, now, today, scope, [A.subject_id.in_(chunk)])
        for key, value in retired.items():
            report[key] += value
        report["created"] += _insert_missing(session, org_id, live, today, now, subject_ids=chunk)
        record_requirements(session, org_id, today, subject_ids=chunk)
    return report


# The employee fan-out is the subject fan-out (kept under its old name for callers).
fanout_employees = fanout_subjects


def membership_boundaries(session: Session, today: date) -> list[uuid.UUID]:
    """Employees whose membership started or ended (the day after `ends_on`) within the last
    `MEMBERSHIP_WINDOW_DAYS` days up to `today`: the tick re-evaluates them."""
    since = today - timedelta(days=MEMBERSHIP_WINDOW_DAYS)
    m = Membership
    stmt = (
        select(m.employee_id)
        .where(
            or_(
                m.starts_on.between(since, today),
                m.ends_on.between(since - timedelta(days=1), today - timedelta(days=1)),
            )
        )
        .distinct()
    )
    return list(session.scalars(stmt))


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


def count_role_members(
    session: Session, org_id: uuid.UUID, certification_id: uuid.UUID, today: date
) -> int:
    """The (certification, subject, source) rows its sources give today: the size of a fan-out,
    for job progress (a subject two sources require counts twice)."""
    certs = live_certifications(session, [certification_id])
    required = required_pairs(org_id, scope_of(certs, None), today)
    if required is None:
        return 0
    return int(session.execute(select(func.count()).select_from(required)).scalar_one())


def _insert_missing(
    session: Session,
    org_id: uuid.UUID,
    certs: list[Certification],
    today: date,
    now: datetime,
    *,
    subject_ids: Sequence[uuid.UUID] | None,
) -> int:
    """The one INSERT … SELECT … ON CONFLICT DO NOTHING of a change; returns rows created."""
    if not certs:
        return 0
    required = required_pairs(org_id, scope_of(certs, subject_ids), today)
    if required is None:
        return 0
    initial = {c.id: initial_record(c, today) for c in certs}
    r = required.c
    pairs = (
        select(r.certification_id, r.subject_type, r.subject_id)
        .where(
            # A revoked certificate stays the subject's record until someone assigns it anew.
            # NOT IN over the (few) revoked pairs: one hashed pass, whatever the statistics say
            # (a per-subject NOT EXISTS probe degrades to a quadratic plan on fresh tables).
            tuple_(r.certification_id, r.subject_id).not_in(
                select(A.certification_id, A.subject_id).where(
                    A.certification_id.in_(list(initial)),
                    A.status == REVOKED,  # probes (org, certification, status)
                    A.revoked_at.is_not(None),
                )
            ),
        )
        .distinct()  # a subject two sources require gets one row
        .subquery("pairs")
    )
    p = pairs.c
    issued = _per_cert(p.certification_id, initial, 0, Date())
    expires = _per_cert(p.certification_id, initial, 1, Date())
    status = _per_cert(p.certification_id, initial, 2, String())
    stamp = literal(now, UTCDateTime())
    dialect = session.get_bind().dialect.name
    rows = select(
        new_uuid_sql(dialect),
        literal(org_id, Uuid()),
        p.certification_id,
        p.subject_type,
        p.subject_id,
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
        # Its open requirement period (certifications.history.periods), in this statement.
        literal(today, Date()),
        literal(True, Boolean()),
    ).select_from(pairs)
    # SQLite parses `FROM (…) AS pairs ON CONFLICT` as a join without its WHERE.
    rows = rows.where(true())
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
        "counted_since",
        "counted_required",
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
    session: Session,
    org_id: uuid.UUID,
    now: datetime,
    today: date,
    scope: Scope,
    where: list[ColumnElement[bool]],
) -> dict[str, int]:
    """Rule-made assignments (`where`) no source applies to any more: unrecorded ones go,
    recorded ones stay (history) but stop counting as required, and what automation queued for
    them is withdrawn; ones a source applies to again count again."""
    required = required_pairs(org_id, scope, today)
    applies: ColumnElement[bool] = false()
    if required is not None:
        applies = tuple_(A.certification_id, A.subject_id).in_(
            select(required.c.certification_id, required.c.subject_id)
        )
    rule_live = [A.source == "role", A.revoked_at.is_(None), *where]
    removed = session.execute(
        delete(A)
        .where(*rule_live, A.issued_on.is_(None), ~applies)
        .returning(
            A.org_id,
            A.id,
            A.certification_id,
            A.subject_type,
            A.subject_id,
            A.counted_since,
            A.counted_required,
        ),
        execution_options=_CORE_LIKE,
    ).all()
    # Their requirement periods end today (the caller records the rest).
    close_requirements(session, today, removed)
    ended = session.execute(
        update(A)
        .where(*rule_live, A.issued_on.is_not(None), A.required, ~applies)
        .values(required=False, updated_at=now)
        .returning(A.id),
        execution_options=_CORE_LIKE,
    )
    ended_ids = list(ended.scalars())
    if ended_ids:
        withdraw(session, org_id, ended_ids, "no longer required", now)
    required_again = session.execute(
        update(A).where(*rule_live, ~A.required, applies).values(required=True, updated_at=now),
        execution_options=_CORE_LIKE,
    )
    return {
        "removed": len(removed),
        "not_required": len(ended_ids),
        "required_again": max(required_again.rowcount or 0, 0),  # type: ignore[attr-defined]
    }


def _per_cert(
    column: Any, initial: dict[uuid.UUID, tuple[Any, ...]], index: int, type_: Any
) -> Any:
    """One value per certification, as a literal or a CASE on the certification id."""
    values = {cid: v[index] for cid, v in initial.items()}
    distinct = set(values.values())
    if len(distinct) == 1:
        (only,) = distinct
        return literal(only, type_) if only is not None else null()
    return case(*[(column == cid, literal(v, type_)) for cid, v in values.items()], else_=null())


def _chunks(items: list[uuid.UUID], size: int) -> Iterable[list[uuid.UUID]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
