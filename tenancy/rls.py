"""Row-level security DDL for migrations (PostgreSQL only; a no-op elsewhere)."""

from __future__ import annotations

from alembic import op

CURRENT_ORG = "NULLIF(current_setting('app.org_id', true), '')::uuid"
PLATFORM = "current_setting('app.platform', true) = 'on'"


def _is_postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def enable(table: str, *, platform_readable: bool = False) -> None:
    """ENABLE + FORCE RLS with one policy binding reads and writes to the current org."""
    if not _is_postgres():
        return
    cond = f"org_id = {CURRENT_ORG}"
    if platform_readable:
        cond = f"({cond}) OR {PLATFORM}"
    op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY tenant_isolation ON {table} USING ({cond}) WITH CHECK ({cond})")


def disable(table: str) -> None:
    if not _is_postgres():
        return
    op.execute(f"DROP POLICY IF EXISTS tenant_isolation ON {table}")
    op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
