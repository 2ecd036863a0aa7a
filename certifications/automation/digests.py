"""Digests: one email per period for a recipient who asked for daily or weekly reminders.

A recipient's frequency is their `notification_preferences` row, else the org's
`digest_frequency`. Reminders (email) to a digest recipient are created as usual but never
queued alone (`digest_bound`); when the recipient's period is due in the org's time zone (daily:
from its hour; weekly: on its weekday from its hour) the tick creates the period's digest (unique
per recipient and period) and stamps every waiting reminder with it in one conditional UPDATE, so
each reminder is carried by exactly one digest and marked `sent` when that digest is.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, exists, func, select, update
from sqlalchemy.orm import Session

from certifications.assignments.models import Assignment
from certifications.automation.delivery import (
    RetryPolicy,
    claim_row,
    record_failure,
    record_sent,
)
from certifications.automation.models import Digest, Notification, NotificationPreference
from certifications.catalog.models import Certification
from certifications.directory.models import SUBJECT_MODELS
from certifications.vocabulary import SUBMISSION_TRIGGERS
from infra.context import require_org_id
from infra.dialect import upsert_insert
from jobs.outbox import request_job
from tenancy.models import Organization

DELIVER_DIGEST = "deliver_digest"
NO_SITE = "No site"


def frequency_of(recipient: Any, org_default: str) -> Any:
    """SQL: the digest frequency of a notification's recipient (its preference, else the org's)."""
    pref = (
        select(NotificationPreference.frequency)
        .where(NotificationPreference.email == func.lower(recipient))
        .scalar_subquery()
    )
    return func.coalesce(pref, org_default)


def digest_bound(n: Any, org_default: str) -> Any:
    """SQL: the reminder waits for its recipient's digest instead of leaving on its own."""
    return and_(
        n.channel == "email",
        n.trigger.not_in(SUBMISSION_TRIGGERS),
        frequency_of(n.recipient, org_default) != "immediate",
    )


def snoozed(n: Any, today: date) -> Any:
    """SQL: the reminder's assignment is snoozed on `today` (it waits, unqueued)."""
    a = Assignment
    return exists().where(a.org_id == n.org_id, a.id == n.assignment_id, a.snoozed_until > today)


def _due_period(pref: tuple[str, int, int], local: datetime) -> str | None:
    frequency, hour, weekday = pref
    if frequency == "immediate" or local.hour < hour:
        return None
    if frequency == "weekly" and local.weekday() != weekday:
        return None
    return f"{frequency}:{local.date().isoformat()}"


def collect_digests(session: Session, org: Organization, now: datetime) -> int:
    """Create each due digest of the org and queue its delivery; returns how many (flushes)."""
    local = now.astimezone(ZoneInfo(org.timezone))
    n = Notification
    waiting = and_(
        n.status == "pending",
        n.digest_id.is_(None),
        n.enqueued_at.is_(None),
        digest_bound(n, org.digest_frequency),
        ~snoozed(n, local.date()),
    )
    recipients = set(session.scalars(select(func.lower(n.recipient)).where(waiting).distinct()))
    if not recipients:
        return 0
    prefs = {
        p.email: (p.frequency, p.hour, p.weekday)
        for p in session.scalars(
            select(NotificationPreference).where(NotificationPreference.email.in_(recipients))
        )
    }
    default = (org.digest_frequency, org.digest_hour, org.digest_weekday)
    made = 0
    for recipient in sorted(recipients):
        period = _due_period(prefs.get(recipient, default), local)
        if period is None:
            continue
        digest_id = _new_digest(session, recipient, period, now)
        if digest_id is None:  # this period's digest was made already: the next one takes them
            continue
        stamped = session.execute(
            update(n)
            .where(waiting, func.lower(n.recipient) == recipient)
            .values(digest_id=digest_id, enqueued_at=now, updated_at=now),
            execution_options={"synchronize_session": False},
        )
        session.execute(
            update(Digest)
            .where(Digest.id == digest_id)
            .values(items=max(stamped.rowcount or 0, 0)),  # type: ignore[attr-defined]
            execution_options={"synchronize_session": False},
        )
        request_job(session, DELIVER_DIGEST, digest_id=digest_id)
        made += 1
    return made


def _new_digest(session: Session, recipient: str, period: str, now: datetime) -> uuid.UUID | None:
    table = Digest.__table__
    stmt = (
        upsert_insert(session.get_bind().dialect.name, Digest)
        .values(
            org_id=require_org_id(),
            id=uuid.uuid4(),
            recipient=recipient,
            period=period,
            status="pending",
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=[table.c.org_id, table.c.recipient, table.c.period])
        .returning(table.c.id)
    )
    return session.execute(stmt).scalar()


