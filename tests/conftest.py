"""Suite-wide fixtures: a fresh database per run, the app, a worker, API clients.

The settings come from `tests.support.suite` (passed, never put into `os.environ`); the suite
bootstraps its runtime from them once, like every entry point does.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import dramatiq
import pytest
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from api import create_app
from infra import context, migrate
from infra import database as db
from jobs import relay as outbox
from jobs.models import OutboxMessage
from runtime import bootstrap
from tenancy.auth import TENANT_SCOPES, issue_token
from tenancy.models import Organization
from tests.support.actors import TEST_ACTORS
from tests.support.backend import create_backend, drop_backend
from tests.support.collection import nondeterministic_ids, restore_param_ids
from tests.support.queries import count_queries as _count_queries
from tests.support.suite import BACKEND, SETTINGS, SUBPROCESS_ENV
from workers.actors import register_actors

pytest_plugins = [
    "pytester",  # tests of the suite's own machinery (tests/test_support.py)
    "tests.support.factories",  # make_org, make_employee, ... make_world
    "tests.support.receivers",  # smtp, webhook: real servers on loopback
    "tests.support.smtp_guard",  # a test that did not ask for an SMTP server cannot reach one
]

migrate.upgrade(SETTINGS)
RUNTIME = bootstrap(SETTINGS)
register_actors(RUNTIME.broker, SETTINGS, extra=TEST_ACTORS)

ALL_SCOPES = list(TENANT_SCOPES)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    restore_param_ids(items)
    random_ids = nondeterministic_ids(items)
    if random_ids:
        raise pytest.UsageError(
            "test ids must not depend on random values (pytest-xdist collects them once per "
            "worker and refuses lists that differ); give these parameters ids=: "
            + ", ".join(random_ids[:10])
        )
    skip_pg = pytest.mark.skip(reason="needs PostgreSQL (CERTS_TEST_BACKEND=postgres)")
    skip_redis = pytest.mark.skip(reason="needs Redis (REDIS_URL) and a dramatiq worker process")
    for item in items:
        if "postgres" in item.keywords and not BACKEND.is_postgres:
            item.add_marker(skip_pg)
        if "redis" in item.keywords and not SETTINGS.redis_url:
            item.add_marker(skip_redis)


@pytest.fixture(scope="session")
def settings():
    return SETTINGS


@pytest.fixture
def fresh(settings):
    """A database of its own (a migration test's, say): (backend, settings pointing at it)."""
    backend = create_backend()
    try:
        yield (
            backend,
            dataclasses.replace(
                settings,
                migration_database_url=backend.owner_url,
                database_url=backend.app_url,
                db_app_role=backend.app_role,
            ),
        )
    finally:
        drop_backend(backend)


@pytest.fixture(scope="session")
def backend():
    return BACKEND


@pytest.fixture(scope="session")
def runtime():
    return RUNTIME


@pytest.fixture(scope="session")
def app():
    return create_app(SETTINGS, RUNTIME)


@pytest.fixture(scope="session")
def worker() -> Iterator[Any]:
    """A real worker: a thread on the in-process broker, or a `dramatiq` process on Redis."""
    if SETTINGS.redis_url:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dramatiq",
                "tests.support.actors:setup_worker",
                "--processes",
                "1",
                "--threads",
                "4",
            ],
            env=SUBPROCESS_ENV,
        )
        time.sleep(2.0)
        assert proc.poll() is None, "dramatiq worker process died at start"
        yield proc
        proc.terminate()
        proc.wait(timeout=30)
    else:
        w = dramatiq.Worker(RUNTIME.broker, worker_threads=2)
        w.start()
        yield w
        w.stop()


# When the running test began: `drain` waits for the jobs requested since (minus a margin for
# clock rounding), not for an earlier test's leftovers - e.g. a webhook round that keeps
# retrying for minutes against an endpoint that test left failing.
_TEST_STARTED: list[Any] = [None]


@pytest.fixture(autouse=True)
def _mark_test_start() -> Iterator[None]:
    _TEST_STARTED[0] = db.utcnow() - timedelta(seconds=2)
    yield
    _TEST_STARTED[0] = None


