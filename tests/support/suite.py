"""The suite's configuration: a fresh backend, the settings built from it, and their runtime.

Settings are passed, not put into `os.environ`; subprocesses (gunicorn, `dramatiq`, `certs`)
get the same configuration through `SUBPROCESS_ENV`.
"""

from __future__ import annotations

import atexit
import os
import socket
import tempfile
import uuid

from infra.settings import load_settings
from tests.support.backend import create_backend, drop_backend


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


BACKEND = create_backend()
atexit.register(drop_backend, BACKEND)
SMTP_PORT = free_port()

TEST_ENV: dict[str, str] = {
    "CERTS_ENV": "test",
    "DATABASE_URL": BACKEND.app_url,
    "MIGRATION_DATABASE_URL": BACKEND.owner_url,
    "JWT_SECRET_KEY": "test-secret-" + "x" * 32,
    "REDIS_NAMESPACE": f"certs-test-{uuid.uuid4().hex[:8]}",
    # A real SMTP server listens here during the tests that send mail (tests/automation).
    "SMTP_HOST": "127.0.0.1",
    "SMTP_PORT": str(SMTP_PORT),
    "MAIL_FROM": "certs@example.test",
    "NOTIFICATION_MAX_ATTEMPTS": "3",
    "NOTIFICATION_RETRY_BASE_MS": "50",
    "NOTIFICATION_RETRY_MAX_MS": "200",
    # Evidence documents of the run (local storage), never the checkout's instance folder.
    "DOCUMENT_DIR": tempfile.mkdtemp(prefix="certs-test-documents-"),
    # Limits no test reaches (fuzzers send thousands of requests as one subject); the rate
    # limit tests lower them on their own app or stack (tests/api/test_rate_limits.py).
    "RATE_LIMIT_PER_SUBJECT": "1000000/minute",
    "RATE_LIMIT_PER_ORG": "1000000/minute",
    "RATE_LIMIT_HEAVY": "1000000/minute",
}
if BACKEND.app_role:
    TEST_ENV["DB_APP_ROLE"] = BACKEND.app_role
if BACKEND.is_postgres:
    TEST_ENV["REDIS_URL"] = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    # Stacks that point REDIS_URL at a Redis they break (tests/concurrency) keep counting here.
    TEST_ENV["RATE_LIMIT_STORAGE_URL"] = TEST_ENV["REDIS_URL"]

SETTINGS = load_settings(TEST_ENV)
# What a subprocess of the suite runs with: this machine's environment, the suite's settings
# on top, and no REDIS_URL on the embedded backend.
SUBPROCESS_ENV = {k: v for k, v in os.environ.items() if k != "REDIS_URL"} | TEST_ENV
# For click's CliRunner(env=...): the suite's settings, and no REDIS_URL unless the suite has one.
CLI_ENV: dict[str, str | None] = {"REDIS_URL": None, **TEST_ENV}
