"""Delivering one notification: claim it, send it (SMTP or a signed webhook), record the outcome.

At-least-once with dedupe. The claim (`pending → sending`, attempts + 1) commits before anything
leaves, so two workers never send the same row at once. A worker killed after sending but before
marking leaves the row `sending`; once its lease expires another worker sends it again, with the
same `Message-ID` (email) or `X-Delivery-Id` (webhook) so receivers can drop the duplicate.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import ipaddress
import json
import logging
import smtplib
import socket
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from certifications.assignments.models import Assignment
from certifications.automation.models import Notification
from certifications.catalog.models import Certification
from certifications.directory.models import SUBJECT_MODELS
from infra import database as db
from infra.context import require_org_id
from infra.settings import Settings
from tenancy.models import Organization

log = logging.getLogger("certs.delivery")

LEASE = timedelta(minutes=5)  # a `sending` row older than this belongs to a dead worker
SMTP_TIMEOUT = 20
WEBHOOK_TIMEOUT = 10


class DeliveryError(Exception):
    """The SMTP server or webhook receiver did not accept the message (retryable)."""


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    base_ms: int = 30_000
    max_ms: int = 15 * 60_000

    def delay_ms(self, attempts: int) -> int:
        """Exponential: base, 2·base, 4·base, … capped at max_ms."""
        return int(min(self.max_ms, self.base_ms * 2 ** max(attempts - 1, 0)))


def retry_policy(settings: Settings) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=settings.notification_max_attempts,
        base_ms=settings.notification_retry_base_ms,
        max_ms=settings.notification_retry_max_ms,
    )


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
    assignment_id: uuid.UUID
    status: str
    issued_on: date | None
    expires_on: date | None
    revoked_on: date | None
    revoked_reason: str | None
    certification_id: uuid.UUID
    certification_name: str
    subject_type: str
    subject_id: uuid.UUID
    subject_name: str
    webhook_url: str | None
    webhook_secret: str | None


# ----------------------------------------------------------------------------- claim and marks


def claim(session: Session, notification_id: uuid.UUID, now: datetime) -> Outgoing | None:
    """Take the row for sending (conditional UPDATE: one winner); None if nothing to send."""
    n = Notification.__table__
    org_id = require_org_id()
    result = session.execute(
        update(n)
        .where(
            n.c.org_id == org_id,
            n.c.id == notification_id,
            or_(
                n.c.status == "pending",
                and_(n.c.status == "sending", n.c.claimed_at < now - LEASE),
            ),
        )
        .values(status="sending", attempts=n.c.attempts + 1, claimed_at=now, updated_at=now)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return None
    # One round trip for the row and what the message names (the FKs guarantee all exist).
    note, assignment, cert, org = session.execute(
        select(Notification, Assignment, Certification, Organization)
        .join(
            Assignment,
            and_(
                Assignment.org_id == Notification.org_id,
                Assignment.id == Notification.assignment_id,
            ),
        )
        .join(
            Certification,
            and_(
                Certification.org_id == Notification.org_id,
                Certification.id == Notification.certification_id,
            ),
        )
        .join(Organization, Organization.id == Notification.org_id)
        .where(Notification.id == notification_id)
        .execution_options(populate_existing=True)
    ).one()
    if assignment.cycle != note.cycle:  # renewed since: the reminder is moot
        note.status, note.last_error, note.claimed_at = "cancelled", "superseded by a renewal", None
        session.flush()
        return None
    subject = session.get(SUBJECT_MODELS[assignment.subject_type], assignment.subject_id)
    return Outgoing(
        notification_id=note.id,
        org_id=org_id,
        org_name=org.name,
        attempts=note.attempts,
        channel=note.channel,
        recipient=note.recipient,
        trigger=note.trigger,
        cycle=note.cycle,
        triggered_on=note.triggered_on,
        assignment_id=assignment.id,
        status=assignment.status,
        issued_on=assignment.issued_on,
        expires_on=assignment.expires_on,
        revoked_on=assignment.revoked_at.date() if assignment.revoked_at else None,
        revoked_reason=assignment.revoked_reason,
        certification_id=cert.id,
        certification_name=cert.name,
        subject_type=assignment.subject_type,
        subject_id=assignment.subject_id,
        subject_name=subject.name
        if subject is not None
        else f"{assignment.subject_type} (deleted)",
        webhook_url=org.webhook_url,
        webhook_secret=org.webhook_secret,
    )


def mark_sent(session: Session, out: Outgoing, via: str, now: datetime) -> None:
    n = Notification.__table__
    session.execute(
        update(n)
        .where(n.c.org_id == out.org_id, n.c.id == out.notification_id, n.c.status != "sent")
        .values(status="sent", delivered_via=via, sent_at=now, last_error=None, updated_at=now)
    )


def mark_failure(
    session: Session, out: Outgoing, error: str, now: datetime, policy: RetryPolicy
) -> int | None:
    """Back to `pending` with the error (returns the retry delay), or `failed` when exhausted."""
    final = out.attempts >= policy.max_attempts
    n = Notification.__table__
    session.execute(
        update(n)
        .where(
            n.c.org_id == out.org_id,
            n.c.id == out.notification_id,
            n.c.status == "sending",
            n.c.attempts == out.attempts,  # a newer claim owns the row now
        )
        .values(
            status="failed" if final else "pending",
            last_error=error[:2000],
            claimed_at=None,
            updated_at=now,
        )
    )
    return None if final else policy.delay_ms(out.attempts)


def mark_exhausted(session: Session, notification_id: uuid.UUID, error: str, now: datetime) -> None:
    """`failed` for good: the retries ran out before a failure could be recorded."""
    n = Notification.__table__
    session.execute(
        update(n)
        .where(
            n.c.org_id == require_org_id(),
            n.c.id == notification_id,
            n.c.status.in_(("pending", "sending")),
        )
        .values(status="failed", last_error=error[:2000], claimed_at=None, updated_at=now)
    )


# ----------------------------------------------------------------------------- content


def _what(out: Outgoing) -> tuple[str, str, date]:
    """(headline, what to do, the date that matters) for the trigger."""
    who = f"{out.certification_name} for {out.subject_name}"
    if out.trigger == "before_expiry" and out.expires_on is not None:
        days = (out.expires_on - out.triggered_on).days
        return (
            f"{who} expires on {out.expires_on.isoformat()} (in {days} days)",
            "Arrange the renewal before that date and record the new certificate.",
            out.expires_on,
        )
    if out.trigger == "expired":
        when = out.expires_on or out.triggered_on
        return (
            f"{who} expired on {when.isoformat()}",
            "Renew it now and record the new certificate; until then it does not count as valid.",
            when,
        )
    if out.trigger == "revoked":
        when = out.revoked_on or out.triggered_on
        reason = f" (reason: {out.revoked_reason})" if out.revoked_reason else ""
        return (
            f"{who} was revoked on {when.isoformat()}{reason}",
            "Arrange a new certification, or reassign duties that require it.",
            when,
        )
    return (
        f"{who} is missing (as of {out.triggered_on.isoformat()})",
        "Record the certificate (issue date and any required form) so it counts as valid.",
        out.triggered_on,
    )


def compose_email(out: Outgoing, settings: Settings) -> EmailMessage:
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


def sign(secret: str, body: bytes) -> str:
    """`sha256=<hex HMAC-SHA256 of the raw body under the org's webhook secret>`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


