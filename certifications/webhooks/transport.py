"""How an event leaves: a signed JSON POST over one HTTP connection per batch.

Signed as the notification webhooks are (`automation.transports.sign`): `X-Signature:
sha256=<hex HMAC-SHA256 of the raw body>`, one per active secret, comma-separated (two during
the 24 hours after a rotation). The body carries the send time (`timestamp`), so a receiver
that checks the signature can also refuse a replay older than five minutes (see README).
"""

from __future__ import annotations

import http.client
import json
import socket
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from certifications.automation.transports import (
    WEBHOOK_TIMEOUT,
    DeliveryError,
    check_webhook_target,
    sign,
    tls_context,
)
from certifications.webhooks.sending import Batch, Failure, OutgoingEvent
from tenancy.sealed import SecretUnavailable


def body_of(batch: Batch, item: OutgoingEvent, timestamp: int) -> bytes:
    event = {
        "id": str(item.event_id),
        "type": item.type,
        "sequence": item.seq,
        "occurred_at": item.occurred_at.isoformat(),
        "timestamp": timestamp,
        "organization_id": str(batch.org_id),
        "delivery_id": str(item.delivery_id),
        "attempt": item.attempt,
        "data": item.data,
    }
    return json.dumps(event, separators=(",", ":"), default=str).encode()


def headers_of(item: OutgoingEvent, body: bytes, keys: list[str], timestamp: int) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": "certs-webhooks/1",
        "X-Event-Id": str(item.event_id),
        "X-Event-Type": item.type,
        "X-Delivery-Id": str(item.delivery_id),
        "X-Timestamp": str(timestamp),
        "X-Signature": ",".join(sign(key, body) for key in keys),
    }


class Connection:
    """One keep-alive connection to the endpoint's host (reopened when the server closes it)."""

    def __init__(self, url: str) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise DeliveryError("webhook: not an http(s) URL")
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.conn: http.client.HTTPConnection
        if parts.scheme == "https":
            self.conn = http.client.HTTPSConnection(
                parts.hostname, parts.port, timeout=WEBHOOK_TIMEOUT, context=tls_context()
            )
        else:
            self.conn = http.client.HTTPConnection(
                parts.hostname, parts.port, timeout=WEBHOOK_TIMEOUT
            )

    def post(self, body: bytes, headers: dict[str, str]) -> int:
        """The receiver's status code (a redirect is not followed); DeliveryError if none."""
        try:
            if self.conn.sock is None:
                self.conn.connect()
                # Small requests back to back: do not wait on Nagle + delayed ACK.
                if self.conn.sock is not None:
                    self.conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.conn.request("POST", self.path, body=body, headers=headers)
            resp = self.conn.getresponse()
            resp.read()
            if resp.will_close:
                self.conn.close()
            return resp.status
        except (OSError, http.client.HTTPException) as exc:
            self.conn.close()
            raise DeliveryError(f"webhook: {exc}") from exc

    def close(self) -> None:
        self.conn.close()


@contextmanager
def connect(batch: Batch, *, allow_private: bool) -> Iterator[Connection]:
    """The SSRF guard on the endpoint's URL, then a connection to it."""
    check_webhook_target(batch.url, allow_private=allow_private)
    conn = Connection(batch.url)
    try:
        yield conn
    finally:
        conn.close()


def reveal(batch: Batch) -> list[str]:
    try:
        return [secret.reveal() for secret in batch.secrets]
    except SecretUnavailable as exc:  # never send unsigned what should be signed
        raise DeliveryError(f"webhook: {exc}") from exc


def send_batch(
    batch: Batch, *, allow_private: bool
) -> tuple[list[tuple[uuid.UUID, int]], Failure | None]:
    """POST the batch's events in order until one fails: (delivered, failure or None)."""
    delivered: list[tuple[uuid.UUID, int]] = []
    first = batch.items[0]
    try:
        keys = reveal(batch)
        with connect(batch, allow_private=allow_private) as conn:
            for item in batch.items:
                timestamp = int(time.time())
                body = body_of(batch, item, timestamp)
                try:
                    code = conn.post(body, headers_of(item, body, keys, timestamp))
                except DeliveryError as exc:
                    return delivered, Failure(item.delivery_id, str(exc))
                if not 200 <= code < 300:
                    return delivered, Failure(
                        item.delivery_id, f"webhook answered HTTP {code}", code
                    )
                delivered.append((item.delivery_id, code))
    except DeliveryError as exc:
        return delivered, Failure(first.delivery_id, str(exc))
    return delivered, None
