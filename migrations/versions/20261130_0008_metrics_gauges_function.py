"""metrics gauges: one SECURITY DEFINER function returns the cross-tenant counts /metrics exports

The app role is bound by row-level security (one organization per transaction setting), yet the
database gauges are totals over every organization. `certs_metrics_gauges()` computes them inside
PostgreSQL, org by org, and returns only aggregates (no ids, no rows): the app role may execute
it and nothing more. It replaces a temporary function the API re-created at every uncached
scrape (DDL at scrape time, and the TEMP privilege).

- SECURITY DEFINER, owned by the role running the migration (the table owner). FORCE row-level
  security binds that owner too, so the loop sets `app.org_id` per organization and also filters
  on `org_id`: the totals stay right if the owner bypasses RLS (superuser, BYPASSRLS).
- `SET search_path = pg_catalog, public, pg_temp`: no object of a caller's schema, nor a
  caller's temporary table (searched first unless listed last), can stand in for ours.
- The caller's `app.org_id` / `app.platform` are put back before it returns (on an error the
  transaction's rollback does it). Not `SET app.org_id = ...` clauses: PostgreSQL 15 lets only a
  superuser attach a custom setting to a function, and the owner role is no superuser.
- EXECUTE revoked from PUBLIC, granted to the app role (DB_APP_ROLE) when there is one.

SQLite has neither RLS nor functions: there the collector runs plain aggregate queries.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 00:40:00
"""

from __future__ import annotations

from alembic import context, op

from infra.settings import load_settings

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

FUNCTION = "certs_metrics_gauges()"

CREATE = """
CREATE FUNCTION certs_metrics_gauges()
RETURNS TABLE (gauge text, label text, value double precision)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $fn$
DECLARE
  caller_org text := current_setting('app.org_id', true);
  caller_platform text := current_setting('app.platform', true);
  org uuid;
  r record;
  backlog bigint;
  oldest timestamptz;
  jobs_by_state jsonb := '{}';
  notifications_by_status jsonb := '{}';
BEGIN
  -- The outbox is platform-readable (its rows may have no organization): one pass.
  PERFORM set_config('app.platform', 'on', true);
  SELECT count(*), min(o.created_at) INTO backlog, oldest
    FROM outbox o WHERE o.status IN ('pending', 'sent');
  PERFORM set_config('app.platform', '', true);

  -- Jobs and notifications are readable one organization at a time.
  FOR org IN SELECT g.id FROM organizations g LOOP
    PERFORM set_config('app.org_id', org::text, true);
    FOR r IN SELECT j.state AS k, count(*) AS n FROM jobs j WHERE j.org_id = org
             GROUP BY j.state LOOP
      jobs_by_state := jobs_by_state
        || jsonb_build_object(r.k, coalesce((jobs_by_state ->> r.k)::bigint, 0) + r.n);
    END LOOP;
    FOR r IN SELECT x.status AS k, count(*) AS n FROM notifications x WHERE x.org_id = org
             GROUP BY x.status LOOP
      notifications_by_status := notifications_by_status
        || jsonb_build_object(r.k, coalesce((notifications_by_status ->> r.k)::bigint, 0) + r.n);
    END LOOP;
  END LOOP;
  PERFORM set_config('app.org_id', coalesce(caller_org, ''), true);
  PERFORM set_config('app.platform', coalesce(caller_platform, ''), true);

  RETURN QUERY VALUES
    ('outbox_backlog', '', backlog::double precision),
    ('outbox_oldest_age_seconds', '',
     coalesce(greatest(0, extract(epoch FROM now() - oldest)), 0)::double precision);
  RETURN QUERY SELECT 'jobs', e.key, e.value::double precision
    FROM jsonb_each_text(jobs_by_state) AS e;
  RETURN QUERY SELECT 'notifications', e.key, e.value::double precision
    FROM jsonb_each_text(notifications_by_status) AS e;
END
$fn$
"""


def _app_role() -> str | None:
    """The role `migrations/env.py` grants table rights to (same sources, same order)."""
    return context.config.attributes.get("app_role") or load_settings().db_app_role


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    op.execute(CREATE)
    op.execute(f"REVOKE ALL ON FUNCTION {FUNCTION} FROM PUBLIC")
    role = _app_role()
    if role:
        quoted = bind.dialect.identifier_preparer.quote(role)
        op.execute(f"GRANT EXECUTE ON FUNCTION {FUNCTION} TO {quoted}")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"DROP FUNCTION IF EXISTS {FUNCTION}")