# ----------------------------------------------------------------------------- transports


def send(out: Outgoing, settings: Settings) -> str:
    """Send over the notification's channel; returns how (`smtp`, `log`, `webhook`)."""
    if out.channel == "webhook":
        _post_webhook(out, settings)
        return "webhook"
    msg = compose_email(out, settings)
    if not settings.smtp_host:
        log.info(
            "email (no SMTP_HOST configured) to=%s subject=%s\n%s",
            out.recipient,
            msg["Subject"],
            msg.get_body(("plain",)).get_content(),  # type: ignore[union-attr]
        )
        return "log"
    _send_smtp(msg, settings)
    return "smtp"


def tls_context() -> ssl.SSLContext:
    return ssl.create_default_context()


def _send_smtp(msg: EmailMessage, settings: Settings) -> None:
    try:
        smtp = smtplib.SMTP(settings.smtp_host or "", settings.smtp_port, timeout=SMTP_TIMEOUT)
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryError(f"SMTP: {exc}") from exc
    try:
        if settings.smtp_starttls:
            smtp.starttls(context=tls_context())
        if settings.smtp_username:
            smtp.login(settings.smtp_username, settings.smtp_password or "")
        smtp.send_message(msg)
    except (smtplib.SMTPException, OSError) as exc:
        smtp.close()  # no polite QUIT after an error: some servers never answer it
        raise DeliveryError(f"SMTP: {exc}") from exc
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()  # the message was accepted; a failed goodbye changes nothing


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect would turn the signed POST into a GET elsewhere: treat 3xx as a failure."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirect)


def check_webhook_target(url: str, *, allow_private: bool) -> None:
    """Refuse a webhook whose host resolves to a non-public address (SSRF into our network).

    Checked at send time, on every address the name resolves to. A DNS answer that changes
    between this check and the connection (rebinding) is not covered; see docs/decisions.md.
    """
    if allow_private:
        return
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname
    if not host:
        raise DeliveryError("webhook: the URL has no host")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (OSError, ValueError) as exc:
        raise DeliveryError(f"webhook: cannot resolve {host}: {exc}") from exc
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global or address.is_multicast:
            raise DeliveryError(f"webhook: refusing a non-public address ({address}) for {host}")


def _post_webhook(out: Outgoing, settings: Settings) -> None:
    url = out.webhook_url
    if not url or not url.startswith(("https://", "http://")):
        raise DeliveryError("webhook: the organization has no webhook URL")
    check_webhook_target(url, allow_private=settings.webhook_allow_private)
    timestamp = int(time.time())
    body = json.dumps(webhook_payload(out, timestamp), separators=(",", ":")).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "certs-webhooks/1",
        "X-Delivery-Id": str(out.notification_id),
        "X-Timestamp": str(timestamp),
    }
    if out.webhook_secret:
        headers["X-Signature"] = sign(out.webhook_secret, body)
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310 - http(s) only, checked above
    try:
        with _opener.open(request, timeout=WEBHOOK_TIMEOUT) as resp:
            if not 200 <= resp.status < 300:
                raise DeliveryError(f"webhook answered HTTP {resp.status}")
    except urllib.error.HTTPError as exc:
        raise DeliveryError(f"webhook answered HTTP {exc.code}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise DeliveryError(f"webhook: {exc}") from exc


__all__ = ["DeliveryError", "RetryPolicy", "claim", "mark_failure", "mark_sent", "send", "sign"]
