"""How a notification leaves: SMTP (or the log, without SMTP_HOST) or a signed webhook POST.

A transport raises `DeliveryError` when the receiver did not accept the message; the caller
records it and retries (`automation.delivery.mark_failure`). Webhook targets are checked
against private addresses at send time (`check_webhook_target`).
"""

from __future__ import annotations

import hashlib
import hmac
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
from email.message import EmailMessage
from typing import Any

from certifications.automation.digest_mail import compose_digest
from certifications.automation.digests import DigestOut
from certifications.automation.messages import Outgoing, compose_email, webhook_payload
from certifications.automation.report_mail import compose_report
from certifications.reporting.runs import ReportOut
from infra.settings import Settings
from tenancy.sealed import SecretUnavailable

log = logging.getLogger("certs.delivery")

SMTP_TIMEOUT = 20
WEBHOOK_TIMEOUT = 10


class DeliveryError(Exception):
    """The SMTP server or webhook receiver did not accept the message (retryable)."""


def sign(secret: str, body: bytes) -> str:
    """`sha256=<hex HMAC-SHA256 of the raw body under the org's webhook secret>`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


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


def send_digest(out: DigestOut, settings: Settings) -> str:
    """Send a digest email; returns how (`smtp`, or `log` without SMTP_HOST)."""
    msg = compose_digest(out, settings)
    if not settings.smtp_host:
        log.info(
            "digest email (no SMTP_HOST configured) to=%s subject=%s", out.recipient, msg["Subject"]
        )
        return "log"
    _send_smtp(msg, settings)
    return "smtp"


def send_report(out: ReportOut, settings: Settings) -> str:
    """Send a scheduled report's email with its file; returns how (`smtp`, or `log`)."""
    msg = compose_report(out, settings)
    if not settings.smtp_host:
        log.info(
            "report email (no SMTP_HOST configured) to=%s subject=%s attachment=%s (%s bytes)",
            msg["To"],
            msg["Subject"],
            out.file.filename,
            len(out.file.data),
        )
        return "log"
    _send_smtp(msg, settings)
    return "smtp"


def tls_context() -> ssl.SSLContext:
    return ssl.create_default_context()


def send_email(msg: EmailMessage, settings: Settings) -> None:
    """Send a composed message over SMTP (DeliveryError when refused)."""
    _send_smtp(msg, settings)


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
        if not is_public_address(address):
            raise DeliveryError(f"webhook: refusing a non-public address ({address}) for {host}")


# IPv6 addresses that carry an IPv4 address the packets end up at (a dual-stack socket, a
# NAT64 gateway, a 6to4 relay): `is_global` judges the IPv6 form, not where it leads, and calls
# `::127.0.0.1` or `64:ff9b::7f00:1` global.
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")  # deprecated (RFC 4291 2.5.5.1)
_IPV4_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")  # SIIT (RFC 2765)
_NAT64_WELL_KNOWN = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052
_NAT64_LOCAL_USE = ipaddress.IPv6Network("64:ff9b:1::/48")  # RFC 8215: a network's own NAT64


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if any(address in net for net in (_IPV4_COMPATIBLE, _IPV4_TRANSLATED, _NAT64_WELL_KNOWN)):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_public_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Global unicast, and so is any IPv4 address an IPv6 form embeds (mapped, compatible,
    translated, NAT64, 6to4). The local-use NAT64 prefix leads into the operator's network."""
    if not address.is_global or address.is_multicast:
        return False
    if isinstance(address, ipaddress.IPv6Address):
        if address in _NAT64_LOCAL_USE:
            return False
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return is_public_address(embedded)
    return True


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
    if out.webhook_secret is not None:
        try:
            key = out.webhook_secret.reveal()
        except SecretUnavailable as exc:  # never send unsigned what should be signed
            raise DeliveryError(f"webhook: {exc}") from exc
        headers["X-Signature"] = sign(key, body)
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310 - http(s) only, checked above
    try:
        with _opener.open(request, timeout=WEBHOOK_TIMEOUT) as resp:
            if not 200 <= resp.status < 300:
                raise DeliveryError(f"webhook answered HTTP {resp.status}")
    except urllib.error.HTTPError as exc:
        raise DeliveryError(f"webhook answered HTTP {exc.code}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise DeliveryError(f"webhook: {exc}") from exc
