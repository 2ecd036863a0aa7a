"""Row-level security DDL for migrations (PostgreSQL only; a no-op elsewhere).

Tenant tables admit the rows of the transaction's `app.org_id`. Platform tables (the outbox,
the scheduler's bookkeeping, organizations) also admit every row to *platform* work, which
since migration 0010 is decided by `certs_platform(current_user, session_user)`, a SECURITY
DEFINER function the owner defines (see `PLATFORM_FUNCTION`):

* the transaction's `app.platform` hashes (sha256) to a row of `platform_keys`, a table only the
  owner reads: the app sets it to its first `DB_PLATFORM_KEYS` key in platform context
  (`tenancy.scoping`), and any other value (`'on'`, a guess) admits nothing more; or
* the query runs as the owner inside one of the owner's SECURITY DEFINER functions called by
  another login (the metrics gauges), which only the owner can create.

Before 0010 the condition was `app.platform = 'on'`, which any app connection could set;
`platform_condition()` keeps the old text for the migrations that ran before the function
existed, and 0010 rewrites their policies.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from alembic import op
from sqlalchemy import text

CURRENT_ORG = "NULLIF(current_setting('app.org_id', true), '')::uuid"
LEGACY_PLATFORM = "current_setting('app.platform', true) = 'on'"
# Kept for migrations written before 0010 (their policies are rewritten by 0010).
PLATFORM = LEGACY_PLATFORM
# A sub-select: evaluated once per statement (an InitPlan), not once per row.
KEYED_PLATFORM = "(SELECT certs_platform(current_user, session_user))"
PLATFORM_SIGNATURE = "certs_platform(name, name)"
PLATFORM_FUNCTION = """
CREATE FUNCTION certs_platform(caller name, login name) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $fn$
  SELECT (caller = current_user AND caller <> login)
      OR EXISTS (
           SELECT 1 FROM platform_keys k
           WHERE k.digest = sha256(convert_to(current_setting('app.platform', true), 'UTF8'))
         )
$fn$
"""
# Tables the app role may never touch (the blanket grant of migrations/env.py is taken back),
# and tables it may only read and append to.
OWNER_ONLY_TABLES = ("platform_keys",)
APPEND_ONLY_TABLES = ("audit_events",)


def _is_postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def platform_condition() -> str:
    """The platform clause for a new policy: keyed once migration 0010 created the function."""
    found = op.get_bind().scalar(text(f"SELECT to_regprocedure('{PLATFORM_SIGNATURE}')"))
    return KEYED_PLATFORM if found is not None else LEGACY_PLATFORM


def create_policy(table: str, cond: str) -> None:
    op.execute(f"CREATE POLICY tenant_isolation ON {table} USING ({cond}) WITH CHECK ({cond})")


def enable(table: str, *, platform_readable: bool = False) -> None:
    """ENABLE + FORCE RLS with one policy binding reads and writes to the current org."""
    if not _is_postgres():
        return
    cond = f"org_id = {CURRENT_ORG}"
    if platform_readable:
        cond = f"({cond}) OR {platform_condition()}"
    op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
    create_policy(table, cond)


def disable(table: str) -> None:
    if not _is_postgres():
        return
    op.execute(f"DROP POLICY IF EXISTS tenant_isolation ON {table}")
    op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")


def restrict_app_role(connection: Any, role: str) -> None:
    """Take back what the blanket table grant gave the app role on owner-only and append-only
    tables (called by migrations/env.py after that grant, and by migration 0010)."""
    quoted = connection.dialect.identifier_preparer.quote(role)
    for table in OWNER_ONLY_TABLES:
        if _exists(connection, table):
            connection.execute(text(f"REVOKE ALL ON {table} FROM {quoted}"))
    for table in APPEND_ONLY_TABLES:
        if _exists(connection, table):
            connection.execute(text(f"REVOKE UPDATE, DELETE, TRUNCATE ON {table} FROM {quoted}"))


def store_platform_keys(connection: Any, keys: Iterable[str]) -> None:
    """Make exactly these keys' digests the accepted platform keys (every `certs db upgrade`)."""
    if connection.dialect.name != "postgresql" or not _exists(connection, "platform_keys"):
        return
    digests = sorted({hashlib.sha256(key.encode()).digest() for key in keys if key})
    connection.execute(text("DELETE FROM platform_keys"))
    for digest in digests:
        connection.execute(text("INSERT INTO platform_keys (digest) VALUES (:d)"), {"d": digest})


def _exists(connection: Any, table: str) -> bool:
    return connection.scalar(text("SELECT to_regclass(:t)"), {"t": f"public.{table}"}) is not None
