"""Migrations: one head; downgrade to base and back up; models and migrations agree."""

from __future__ import annotations

import dataclasses

import pytest
from alembic import command
from alembic.script import ScriptDirectory

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
