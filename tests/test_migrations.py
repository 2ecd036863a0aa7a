"""Migrations: one head; downgrade to base and back up; models and migrations agree."""

from __future__ import annotations

import dataclasses
import uuid

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import Uuid, bindparam, create_engine, text

from infra import migrate
from tests.support.backend import create_backend, drop_backend


def test_single_head(settings):  # type: ignore[no-untyped-def]
    script = ScriptDirectory.from_config(migrate.alembic_config(settings))
    assert len(script.get_heads()) == 1


# SQLite cannot reflect the expression index on lower(name); PostgreSQL compares it.
@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")
@pytest.mark.filterwarnings("ignore:autogenerate skipping metadata-specified expression-based")
def test_downgrade_base_upgrade_head_and_check(settings):  # type: ignore[no-untyped-def]
    backend = create_backend()
    try:
        s = dataclasses.replace(
            settings,
            migration_database_url=backend.owner_url,
            database_url=backend.app_url,
            db_app_role=backend.app_role,
        )
        migrate.upgrade(s)
        migrate.downgrade(s, "base")
        migrate.upgrade(s)
        command.check(migrate.alembic_config(s))  # raises if models drifted from migrations
    finally:
        drop_backend(backend)


def test_downgrade_past_0012_refuses_to_strand_sealed_webhook_secrets(settings):  # type: ignore[no-untyped-def]
    """The code before 0012 would sign with the `fernet:` text itself: refuse, change nothing."""
    backend = create_backend()
    try:
        s = dataclasses.replace(
            settings,
            migration_database_url=backend.owner_url,
            database_url=backend.app_url,
            db_app_role=backend.app_role,
        )
        migrate.upgrade(s)
        owner = create_engine(backend.owner_url)
        org_id = uuid.uuid4()
        with owner.begin() as conn:
            if backend.is_postgres:  # FORCE row-level security binds the owner too
                conn.execute(text("SELECT set_config('app.org_id', :o, true)"), {"o": str(org_id)})
            conn.execute(
                text(
                    "INSERT INTO organizations (id, name, timezone, modules, admin_emails, "
                    "webhook_secret, created_at, updated_at) VALUES (:i, 'Sealed', 'UTC', '[]', "
                    "'[]', 'fernet:gAAAA', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                ).bindparams(bindparam("i", type_=Uuid())),
                {"i": org_id},
            )
        try:
            with pytest.raises(RuntimeError, match="sealed webhook secret"):
                migrate.downgrade(s, "0011" if _has("0011", s) else "0008")
            with owner.connect() as conn:
                assert conn.scalar(text("SELECT version_num FROM alembic_version")) == "0012"
        finally:
            owner.dispose()
    finally:
        drop_backend(backend)


def _has(revision: str, settings) -> bool:  # type: ignore[no-untyped-def]
    script = ScriptDirectory.from_config(migrate.alembic_config(settings))
    return revision in {rev.revision for rev in script.walk_revisions()}