def _this_tests() -> list[Any]:
    since = _TEST_STARTED[0]
    if since is None:
        return []
    # Only webhook rounds outlive their test (an endpoint left failing backs off for minutes);
    # other rows may be made to look old on purpose (a requeued dead job's window).
    return [or_(OutboxMessage.created_at >= since, OutboxMessage.actor_name != "deliver_webhooks")]


def drain(timeout: float = 60.0, *, broker: dramatiq.Broker | None = None) -> None:
    """Wait until every relayed outbox message has been processed (done or failed).

    Rows still pending are relayed through `broker` (the suite's by default): a live stack
    (tests/concurrency) passes its own, whose worker listens on another namespace.
    """
    deadline = time.monotonic() + timeout
    while True:
        with context.platform(), db.new_session() as s:
            pending = s.scalars(
                select(OutboxMessage.id).where(OutboxMessage.status == "pending", *_this_tests())
            ).all()
            in_flight = s.scalar(
                select(OutboxMessage.id)
                .where(OutboxMessage.status == "sent", *_this_tests())
                .limit(1)
            )
        if pending:
            outbox.relay(pending, broker=broker)
        if not pending and in_flight is None:
            return
        if time.monotonic() > deadline:
            with context.platform(), db.new_session() as s:
                stuck = s.execute(
                    select(
                        OutboxMessage.actor_name, OutboxMessage.status, OutboxMessage.payload
                    ).where(OutboxMessage.status.in_(("pending", "sent")), *_this_tests())
                ).all()
            raise TimeoutError(f"jobs still running: {stuck[:5]}")
        time.sleep(0.05)


@pytest.fixture
def count_queries():
    """`with count_queries(where=...) as q:` logs the SQL this test's thread runs (see
    `tests.support.queries`)."""
    return _count_queries


@pytest.fixture
def jobs(worker):
    """`jobs.drain()` waits for all queued work; requesting it starts the worker."""

    class _Jobs:
        drain = staticmethod(drain)

    return _Jobs()


class ApiClient:
    """A test client speaking for one organization, with paths relative to /api/v1."""

    def __init__(self, app: Any, token: str | None) -> None:
        self.client = app.test_client()
        self.token = token

    def _call(self, method: str, path: str, **kw: Any) -> Any:
        headers = dict(kw.pop("headers", {}) or {})
        if self.token and "Authorization" not in headers:
            headers["Authorization"] = f"Bearer {self.token}"
        url = path if path.startswith(("/healthz", "/readyz", "/metrics")) else "/api/v1" + path
        return getattr(self.client, method)(url, headers=headers, **kw)

    def get(self, path: str, **kw: Any) -> Any:
        return self._call("get", path, **kw)

    def post(self, path: str, **kw: Any) -> Any:
        return self._call("post", path, **kw)

    def put(self, path: str, **kw: Any) -> Any:
        return self._call("put", path, **kw)

    def patch(self, path: str, **kw: Any) -> Any:
        return self._call("patch", path, **kw)

    def delete(self, path: str, **kw: Any) -> Any:
        return self._call("delete", path, **kw)


@pytest.fixture
def token_for() -> Callable[..., str]:
    def _token(
        org: Organization | None, scopes: list[str] | None = None, sub: str = "tester", **kw: Any
    ) -> str:
        return issue_token(
            SETTINGS,
            sub=sub,
            org_id=str(org.id) if org else None,
            scopes=ALL_SCOPES if scopes is None else scopes,
            **kw,
        )

    return _token


@pytest.fixture
def api_for(app, token_for) -> Callable[..., ApiClient]:
    """`api_for(org, scopes=[...])`: a client for that org (all tenant scopes by default)."""

    def _client(org: Organization | None, scopes: list[str] | None = None, **kw: Any):
        return ApiClient(app, token_for(org, scopes, **kw))

    return _client


@pytest.fixture
def org(make_org) -> Organization:
    return make_org()


@pytest.fixture
def api(api_for, org) -> ApiClient:
    return api_for(org)


@contextmanager
def tenant_session(org_id: uuid.UUID) -> Iterator[Session]:
    """A session as one organization (for arranging and inspecting data directly)."""
    with context.tenant(org_id), db.new_session() as s:
        yield s


@pytest.fixture
def as_tenant():
    return tenant_session
