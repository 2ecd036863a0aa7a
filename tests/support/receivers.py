"""A real SMTP server (aiosmtpd) and a real HTTP webhook receiver on loopback, as fixtures
(`smtp`, `webhook`) for any test that delivers; registered by `tests/conftest.py`.

Only a test that requests `smtp` (or its own server, like `tls_smtp`) may open an SMTP
connection (`tests.support.smtp_guard`). The SMTP port and the shrunk retry backoff are part of
the suite's settings (`tests.support.suite`), so a `dramatiq` worker process (PostgreSQL + Redis
run) delivers to the same sink as the in-process worker.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from tests.support.suite import SMTP_PORT


@dataclass
class Mail:
    mail_from: str
    rcpt_tos: list[str]
    message: Any

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"])

    def part(self, subtype: str) -> str:
        return str(self.message.get_body((subtype,)).get_content())


@dataclass
class SmtpSink:
    """Collects what a real SMTP session delivered; `refuse` makes it answer 550 to DATA."""

    messages: list[Mail] = field(default_factory=list)
    refuse: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        if self.refuse:
            return "550 5.7.1 Mailbox unavailable (test refuses)"
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.messages.append(Mail(envelope.mail_from, list(envelope.rcpt_tos), msg))
        return "250 OK"

    def reset(self) -> None:
        with self.lock:
            self.messages.clear()
        self.refuse = False

    def to(self, address: str) -> list[Mail]:
        return [m for m in self.messages if address in m.rcpt_tos]


@pytest.fixture(scope="session")
def _smtp_controller() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    controller = Controller(sink, hostname="127.0.0.1", port=SMTP_PORT)
    controller.start()
    yield sink
    controller.stop()


@pytest.fixture
def smtp(_smtp_controller: SmtpSink) -> Iterator[SmtpSink]:
    _smtp_controller.reset()
    yield _smtp_controller
    _smtp_controller.reset()


@dataclass
class Hook:
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def verifies(self, secret: str) -> bool:
        """One of the (comma-separated) signatures is the body's HMAC under `secret`."""
        expected = "sha256=" + hmac.new(secret.encode(), self.body, hashlib.sha256).hexdigest()
        given = self.headers.get("X-Signature", "").split(",")
        return any(hmac.compare_digest(expected, sig.strip()) for sig in given)


@dataclass
class WebhookReceiver:
    url: str
    received: list[Hook] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)  # answers to give, in order; then 200
    # While `down`, every request is answered 503 and only counted (a receiver in an outage).
    down: bool = False
    refused: int = 0


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if receiver.down:
                receiver.refused += 1
                self.send_response(503)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            receiver.received.append(Hook(dict(self.headers), body))
            status = receiver.statuses.pop(0) if receiver.statuses else 200
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield receiver
    server.shutdown()
    server.server_close()
