"""Reminder plans and notification rules (SPEC §4, §5): create exactly one notification per
(assignment, stage, repetition, cycle, channel, recipient), set-based, whatever runs it and how
often. A certification's plan is `automation.plans.effective_plan` (its rules, when it has none).

A stage's identity (`rule_key`) is its moment (`before_expiry:30`, `after_expiry:14`, `expired`,
…): recipients and channels are part of the unique key themselves, so adding a recipient to a
stage notifies only the new recipient, and reordering stages changes nothing. A snoozed
assignment gets nothing until its date; `stop_when: submission_pending` pauses an assignment
while a submission of it waits for review.

Rules read the assignment's stored status (`expired`, `revoked`, `missing`): the org's tick
(`workers.tick.tick_org`) recomputes every status for the org's today right before it evaluates
them, so no rule re-derives a status from dates. Only `before_expiry` reads a date, the expiry.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Date, Integer, String, Uuid, and_, func, literal, or_, select, true, update
from sqlalchemy.orm import Session, aliased
from sqlalchemy.types import TypeEngine

from certifications.assignments.models import Assignment
from certifications.assignments.scope import in_compliance
from certifications.automation.models import Notification
from certifications.automation.plans import Window, effective_plan, windows
from certifications.catalog.models import Certification
from certifications.directory.models import Asset, Client, Employee, Location
from certifications.vocabulary import (
    ADMINS,
    CUSTODIAN,
    HOLDER,
    LOCATION_MANAGERS,
    MANAGER,
    MAX_DAYS,
    STAGE_EVENTS,
    SUBMISSION_PENDING,
)
from infra.database import utcnow
from infra.dialect import batches, insert_ignoring_conflicts, literal_table, new_uuid_sql
from tenancy.models import Organization

log = logging.getLogger("certs.notifications")

_TARGET_COLUMNS: list[tuple[str, TypeEngine[Any]]] = [
    ("certification_id", Uuid()),
    ("rule_key", String(64)),
    ("trigger", String(16)),
    ("event", String(16)),
    ("offset_days", Integer()),
    ("repetition", Integer()),
    ("expires_after", Date()),
    ("expires_until", Date()),
    ("pause_pending", Integer()),
    ("channel", String(16)),
    ("kind", String(24)),
    ("recipient", String(320)),
    ("source", String(32)),
]
_INSERT_COLUMNS = [
    "id",
    "org_id",
    "assignment_id",
    "certification_id",
    "rule_key",
    "trigger",
    "cycle",
    "repetition",
    "channel",
    "recipient",
    "recipient_source",
    "triggered_on",
    "status",
    "attempts",
    "created_at",
    "updated_at",
]
_KEY = ["org_id", "assignment_id", "rule_key", "cycle", "repetition", "channel", "recipient"]
# Recipient kinds resolved per assignment through a person column of the subject's row:
# kind -> (subject type, subject model, the column naming an employee). `custodian` joins once
# assets have a `custodian_id`; until then it resolves to nobody.
_PEOPLE: dict[str, tuple[str, Any, str]] = {
    MANAGER: ("employee", Employee, "manager_id"),
    CUSTODIAN: ("asset", Asset, "custodian_id"),
}


@dataclass(frozen=True)
class Target:
    """One (certification, stage window, channel, recipient) matching assignments are notified
    for; `kind` says how the recipient is found: fixed, holder, manager, custodian,
    location_managers (the last four per assignment)."""

    certification_id: uuid.UUID
    window: Window
    pause_pending: bool
    channel: str
    kind: str
    recipient: str | None
    source: str

    def row(self) -> tuple[Any, ...]:
        w = self.window
        return (
            self.certification_id,
            w.rule_key,
            w.trigger,
            w.event,
            w.offset,
            w.repetition,
            w.expires_after,
            w.expires_until,
            int(self.pause_pending),
            self.channel,
            self.kind,
            self.recipient,
            self.source,
        )


def _valid(stage: Any) -> bool:
    if not isinstance(stage, dict) or stage.get("event", "expiry") not in STAGE_EVENTS:
        return False
    days = stage.get("offset_days", 0)
    return isinstance(days, int) and not isinstance(days, bool) and abs(days) <= MAX_DAYS


def expand_targets(org: Organization, certs: list[Certification], today: date) -> list[Target]:
    """Plans → targets. `admins` becomes one target per admin email; a webhook target only
    exists while the org has a webhook URL; malformed stages are skipped (and logged)."""
    out: dict[tuple[Any, ...], Target] = {}
    for cert in certs:
        plan = effective_plan(cert)
        pause = plan.get("stop_when") == SUBMISSION_PENDING
        for stage in plan.get("stages") or []:
            if not _valid(stage):
                log.warning("skipping malformed reminder stage on %s: %r", cert.id, stage)
                continue
            for window in windows(stage, today):
                for channel in dict.fromkeys(stage.get("channels") or ["email"]):
                    for kind, recipient, source in _recipients(org, stage, channel):
                        target = Target(cert.id, window, pause, channel, kind, recipient, source)
                        key = (cert.id, window.rule_key, window.repetition, channel, kind)
                        out.setdefault((*key, recipient), target)
    return list(out.values())


def _recipients(
    org: Organization, stage: dict[str, Any], channel: str
) -> list[tuple[str, Any, str]]:
    if channel == "webhook":
        return [("fixed", "webhook", "webhook")] if org.webhook_url else []
    if channel != "email":
        return []
    found: list[tuple[str, Any, str]] = []
    for recipient in stage.get("recipients") or []:
        if recipient == ADMINS:
            found.extend(("fixed", a, ADMINS) for a in org.admin_emails or [])
        elif recipient in (HOLDER, MANAGER, CUSTODIAN, LOCATION_MANAGERS):
            found.append((recipient, None, recipient))
        elif isinstance(recipient, str) and "@" in recipient:
            found.append(("fixed", recipient, "address"))
    return found


def _window_matches(a: Any, t: Any, today: date) -> Any:
    before = and_(  # up to the expiry day, while not expired (a rule's before_expiry)
        t.c.offset_days <= 0,
        a.expires_on >= today,
        a.status.not_in(("expired", "revoked")),
    )
    after = and_(t.c.offset_days > 0, a.status == "expired")
    return or_(
        and_(
            t.c.event == "expiry",
            a.expires_on.is_not(None),
            a.revoked_at.is_(None),
            a.expires_on <= t.c.expires_until,
            or_(t.c.expires_after.is_(None), a.expires_on > t.c.expires_after),
            or_(before, after),
        ),
        and_(t.c.event == "expired", a.status == "expired"),
        and_(t.c.event == "revoked", a.status == "revoked"),
        and_(t.c.event == "missing", a.status == "missing", a.required.is_(True)),
    )


def _inserts(
    session: Session, org: Organization, targets: list[Target], today: date, now: datetime
) -> int:
    a, e, c = Assignment, Employee, Client
    t = literal_table(session, "plan_targets", _TARGET_COLUMNS, [x.row() for x in targets])
    kinds = {x.kind for x in targets}
    dialect = session.get_bind().dialect.name
    holder = func.coalesce(func.nullif(e.email, ""), func.nullif(c.contact_email, ""))

    def base(stmt: Any) -> Any:  # `Select.join`: the tenant criteria reaches every table
        return stmt.select_from(a).join(t, t.c.certification_id == a.certification_id)

    def with_holder(stmt: Any) -> Any:
        return (
            base(stmt)
            .outerjoin(
                e,
                and_(a.subject_type == "employee", e.org_id == a.org_id, e.id == a.subject_id),
            )
            .outerjoin(
                c,
                and_(a.subject_type == "client", c.org_id == a.org_id, c.id == a.subject_id),
            )
        )

    def _select(source: Any, recipient: Any, recipient_source: Any, *where: Any) -> Any:
        return source(
            select(
                new_uuid_sql(dialect),
                literal(org.id, Uuid()),
                a.id,
                a.certification_id,
                t.c.rule_key,
                t.c.trigger,
                a.cycle,
                t.c.repetition,
                t.c.channel,
                recipient,
                recipient_source,
                literal(today, Date()),
                literal("pending"),
                literal(0),
                literal(now, Notification.__table__.c.created_at.type),
                literal(now, Notification.__table__.c.updated_at.type),
            )
        ).where(
            _window_matches(a, t, today),
            in_compliance(a),
            or_(a.snoozed_until.is_(None), a.snoozed_until <= today),
            or_(t.c.pause_pending == 0, a.pending_submission_id.is_(None)),
            # Satisfied via an equivalent certification: its holder is covered; the provider's
            # own rules remind about the provider.
            a.satisfied_via_id.is_(None),
            *where,
        )

    statements = [_select(base, t.c.recipient, t.c.source, t.c.kind == "fixed")]
    if HOLDER in kinds:
        statements.append(
            _select(with_holder, holder, t.c.source, t.c.kind == HOLDER, holder.is_not(None))
        )
    admins = list(dict.fromkeys(org.admin_emails or []))
    if admins and HOLDER in kinds:
        adm = literal_table(session, "org_admins", [("email", String(320))], [(x,) for x in admins])
        statements.append(
            _select(
                lambda stmt: with_holder(stmt).join(adm, true()),
                adm.c.email,
                literal("holder_fallback_admins"),
                t.c.kind == HOLDER,
                holder.is_(None),
            )
        )
    for kind, (subject_type, model, column) in _PEOPLE.items():
        if kind in kinds and hasattr(model, column):
            statements.append(_person_select(_select, base, t, kind, subject_type, model, column))
    if LOCATION_MANAGERS in kinds:
        managers = location_manager_emails(session)
        if managers:
            lm = literal_table(
                session,
                "location_managers",
                [("location_id", Uuid()), ("email", String(320))],
                managers,
            )
            statements.append(
                _select(
                    lambda stmt: base(stmt).join(
                        lm, and_(a.subject_type == "location", lm.c.location_id == a.subject_id)
                    ),
                    lm.c.email,
                    t.c.source,
                    t.c.kind == LOCATION_MANAGERS,
                )
            )
    table = Notification.__table__
    return sum(
        insert_ignoring_conflicts(session, table, _INSERT_COLUMNS, s, _KEY) for s in statements
    )


def _person_select(
    select_: Any, base: Any, t: Any, kind: str, subject_type: str, model: Any, column: str
) -> Any:
    """Reminders to the employee a subject's column names (an employee's manager, an asset's
    custodian): active, with an email address; nobody otherwise."""
    a = Assignment
    subject, person = aliased(model), aliased(Employee)
    email = func.nullif(person.email, "")
    return select_(
        lambda stmt: (
            base(stmt)
            .join(
                subject,
                and_(
                    a.subject_type == subject_type,
                    subject.org_id == a.org_id,
                    subject.id == a.subject_id,
                ),
            )
            .join(
                person,
                and_(person.org_id == a.org_id, person.id == getattr(subject, column)),
            )
        ),
        email,
        t.c.source,
        t.c.kind == kind,
        email.is_not(None),
        person.active.is_(True),
    )


def location_manager_emails(session: Session) -> list[tuple[uuid.UUID, str]]:
    """(location id, email) of every active manager of the org's locations (few rows)."""
    wanted: dict[uuid.UUID, list[uuid.UUID]] = {}
    for location_id, ids in session.execute(select(Location.id, Location.manager_ids)):
        if ids:
            wanted[location_id] = [uuid.UUID(str(i)) for i in ids]
    people = {i for ids in wanted.values() for i in ids}
    if not people:
        return []
    rows = session.execute(
        select(Employee.id, Employee.email).where(
            Employee.id.in_(people), Employee.active.is_(True), Employee.email.is_not(None)
        )
    )
    emails = {person: email for person, email in rows if email}
    return [
        (location_id, emails[i])
        for location_id, ids in wanted.items()
        for i in dict.fromkeys(ids)
        if i in emails
    ]


