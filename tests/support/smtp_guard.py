"""No test talks SMTP unless it asked for a server to talk to.

An autouse fixture patches `smtplib.SMTP.connect` (which `SMTP_SSL` and `LMTP` inherit) for
every test that requests none of `SMTP_FIXTURES`: the connection is refused before any socket
opens, and the test fails at teardown naming where it tried to connect. Delivery code swallows
connection errors (a "retry"), so refusing alone would not make such a test fail.

Registered by `tests/conftest.py` (`pytest_plugins`). It guards this process, including the
in-process worker's threads; a `dramatiq` worker process (the PostgreSQL + Redis run) is out
of its reach.
"""

from __future__ import annotations

import smtplib
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

# Fixtures that run an SMTP server for the test (tests/automation): requesting one allows it.
SMTP_FIXTURES = frozenset({"smtp", "tls_smtp"})


class UnexpectedSmtp(ConnectionRefusedError):
    """What the guarded `connect` raises instead of connecting."""


class SmtpGuard:
    def __init__(self) -> None:
        self.attempts: list[str] = []

    def install(self, mp: pytest.MonkeyPatch) -> None:
        guard = self

        def connect(smtp: smtplib.SMTP, host: str = "localhost", port: int = 0, *_: Any) -> Any:
            where = f"{type(smtp).__name__} to {host}:{port}"
            guard.attempts.append(where)
            raise UnexpectedSmtp(f"unexpected SMTP connection ({where}): {guard.advice}")

        mp.setattr(smtplib.SMTP, "connect", connect)

    advice = (
        "request the `smtp` fixture (or `tls_smtp`) for a server that receives mail, or "
        "deliver with settings that do not send (smtp_host=None logs the message)"
    )

    def failure(self, nodeid: str) -> str | None:
        if not self.attempts:
            return None
        seen = ", ".join(
            where if n == 1 else f"{where} (x{n})" for where, n in Counter(self.attempts).items()
        )
        return (
            f"{nodeid} opened {len(self.attempts)} SMTP connection(s) without an SMTP "
            f"fixture: {seen}; {self.advice}. A worker thread delivering another test's mail "
            "counts too: drain the jobs that send mail in the test that made them."
        )


@pytest.fixture(autouse=True)
def _no_unexpected_smtp(request: pytest.FixtureRequest) -> Iterator[SmtpGuard | None]:
    if SMTP_FIXTURES & set(request.fixturenames):
        yield None
        return
    guard = SmtpGuard()
    with pytest.MonkeyPatch.context() as mp:  # its own: a test's monkeypatch.undo() keeps it
        guard.install(mp)
        yield guard
    message = guard.failure(request.node.nodeid)
    if message:
        pytest.fail(message, pytrace=False)