# --- delivery --------------------------------------------------------------------------------


@dataclass(frozen=True)
class DigestItem:
    site: str
    certification_name: str
    subject_name: str
    subject_type: str
    trigger: str
    expires_on: date | None
    status: str


@dataclass(frozen=True)
class DigestOut:
    """Everything the digest email needs, read at claim time."""

    digest_id: uuid.UUID
    org_name: str
    recipient: str
    period: str
    attempts: int
    today: date
    items: list[DigestItem]


def claim_digest(session: Session, digest_id: uuid.UUID, now: datetime) -> DigestOut | None:
    """Take the digest for sending (one winner); None if nothing is left to send."""
    if not claim_row(session, Digest, digest_id, now):
        return None
    digest = session.execute(
        select(Digest).where(Digest.id == digest_id).execution_options(populate_existing=True)
    ).scalar_one()
    org = session.get(Organization, digest.org_id)
    assert org is not None  # noqa: S101 - the foreign key guarantees it
    today = now.astimezone(ZoneInfo(org.timezone)).date()
    items = _items(session, digest_id, now)
    if not items:
        digest.status, digest.sent_at, digest.last_error = "sent", now, "nothing left to send"
        session.flush()
        return None
    return DigestOut(
        digest.id, org.name, digest.recipient, digest.period, digest.attempts, today, items
    )


def _items(session: Session, digest_id: uuid.UUID, now: datetime) -> list[DigestItem]:
    n, a, c = Notification, Assignment, Certification
    rows = session.execute(
        select(
            n.id,
            n.cycle,
            n.trigger,
            a.cycle,
            a.subject_type,
            a.subject_id,
            a.expires_on,
            a.status,
            c.name,
        )
        .join(a, and_(a.org_id == n.org_id, a.id == n.assignment_id))
        .join(c, and_(c.org_id == n.org_id, c.id == n.certification_id))
        .where(n.digest_id == digest_id, n.status.in_(("pending", "sending")))
    ).all()
    moot = [row[0] for row in rows if row[1] != row[3]]  # renewed since: the reminder is moot
    if moot:
        session.execute(
            update(n)
            .where(n.id.in_(moot))
            .values(status="cancelled", last_error="superseded by a renewal", updated_at=now),
            execution_options={"synchronize_session": False},
        )
    live = [row for row in rows if row[1] == row[3]]
    names = _subject_names(session, [(row[4], row[5]) for row in live])
    return [
        DigestItem(
            site=names[(row[4], row[5])] if row[4] == "location" else NO_SITE,
            certification_name=row[8],
            subject_name=names.get((row[4], row[5]), f"{row[4]} (deleted)"),
            subject_type=row[4],
            trigger=row[2],
            expires_on=row[6],
            status=row[7],
        )
        for row in live
    ]


def _subject_names(
    session: Session, subjects: list[tuple[str, uuid.UUID]]
) -> dict[tuple[str, uuid.UUID], str]:
    """One query per subject kind for the names of a digest's subjects."""
    by_kind: dict[str, set[uuid.UUID]] = defaultdict(set)
    for kind, subject_id in subjects:
        by_kind[kind].add(subject_id)
    names: dict[tuple[str, uuid.UUID], str] = {}
    for kind, ids in by_kind.items():
        model = SUBJECT_MODELS[kind]
        for subject_id, name in session.execute(
            select(model.id, model.name).where(model.id.in_(ids))
        ):
            names[(kind, subject_id)] = name
    return names


def mark_digest_sent(session: Session, digest_id: uuid.UUID, via: str, now: datetime) -> None:
    """The digest and every reminder it carried are sent (once: conditional on their status)."""
    record_sent(session, Digest, digest_id, now, claimed_at=None)
    n = Notification
    session.execute(
        update(n)
        .where(n.digest_id == digest_id, n.status.in_(("pending", "sending")))
        .values(status="sent", delivered_via=via, sent_at=now, last_error=None, updated_at=now),
        execution_options={"synchronize_session": False},
    )


def mark_digest_failure(
    session: Session, out: DigestOut, error: str, now: datetime, policy: RetryPolicy
) -> int | None:
    """Back to `pending` (returns the retry delay), or `failed` with its reminders for good."""
    delay = record_failure(session, Digest, out.digest_id, out.attempts, error, now, policy)
    if delay is None:
        n = Notification
        session.execute(
            update(n)
            .where(n.digest_id == out.digest_id, n.status == "pending")
            .values(status="failed", last_error=f"digest: {error[:1990]}", updated_at=now),
            execution_options={"synchronize_session": False},
        )
    return delay
