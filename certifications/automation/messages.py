"""What a notification says: the email and the webhook payload, from one wording per trigger.

Dates are the organization's: `today` is its local date when the message is composed, a
revocation's date is the local date of its timestamp, and how far a date is from today is said
in plain English ("today", "in 1 day", "3 days ago").
"""

from __future__ import annotations

import dataclasses
import html
import re
import uuid
from dataclasses import dataclass
from datetime import date
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

from infra import database as db
from infra.settings import Settings
from tenancy.sealed import SealedSecret


@dataclass(frozen=True)
class Outgoing:
    """Everything a message needs, read at claim time."""

    notification_id: uuid.UUID
    org_id: uuid.UUID
    org_name: str
    attempts: int
    channel: str
    recipient: str
    trigger: str
    cycle: int
    triggered_on: date
    today: date  # the organization's local date when the message is composed
    timezone: str  # the organization's IANA time zone
    assignment_id: uuid.UUID
    status: str
    issued_on: date | None
    expires_on: date | None
    revoked_on: date | None  # the local date (org time zone) of the revocation
    revoked_reason: str | None
    certification_id: uuid.UUID
    certification_name: str
    subject_type: str
    subject_id: uuid.UUID
    subject_name: str
    webhook_url: str | None
    webhook_secret: SealedSecret | None  # revealed only by the transport, to sign
    detail: str | None = None  # a rejected submission's reason


def relative_day(day: date, today: date) -> str:
    """How far `day` is from `today`, in plain English: "today", "in 1 day", "3 days ago"."""
    days = (day - today).days
    if days == 0:
        return "today"
    if days == -1:
        return "yesterday"
    unit = "day" if abs(days) == 1 else "days"
    return f"in {days} {unit}" if days > 0 else f"{-days} {unit} ago"


def _what(out: Outgoing) -> tuple[str, str, date]:
    """(headline, what to do, the date that matters) for the trigger."""
    who = f"{out.certification_name} for {out.subject_name}"
    if out.trigger == "before_expiry" and out.expires_on is not None:
        when = out.expires_on
        verb = "expires" if when >= out.today else "expired"
        return (
            f"{who} {verb} on {when.isoformat()} ({relative_day(when, out.today)})",
            "Arrange the renewal before that date and record the new certificate.",
            when,
        )
    if out.trigger == "expired":
        when = out.expires_on or out.triggered_on
        return (
            f"{who} expired on {when.isoformat()} ({relative_day(when, out.today)})",
            "Renew it now and record the new certificate; until then it does not count as valid.",
            when,
        )
    if out.trigger == "revoked":
        when = out.revoked_on or out.triggered_on
        reason = f"; reason: {out.revoked_reason}" if out.revoked_reason else ""
        return (
            f"{who} was revoked on {when.isoformat()} ({relative_day(when, out.today)}{reason})",
            "Arrange a new certification, or reassign duties that require it.",
            when,
        )
    if out.trigger.startswith("submission_"):
        return _submission_what(out, who)
    return (
        f"{who} is missing (as of {out.triggered_on.isoformat()}, "
        f"{relative_day(out.triggered_on, out.today)})",
        "Record the certificate (issue date and any required form) so it counts as valid.",
        out.triggered_on,
    )


def _submission_what(out: Outgoing, who: str) -> tuple[str, str, date]:
    if out.trigger == "submission_pending":
        return (
            f"A submission for {who} is waiting for review",
            "Review it in the queue (GET /submissions?status=pending): approve or reject it.",
            out.triggered_on,
        )
    if out.trigger == "submission_approved":
        return (
            f"Your submission for {who} was approved",
            "Nothing more to do: the certificate is recorded.",
            out.triggered_on,
        )
    reason = f" (reason: {out.detail})" if out.detail else ""
    return (
        f"Your submission for {who} was rejected{reason}",
        "Correct what the reason names and submit again.",
        out.triggered_on,
    )


