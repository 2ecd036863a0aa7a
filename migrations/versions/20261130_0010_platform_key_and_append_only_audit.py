"""platform key, organizations under RLS, append-only audit events, sealed webhook secrets

Until now any app connection could `set_config('app.platform', 'on', true)` and read every
organization's outbox and tick state, and `organizations` had no row-level security at all:
one SQL injection or one forgotten filter away from every tenant. Platform work stays where it
was (the relay, the scheduler, creating organizations, the metrics gauges), but being the
platform now takes something the app role cannot produce on its own:

- `platform_keys` (sha256 digests; `certs db upgrade` writes those of `DB_PLATFORM_KEYS`, see
  migrations/env.py) is readable by the owner only.
- `certs_platform(caller, login)`: SECURITY DEFINER, owned by the owner, fixed search_path.
  True when the transaction's `app.platform` hashes to a stored digest, or when the query runs
  as the owner inside one of the owner's SECURITY DEFINER functions called by another login
  (`certs_metrics_gauges()`, migration 0008). EXECUTE: the app role only (policies call it).
- Every policy still testing `app.platform = 'on'` (outbox, recompute_state, and any later
  table made platform-readable before this revision) gets `(SELECT certs_platform(current_user,
  session_user))` instead: one evaluation per statement.
- `organizations`: ENABLE + FORCE RLS, the own row (`id = app.org_id`) or platform work.
- `audit_events`: UPDATE, DELETE, TRUNCATE revoked from the app role; it inserts and reads.
  migrations/env.py re-applies both revocations after its blanket grant on every upgrade.

`organizations.webhook_secret` becomes TEXT: it now holds `fernet:<token>` (tenancy/sealed.py),
longer than the 200-character secret. The migration cannot encrypt existing values: the keys
are the app's (WEBHOOK_SECRET_KEYS), not the migration's. A value without the `fernet:` prefix
is read as the secret itself until `certs secrets rotate` seals it (docs/operations.md).

SQLite has no roles nor RLS: only the (unused) `platform_keys` table is created there, so the
models and the migrations agree on both dialects.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 02:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy import text

from infra.settings import load_settings
from tenancy import rls

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

ORG_POLICY = f"id = {rls.CURRENT_ORG} OR {rls.KEYED_PLATFORM}"


def _app_role() -> str | None:
    """The role `migrations/env.py` grants table rights to (same sources, same order)."""
    return context.config.attributes.get("app_role") or load_settings().db_app_role


def _policies_mentioning(fragment: str) -> list[str]:
    rows = op.get_bind().execute(
        text(
            "SELECT tablename FROM pg_policies WHERE schemaname = current_schema() "
            "AND policyname = 'tenant_isolation' AND qual LIKE :f ORDER BY tablename"
        ),
        {"f": f"%{fragment}%"},
    )
    return [row[0] for row in rows]


def _rewrite_platform_policies(fragment: str, platform: str) -> None:
    """Recreate `rls.enable(..., platform_readable=True)` policies with another platform clause."""
    for table in _policies_mentioning(fragment):
        op.execute(f"DROP POLICY tenant_isolation ON {table}")
        rls.create_policy(table, f"(org_id = {rls.CURRENT_ORG}) OR {platform}")


def upgrade() -> None:
    op.create_table(
        "platform_keys",
        sa.Column("digest", sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint("digest", name=op.f("pk_platform_keys")),
    )
    with op.batch_alter_table("organizations") as batch_op:
        batch_op.alter_column(
            "webhook_secret",
            existing_type=sa.String(length=200),
            type_=sa.Text(),
            existing_nullable=True,
        )
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    op.execute("REVOKE ALL ON platform_keys FROM PUBLIC")
    op.execute(rls.PLATFORM_FUNCTION)
    op.execute(f"REVOKE ALL ON FUNCTION {rls.PLATFORM_SIGNATURE} FROM PUBLIC")
    role = _app_role()
    if role:
        quoted = bind.dialect.identifier_preparer.quote(role)
        op.execute(f"GRANT EXECUTE ON FUNCTION {rls.PLATFORM_SIGNATURE} TO {quoted}")
        rls.restrict_app_role(bind, role)
    _rewrite_platform_policies("app.platform", rls.KEYED_PLATFORM)
    op.execute("ALTER TABLE organizations ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE organizations FORCE ROW LEVEL SECURITY")
    rls.create_policy("organizations", ORG_POLICY)


def downgrade() -> None:
    is_postgres = op.get_bind().dialect.name == "postgresql"
    if is_postgres:  # first, so that the check below sees every organization
        op.execute("DROP POLICY IF EXISTS tenant_isolation ON organizations")
        op.execute("ALTER TABLE organizations NO FORCE ROW LEVEL SECURITY")
        op.execute("ALTER TABLE organizations DISABLE ROW LEVEL SECURITY")
    # The code before 0010 would take `fernet:<token>` for the secret itself and sign with it
    # (or, once the column is cut to 200 characters, not have it at all): refuse (the whole
    # downgrade rolls back) rather than silently break every receiver's signature check.
    sealed = op.get_bind().scalar(
        text("SELECT count(*) FROM organizations WHERE webhook_secret LIKE 'fernet:%'")
    )
    if sealed:
        raise RuntimeError(
            f"{sealed} organization(s) have a sealed webhook secret the code before 0010 cannot "
            "read: set organizations.webhook_secret to NULL (the organizations re-enter their "
            "secrets after the downgrade) before downgrading past 0010"
        )
    if is_postgres:
        _rewrite_platform_policies("certs_platform", rls.LEGACY_PLATFORM)
        op.execute(f"DROP FUNCTION IF EXISTS {rls.PLATFORM_SIGNATURE}")
        role = _app_role()
        if role:
            quoted = op.get_bind().dialect.identifier_preparer.quote(role)
            op.execute(f"GRANT UPDATE, DELETE ON audit_events TO {quoted}")
    op.drop_table("platform_keys")
    with op.batch_alter_table("organizations") as batch_op:
        batch_op.alter_column(
            "webhook_secret",
            existing_type=sa.Text(),
            type_=sa.String(length=200),
            existing_nullable=True,
        )
