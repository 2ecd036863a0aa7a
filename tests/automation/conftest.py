"""A real SMTP server (aiosmtpd) and a real HTTP webhook receiver on loopback, plus factories.

The SMTP port and the shrunk retry backoff are part of the suite's settings
(`tests.support.suite`), so a `dramatiq` worker process (PostgreSQL + Redis run) delivers to the
same sink as the in-process worker.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import hmac
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
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
        expected = "sha256=" + hmac.new(secret.encode(), self.body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, self.headers.get("X-Signature", ""))


@dataclass
class WebhookReceiver:
    url: str
    received: list[Hook] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)  # answers to give, in order; then 200


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
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


# ------------------------------------------------------------------------------ factories

TODAY = date(2026, 11, 29)


@pytest.fixture
def arrange(as_tenant) -> Callable[..., Any]:  # type: ignore[no-untyped-def]
    """`arrange(org)` → a builder that creates rows directly through the ORM as that org."""
    from certifications.assignments.models import Assignment
    from certifications.catalog.models import Certification
    from certifications.directory.models import Asset, Client, Employee

    class Builder:
        def __init__(self, org: Any) -> None:
            self.org = org

        def _add(self, obj: Any) -> Any:
            with as_tenant(self.org.id) as s:
                s.add(obj)
                s.commit()
                return obj

        def employee(self, name: str = "Ada Lovelace", email: str | None = "ada@example.test"):  # type: ignore[no-untyped-def]
            return self._add(Employee(name=name, email=email))

        def asset(self, name: str = "Crane 7"):  # type: ignore[no-untyped-def]
            return self._add(Asset(name=name))

        def client(self, name: str = "Acme", contact_email: str | None = "ops@acme.test"):  # type: ignore[no-untyped-def]
            return self._add(Client(name=name, contact_email=contact_email))

        def certification(self, name: str | None = None, type: str = "employee", **kw: Any):  # type: ignore[no-untyped-def]
            return self._add(
                Certification(
                    name=name or f"Working at Heights {uuid.uuid4().hex[:4]}",
                    type=type,
                    validity_months=12,
                    **kw,
                )
            )

        def assignment(self, cert: Any, subject: Any, **kw: Any):  # type: ignore[no-untyped-def]
            kw.setdefault("issued_on", TODAY - timedelta(days=300))
            kw.setdefault("effective_on", kw["issued_on"])
            kw.setdefault("status", "valid")
            return self._add(
                Assignment(
                    certification_id=cert.id,
                    subject_type=cert.type,
                    subject_id=subject.id,
                    **kw,
                )
            )

    return Builder