# Line breaks (CR, LF, NEL, U+2028/9, vertical tab, ...), other control characters and the
# whitespace around them: one header value or body line must stay one line.
_BREAKS = re.compile(r"[\s\x00-\x1f\x7f-\x9f]+")


def one_line(text: str) -> str:
    """`text` with every run of line breaks, control characters and spaces folded to one space.

    Names and reasons come from imports and clients; a CR/LF in a header value would make the
    email library refuse the message (or, in a laxer one, inject a header).
    """
    return _BREAKS.sub(" ", text).strip()


def _single_lines(out: Outgoing) -> Outgoing:
    """The free text of `out` folded to one line each (for the email; webhooks carry JSON)."""
    return dataclasses.replace(
        out,
        org_name=one_line(out.org_name),
        recipient=one_line(out.recipient),
        certification_name=one_line(out.certification_name),
        subject_name=one_line(out.subject_name),
        revoked_reason=one_line(out.revoked_reason) if out.revoked_reason else None,
        detail=one_line(out.detail) if out.detail else None,
    )


def compose_email(out: Outgoing, settings: Settings) -> EmailMessage:
    out = _single_lines(out)
    headline, todo, _when = _what(out)
    msg = EmailMessage()
    msg["Subject"] = f"[{out.org_name}] {headline}"
    msg["From"] = settings.mail_from
    msg["To"] = out.recipient
    msg["Date"] = format_datetime(db.utcnow())
    domain = settings.mail_from.rpartition("@")[2] or "certifications.local"
    # Stable per notification: a resend after a crash carries the same id (receiver dedupe).
    msg["Message-ID"] = f"<{out.notification_id}@{domain}>"
    msg["X-Certs-Notification-Id"] = str(out.notification_id)
    lines = [
        "Hello,",
        "",
        f"{headline}.",
        "",
        f"What to do: {todo}",
        "",
        f"Certification: {out.certification_name}",
        f"Holder: {out.subject_name} ({out.subject_type})",
        f"Expires on: {out.expires_on.isoformat() if out.expires_on else '-'}",
        f"Assignment: {out.assignment_id}",
        "",
        f"— {out.org_name} certifications",
    ]
    msg.set_content("\n".join(lines))
    esc = html.escape
    msg.add_alternative(
        "<html><body>"
        f"<p>Hello,</p><p><strong>{esc(headline)}.</strong></p>"
        f"<p>What to do: {esc(todo)}</p>"
        "<table>"
        f"<tr><th align='left'>Certification</th><td>{esc(out.certification_name)}</td></tr>"
        f"<tr><th align='left'>Holder</th><td>{esc(out.subject_name)} "
        f"({esc(out.subject_type)})</td></tr>"
        f"<tr><th align='left'>Expires on</th>"
        f"<td>{out.expires_on.isoformat() if out.expires_on else '-'}</td></tr>"
        "</table>"
        f"<p>&mdash; {esc(out.org_name)} certifications</p>"
        "</body></html>",
        subtype="html",
    )
    return msg


def webhook_payload(out: Outgoing, timestamp: int) -> dict[str, Any]:
    headline, todo, when = _what(out)
    return {
        "id": str(out.notification_id),
        "type": f"certification.{out.trigger}",
        "timestamp": timestamp,
        "organization_id": str(out.org_id),
        "date": when.isoformat(),
        "today": out.today.isoformat(),
        "timezone": out.timezone,
        "message": headline,
        "action": todo,
        "certification": {"id": str(out.certification_id), "name": out.certification_name},
        "subject": {"type": out.subject_type, "id": str(out.subject_id), "name": out.subject_name},
        "assignment": {
            "id": str(out.assignment_id),
            "status": out.status,
            "cycle": out.cycle,
            "issued_on": out.issued_on.isoformat() if out.issued_on else None,
            "expires_on": out.expires_on.isoformat() if out.expires_on else None,
        },
    }
