"""The one bootstrap: settings in, a wired process out. Nothing in the project does this at import.

`bootstrap(settings)` builds the engine and the session factory, installs tenant scoping, the
audit trail and the after-commit outbox relay *on that factory*, builds the broker, sets the
keys that open stored webhook secrets (`tenancy.sealed`), and makes them the process's own.
`api.create_app`, `certs worker|scheduler|tick|run`, the benchmarks and the tests all start here.
"""

from __future__ import annotations

from dataclasses import dataclass

import dramatiq
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from certifications.audit.trail import install_audit_trail
from certifications.tables import metadata
from certifications.webhooks.kick import install_delivery_kick
from infra import database
from infra.settings import Settings
from jobs.broker import build_broker
from jobs.relay import Publisher, RetryPolicy, install_outbox_relay
from tenancy import sealed
from tenancy.scoping import install_tenant_scoping


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    broker: dramatiq.Broker
    # Publishes committed outbox ids off the committing thread (None: inline, in-process broker).
    publisher: Publisher | None = None


_current: Runtime | None = None


def bootstrap(settings: Settings) -> Runtime:
    """Wire this process for `settings` (again: a second call with other settings rewires it)."""
    global _current
    if _current is not None and _current.settings == settings:
        return _current
    assert metadata.tables, "every capability's tables are known to the mapper"
    engine = database.make_engine(settings)
    sessions = database.session_factory(engine)
    install_tenant_scoping(sessions, settings.db_platform_keys[0])
    sealed.use_keys(settings.webhook_secret_keys)
    install_audit_trail(sessions)
    install_delivery_kick(sessions)
    broker = build_broker(settings)
    # A network broker can be slow or hang: never in the committing request's thread.
    publisher = install_outbox_relay(
        sessions,
        broker,
        background=bool(settings.redis_url),
        retry_policy=RetryPolicy.from_settings(settings),
    )
    database.use(engine, sessions)
    dramatiq.set_broker(broker)
    _current = Runtime(
        settings=settings, engine=engine, sessions=sessions, broker=broker, publisher=publisher
    )
    return _current


def current() -> Runtime:
    """The runtime `bootstrap` made for this process (workers and the CLI use it)."""
    if _current is None:
        raise RuntimeError("runtime not bootstrapped: call runtime.bootstrap(settings) first")
    return _current