def cancel_superseded(session: Session, org_id: uuid.UUID, now: datetime) -> int:
    """Pending notifications of an older cycle (the assignment was renewed) are never sent."""
    n, a = Notification, Assignment
    current_cycle = (
        select(a.cycle).where(a.org_id == n.org_id, a.id == n.assignment_id).scalar_subquery()
    )
    result = session.execute(
        update(n)
        .where(n.status == "pending", n.cycle < current_cycle)
        .values(status="cancelled", last_error="superseded by a renewal", updated_at=now),
        execution_options={"synchronize_session": False},
    )
    return max(result.rowcount or 0, 0)  # type: ignore[attr-defined]


def evaluate_rules(
    session: Session, org_id: uuid.UUID, today: date, now: datetime | None = None
) -> dict[str, int]:
    """Create the notifications every rule asks for on `today` (idempotent; flushes only)."""
    now = now or utcnow()
    org = session.get(Organization, org_id)
    if org is None:
        return {"created": 0, "cancelled": 0}
    certs = session.scalars(select(Certification).where(Certification.archived_at.is_(None)))
    planned = [c for c in certs if c.reminder_plan is not None or c.notification_rules]
    targets = expand_targets(org, planned, today)
    created = 0
    for chunk in batches(targets):
        created += _inserts(session, org, list(chunk), today, now)
    cancelled = cancel_superseded(session, org_id, now)
    session.flush()
    return {"created": created, "cancelled": cancelled}
