"""Notification rules (SPEC §4, §5): create exactly one notification per
(assignment, rule, cycle, channel, recipient), set-based, whatever runs it and how often.

A rule's identity (`rule_key`) is its trigger and day count (`before_expiry:30`, `expired`, …):
recipients and channels are part of the unique key themselves, so adding a recipient to a rule
notifies only the new recipient, and reordering rules changes nothing.

Rules read the assignment's stored status (`expired`, `revoked`, `missing`): the org's tick
(`workers.tick.tick_org`) recomputes every status for the org's today right before it evaluates
them, so no rule re-derives a status from dates. Only `before_expiry` reads a date, the expiry.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Date, String, Uuid, and_, func, literal, or_, select, true, update
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeEngine

from certifications.assignments.models import Assignment
from certifications.assignments.scope import in_compliance
from certifications.automation.models import Notification
from certifications.catalog.models import Certification
from certifications.directory.models import Client, Employee
from certifications.vocabulary import MAX_DAYS, TRIGGERS
from infra.database import utcnow
from infra.dialect import batches, insert_ignoring_conflicts, literal_table, new_uuid_sql
from tenancy.models import Organization

log = logging.getLogger("certs.notifications")

_TARGET_COLUMNS: list[tuple[str, TypeEngine[Any]]] = [
    ("certification_id", Uuid()),
    ("rule_key", String(64)),
    ("trigger", String(16)),
    ("until_on", Date()),
    ("channel", String(16)),
    ("kind", String(8)),
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
    "channel",
    "recipient",
    "recipient_source",
    "triggered_on",
    "status",
    "attempts",
    "created_at",
    "updated_at",
]
_KEY = ["org_id", "assignment_id", "rule_key", "cycle", "channel", "recipient"]


@dataclass(frozen=True)
class Target:
    """One (certification, rule, channel, recipient) a matching assignment is notified for."""

    certification_id: uuid.UUID
    rule_key: str
    trigger: str
    until_on: date | None  # before_expiry: matches when expires_on <= until_on (today + N)
    channel: str
    kind: str  # "fixed" (recipient known) or "holder" (resolved per assignment)
    recipient: str | None
    source: str


def rule_key(rule: dict[str, Any]) -> str:
    if rule["trigger"] == "before_expiry":
        return f"before_expiry:{int(rule['days'])}"
    return str(rule["trigger"])


def _valid(rule: Any) -> bool:
    if not isinstance(rule, dict) or rule.get("trigger") not in TRIGGERS:
        return False
    if rule["trigger"] == "before_expiry":
        days = rule.get("days")
        return isinstance(days, int) and not isinstance(days, bool) and 0 <= days <= MAX_DAYS
    return True


def expand_targets(org: Organization, certs: list[Certification], today: date) -> list[Target]:
    """Rules → targets. `admins` becomes one target per admin email; a webhook target only
    exists while the org has a webhook URL; malformed rules are skipped (and logged)."""
    out: dict[tuple[Any, ...], Target] = {}
    for cert in certs:
        for rule in cert.notification_rules or []:
            if not _valid(rule):
                log.warning("skipping malformed notification rule on %s: %r", cert.id, rule)
                continue
            key = rule_key(rule)
            until = (
                today + timedelta(days=rule["days"]) if rule["trigger"] == "before_expiry" else None
            )
            base = (cert.id, key, rule["trigger"], until)
            for channel in dict.fromkeys(rule.get("channels") or ["email"]):
                for kind, recipient, source in _recipients(org, rule, channel):
                    target = Target(*base, channel, kind, recipient, source)
                    out.setdefault((cert.id, key, channel, kind, recipient), target)
    return list(out.values())


def _recipients(
    org: Organization, rule: dict[str, Any], channel: str
) -> list[tuple[str, Any, str]]:
    if channel == "webhook":
        return [("fixed", "webhook", "webhook")] if org.webhook_url else []
    if channel != "email":
        return []
    found: list[tuple[str, Any, str]] = []
    for recipient in rule.get("recipients") or []:
        if recipient == "holder":
            found.append(("holder", None, "holder"))
        elif recipient == "admins":
            found.extend(("fixed", a, "admins") for a in org.admin_emails or [])
        elif isinstance(recipient, str) and "@" in recipient:
            found.append(("fixed", recipient, "address"))
    return found


def _trigger_matches(a: Any, t: Any, today: date) -> Any:
    return or_(
        and_(
            t.c.trigger == "before_expiry",
            a.expires_on.is_not(None),
            a.expires_on >= today,
            a.expires_on <= t.c.until_on,
            a.status.not_in(("expired", "revoked")),
            a.revoked_at.is_(None),
        ),
        and_(t.c.trigger == "expired", a.status == "expired"),
        and_(t.c.trigger == "revoked", a.status == "revoked"),
        and_(t.c.trigger == "missing", a.status == "missing", a.required.is_(True)),
    )


def _inserts(
    session: Session, org: Organization, targets: list[Target], today: date, now: datetime
) -> int:
    a, e, c = Assignment, Employee, Client
    rows = [
        (
            t.certification_id,
            t.rule_key,
            t.trigger,
            t.until_on,
            t.channel,
            t.kind,
            t.recipient,
            t.source,
        )
        for t in targets
    ]
    t = literal_table(session, "rule_targets", _TARGET_COLUMNS, rows)
    dialect = session.get_bind().dialect.name
    holder = func.coalesce(func.nullif(e.email, ""), func.nullif(c.contact_email, ""))

    def joined(stmt: Any) -> Any:  # `Select.join`: the tenant criteria reaches every table
        return (
            stmt.select_from(a)
            .join(t, t.c.certification_id == a.certification_id)
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
            _trigger_matches(a, t, today),
            in_compliance(a),
            # Satisfied via an equivalent certification: its holder is covered; the provider's
            # own rules remind about the provider.
            a.satisfied_via_id.is_(None),
            *where,
        )

    statements = [
        _select(joined, t.c.recipient, t.c.source, t.c.kind == "fixed"),
        _select(joined, holder, t.c.source, t.c.kind == "holder", holder.is_not(None)),
    ]
    admins = list(dict.fromkeys(org.admin_emails or []))
    if admins:
        adm = literal_table(session, "org_admins", [("email", String(320))], [(x,) for x in admins])
        statements.append(
            _select(
                lambda stmt: joined(stmt).join(adm, true()),
                adm.c.email,
                literal("holder_fallback_admins"),
                t.c.kind == "holder",
                holder.is_(None),
            )
        )
    table = Notification.__table__
    return sum(
        insert_ignoring_conflicts(session, table, _INSERT_COLUMNS, s, _KEY) for s in statements
    )


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
    targets = expand_targets(org, [c for c in certs if c.notification_rules], today)
    created = 0
    for chunk in batches(targets):
        created += _inserts(session, org, list(chunk), today, now)
    cancelled = cancel_superseded(session, org_id, now)
    session.flush()
    return {"created": created, "cancelled": cancelled}
