"""Test backends: a fresh SQLite file, or a fresh PostgreSQL database with owner and app roles.

`CERTS_TEST_BACKEND=postgres` selects PostgreSQL (`TEST_PG_ADMIN_URL`, default the local
superuser) and is what `.ci/run` uses with `REDIS_URL` set; the default is the embedded SQLite.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import create_engine, text

OWNER_ROLE = "certs_owner"
APP_ROLE = "certs_app"


@dataclass
class Backend:
    kind: str
    app_url: str
    owner_url: str
    app_role: str | None
    cleanup_name: str | None = None

    @property
    def is_postgres(self) -> bool:
        return self.kind == "postgres"


def _admin_url() -> str:
    return os.environ.get("TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def terminate_app_backends(admin_conn: Any, backend: Backend) -> int:
    """Terminate every app-role backend of the test database but the caller's (a restart or a
    failover as the pool sees it); returns how many. `admin_conn`: a superuser connection."""
    killed = admin_conn.execute(
        text(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = :db AND usename = :role AND pid <> pg_backend_pid()"
        ),
        {"db": backend.cleanup_name, "role": backend.app_role},
    ).scalar()
    return int(killed or 0)


def create_backend() -> Backend:
    if os.environ.get("CERTS_TEST_BACKEND", "sqlite") != "postgres":
        path = os.path.join(tempfile.mkdtemp(prefix="certs-test-"), "test.db")
        url = f"sqlite:///{path}"
        return Backend("sqlite", url, url, None)
    name = f"certs_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(_admin_url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        for role in (OWNER_ROLE, APP_ROLE):
            exists = conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role})
            if not exists.scalar():
                # NOSUPERUSER NOBYPASSRLS: the app role must be bound by the policies.
                conn.execute(text(f"CREATE ROLE {role} LOGIN NOSUPERUSER NOBYPASSRLS"))
        conn.execute(text(f"CREATE DATABASE {name} OWNER {OWNER_ROLE}"))
    admin.dispose()
    base = _admin_url().rsplit("/", 1)[0].split("://", 1)[1].split("@")[-1]
    return Backend(
        "postgres",
        app_url=f"postgresql://{APP_ROLE}@{base}/{name}",
        owner_url=f"postgresql://{OWNER_ROLE}@{base}/{name}",
        app_role=APP_ROLE,
        cleanup_name=name,
    )


def drop_backend(backend: Backend) -> None:
    if not backend.is_postgres or not backend.cleanup_name:
        return
    admin = create_engine(_admin_url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {backend.cleanup_name} WITH (FORCE)"))
    admin.dispose()
