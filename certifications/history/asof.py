"""Compliance as of a past day, read from history (one SELECT, whatever the day).

`as_of_rows(on, cutoff)` is the reusable piece: one row per assignment the figures counted on
day `on` (its requirement period covers the day), with the status it had then. Everything is
"as recorded by the end of that day" in the org's time zone (`cutoff` = the instant the day
ended):

- the cycle in effect is the one that was current then: the first cycle closed after `cutoff`
  (`assignment_cycles`), or the assignment's current cycle when none was;
- a revocation counts once it happened by `cutoff`, an accepted form likewise;
- an exemption counts while one of its periods covers the day;
- the status is SPEC §4's rules on that day (`recompute.status_case_sql`), so on today's date
  the answer is the stored one (a property test keeps the two equal).

Not in history (yet): a subject's `active` flag and a certification's archiving are read as
they are now, like the names.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ColumnElement,
    Date,
    Select,
    Subquery,
    and_,
    bindparam,
    case,
    cast,
    false,
    func,
    null,
    or_,
    select,
    union_all,
)
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.elements import BindParameter

from certifications.assignments.models import Assignment, AssignmentCycle, FormSubmission
from certifications.assignments.recompute import status_case_sql
from certifications.assignments.scope import subject_active
from certifications.catalog.models import Certification
from certifications.history.models import ExemptionPeriod, RequirementPeriod
from certifications.vocabulary import SUBJECT_KINDS
from infra.database import UTCDateTime

P = RequirementPeriod
X = ExemptionPeriod
C = Certification
FS = FormSubmission
_CYCLE = aliased(AssignmentCycle, name="cycle_in_effect")
_OPEN = aliased(Assignment, name="open_period")
_CLOSED_OF = aliased(Assignment, name="closed_period_assignment")
# What `as_of_rows` reads of a period's assignment (its current cycle, revocation and form).
_ASSIGNMENT_COLUMNS = ("revoked_at", "issued_on", "effective_on", "expires_on", "form_accepted_at")


def day_end(timezone: str, on: date) -> datetime:
    """The UTC instant at which day `on` ended in `timezone` (start of the next local day)."""
    return datetime.combine(on + timedelta(days=1), time(), ZoneInfo(timezone)).astimezone(UTC)


@dataclass(frozen=True)
class AsOf:
    """A past day of one organization: the day, and the instant it ended (UTC).

    `as_of_rows` also takes bound parameters for both (`AsOf.bound`): a statement built once
    then serves every day (the gate check)."""

    on: date
    cutoff: datetime

    @classmethod
    def of(cls, timezone: str, on: date) -> AsOf:
        return cls(on, day_end(timezone, on))

    @classmethod
    def bound(cls, on: str, cutoff: str) -> AsOf:
        """Bound parameters named `on` and `cutoff` in place of the day and the instant."""
        day: Any = bindparam(on, type_=Date())
        instant: Any = bindparam(cutoff, type_=UTCDateTime())
        return cls(day, instant)

    def params(self, on: str, cutoff: str) -> dict[str, Any]:
        """The values of `bound(on, cutoff)`'s parameters for this day."""
        return {on: self.on, cutoff: self.cutoff}


def covers(period: Any, on: date) -> ColumnElement[bool]:
    """The period (`starts_on`, exclusive `ends_on`) includes day `on`."""
    return and_(period.starts_on <= on, or_(period.ends_on.is_(None), period.ends_on > on))


def requirement_periods(subjects: Any = None) -> Subquery:
    """Every requirement period, closed (`requirement_periods`) or open (on its assignment row:
    `counted_since`, `counted_required`), as columns `org_id`, `assignment_id`,
    `certification_id`, `subject_type`, `subject_id`, `required`, `starts_on`, `ends_on`, and
    the assignment's `revoked_at`, `issued_on`, `effective_on`, `expires_on`,
    `form_accepted_at` (null for a closed period whose assignment is gone); narrowed to
    `subjects` (a list or a SELECT of ids) when given.

    An open period is read from its assignment row, so it carries that row's columns itself:
    only the closed ones join their assignment (joining every period back to the assignments
    table cost a million-row hash join at 1M assignments)."""
    o, a = _OPEN, _CLOSED_OF
    closed = (
        select(
            P.org_id,
            P.assignment_id,
            P.certification_id,
            P.subject_type,
            P.subject_id,
            P.required,
            P.starts_on,
            P.ends_on,
            *(getattr(a, name) for name in _ASSIGNMENT_COLUMNS),
        )
        .select_from(P)
        .outerjoin(a, and_(a.org_id == P.org_id, a.id == P.assignment_id))
    )
    still_open = select(
        o.org_id,
        o.id.label("assignment_id"),
        o.certification_id,
        o.subject_type,
        o.subject_id,
        o.counted_required.label("required"),
        o.counted_since.label("starts_on"),
        cast(null(), Date()).label("ends_on"),
        *(getattr(o, name) for name in _ASSIGNMENT_COLUMNS),
    ).where(o.counted_since.is_not(None))
    if subjects is not None:
        closed = closed.where(P.subject_id.in_(subjects))
        still_open = still_open.where(*of_subjects(o, subjects))
    return union_all(closed, still_open).subquery("period")


