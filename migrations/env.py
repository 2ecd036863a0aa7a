"""Alembic environment: migrates as the owner role, then grants the app role its rows."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, text

import certifications.tables  # noqa: F401 - registers every table on the metadata
from infra.database import Base
from infra.settings import load_settings
from tenancy import rls

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    return config.attributes.get("url") or load_settings().migration_database_url


def _grant_app_role(connection, role: str) -> None:  # type: ignore[no-untyped-def]
    """The app role may read and write rows, never own tables: RLS then binds it."""
    quoted = connection.dialect.identifier_preparer.quote(role)
    connection.execute(text(f"GRANT USAGE ON SCHEMA public TO {quoted}"))
    connection.execute(
        text(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {quoted}")
    )
    # Identity columns (webhook_events.seq) draw from sequences the app role must use.
    connection.execute(text(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {quoted}"))
    connection.execute(text(f"REVOKE ALL ON alembic_version FROM {quoted}"))
    connection.execute(text(f"GRANT SELECT ON alembic_version TO {quoted}"))
    # The blanket grant above also covered owner-only (platform_keys) and append-only
    # (audit_events) tables: take that back (migration 0010).
    rls.restrict_app_role(connection, role)


def _platform_keys() -> tuple[str, ...]:
    keys = config.attributes.get("platform_keys")
    return tuple(keys) if keys else load_settings().db_platform_keys


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connectable = config.attributes.get("connection")
    if connectable is None:
        engine = create_engine(_url())
        try:
            with engine.connect() as connection:
                _run(connection)
        finally:
            # Also when a migration refuses (raises): a pooled connection left to the garbage
            # collector is closed at some later, unrelated moment with a ResourceWarning.
            engine.dispose()
    else:
        _run(connectable)


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
        role = config.attributes.get("app_role") or load_settings().db_app_role
        if role and connection.dialect.name == "postgresql":
            _grant_app_role(connection, role)
        # The digests of DB_PLATFORM_KEYS, as configured now (rotation: see docs/operations.md).
        rls.store_platform_keys(connection, _platform_keys())
    connection.commit()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
