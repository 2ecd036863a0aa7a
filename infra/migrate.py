"""Run Alembic migrations from code (`certs db upgrade`, `certs run`, tests)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from infra.settings import Settings

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(settings: Settings) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("file_template", "%%(year)d%%(month).2d%%(day).2d_%%(rev)s_%%(slug)s")
    cfg.attributes["url"] = settings.migration_database_url
    cfg.attributes["app_role"] = settings.db_app_role
    cfg.attributes["platform_keys"] = settings.db_platform_keys
    return cfg


def upgrade(settings: Settings, revision: str = "head") -> None:
    if settings.migration_database_url.startswith("sqlite:///"):
        Path(settings.migration_database_url.removeprefix("sqlite:///")).parent.mkdir(
            parents=True, exist_ok=True
        )
    command.upgrade(alembic_config(settings), revision)


def downgrade(settings: Settings, revision: str = "base") -> None:
    command.downgrade(alembic_config(settings), revision)