def of_subjects(a: Any, subjects: Any) -> list[ColumnElement[bool]]:
    """`a` (assignments or an alias) belongs to one of `subjects`: every subject type named,
    so the (org, subject type, subject) index is probed per subject, not scanned."""
    return [a.subject_type.in_(SUBJECT_KINDS), a.subject_id.in_(subjects)]


def as_of_rows(
    when: AsOf,
    include_inactive: bool = False,
    subject_ids: Sequence[uuid.UUID | BindParameter[uuid.UUID]] | Select[Any] | None = None,
) -> Subquery:
    """The assignments counted on `on`, as they stood: columns `assignment_id`,
    `certification_id`, `subject_type`, `subject_id`, `required`, `status`, `issued_on`,
    `effective_on`, `expires_on`, `exempt`. Archived certifications are left out, and inactive
    subjects unless `include_inactive`; `subject_ids` narrows to these subjects (an index
    probe per subject instead of the org's whole history; a SELECT of ids works too)."""
    on, cutoff = when.on, when.cutoff
    cy = _CYCLE
    # Cycles close in order, so the first one closed after the day ended was current that day.
    subjects: Any = None
    if subject_ids is not None:
        subjects = subject_ids if isinstance(subject_ids, Select) else list(subject_ids)
    later_cycles = select(
        AssignmentCycle.assignment_id, func.min(AssignmentCycle.cycle).label("cycle")
    ).where(AssignmentCycle.closed_at >= cutoff)
    if subjects is not None:
        # The grouping is not pushed into by the planners: narrow it to the subjects' cycles
        # (the cycles of a deleted assignment went with it).
        mine = aliased(Assignment, name="subject_assignment")
        theirs = select(mine.id).where(*of_subjects(mine, subjects))
        later_cycles = later_cycles.where(AssignmentCycle.assignment_id.in_(theirs))
    later = later_cycles.group_by(AssignmentCycle.assignment_id).subquery("later_cycle")
    exempt = select(X.assignment_id).where(covers(X, on)).subquery("exempt_then")
    periods = requirement_periods(subjects)
    p = periods.c
    closed = cy.id.is_not(None)
    form_of_closed = (
        select(func.min(FS.created_at))
        .where(
            FS.org_id == p.org_id,
            FS.assignment_id == p.assignment_id,
            FS.cycle == cy.cycle,
            FS.status == "accepted",
            FS.created_at < cutoff,
        )
        .scalar_subquery()
    )
    form_of_current = case((p.form_accepted_at < cutoff, p.form_accepted_at), else_=None)
    inner = (
        select(
            p.assignment_id,
            p.certification_id,
            p.subject_type,
            p.subject_id,
            p.required,
            case((p.revoked_at < cutoff, p.revoked_at), else_=None).label("revoked_at"),
            case((closed, cy.issued_on), else_=p.issued_on).label("issued_on"),
            case((closed, cy.effective_on), else_=p.effective_on).label("effective_on"),
            case((closed, cy.expires_on), else_=p.expires_on).label("expires_on"),
            case(
                (C.forms_required == false(), null()),
                (closed, form_of_closed),
                else_=form_of_current,
            ).label("form_accepted_at"),
            C.forms_required,
            C.warning_days,
            exempt.c.assignment_id.is_not(None).label("exempt"),
        )
        .select_from(periods)
        .join(C, and_(C.org_id == p.org_id, C.id == p.certification_id))
        .outerjoin(later, later.c.assignment_id == p.assignment_id)
        .outerjoin(
            cy,
            and_(
                cy.org_id == p.org_id,
                cy.assignment_id == p.assignment_id,
                cy.cycle == later.c.cycle,
            ),
        )
        .outerjoin(exempt, exempt.c.assignment_id == p.assignment_id)
        .where(covers(p, on), C.archived_at.is_(None))
    )
    if not include_inactive:
        inner = inner.where(subject_active(p))
    t = inner.subquery("then")
    return select(
        t.c.assignment_id,
        t.c.certification_id,
        t.c.subject_type,
        t.c.subject_id,
        t.c.required,
        status_case_sql(on, t, t).label("status"),
        t.c.issued_on,
        t.c.effective_on,
        t.c.expires_on,
        t.c.exempt,
    ).subquery("as_of")


def status_counts_as_of(
    session: Session,
    when: AsOf,
    include_inactive: bool = False,
    subject_ids: Sequence[uuid.UUID] | None = None,
) -> list[tuple[uuid.UUID, str, bool, bool, int]]:
    """(certification_id, status, required, exempt, count) of the rows counted that day."""
    rows = as_of_rows(when, include_inactive, subject_ids)
    cols = (rows.c.certification_id, rows.c.status, rows.c.required, rows.c.exempt)
    stmt = select(*cols, func.count()).group_by(*cols)
    return [(r[0], r[1], bool(r[2]), bool(r[3]), int(r[4])) for r in session.execute(stmt)]
