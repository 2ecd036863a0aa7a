"""durable jobs: outbox leases, broker epochs, retry bookkeeping; outbox rows by status in metrics

`outbox` gains what lets the sweep (jobs/relay.py) recover work without waiting 15 minutes and
retry failed jobs for hours instead of seconds:

- `lease_expires_at`, `claimed_by`: the worker running a message holds its row's lease and
  renews it (workers/lease.py); a `sent` row whose lease ran out lost its worker.
- `broker_epoch`: the life of Redis the message was published into; another epoch now means
  Redis lost it.
- `failures`, `first_failed_at`, `retry_at`: Dramatiq gave up `failures` times; the sweep sends
  the row again at `retry_at`, until the retry window after `first_failed_at` (then `dead`).

Rows already `failed` before this revision are left alone (no `retry_at`): an operator sends
them again with `certs jobs requeue --status failed` (docs/operations.md).

`certs_metrics_gauges()` (0008) also returns `outbox_rows` by status (`done` left out: it only
grows), so `/metrics` exports `certs_outbox_rows{status="dead"}`.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30 04:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

# 0008's function with one more pass over the outbox; CREATE OR REPLACE keeps its owner,
# SECURITY DEFINER, search_path and grants (same signature and result type).
BODY = """
CREATE OR REPLACE FUNCTION certs_metrics_gauges()
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
  outbox_by_status jsonb := '{}';
BEGIN
  -- The outbox is platform-readable (its rows may have no organization): one pass.
  PERFORM set_config('app.platform', 'on', true);
  SELECT count(*), min(o.created_at) INTO backlog, oldest
    FROM outbox o WHERE o.status IN ('pending', 'sent');
  %(outbox_rows)s
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
  %(return_outbox_rows)s
END
$fn$
"""

OUTBOX_ROWS = """FOR r IN SELECT o.status AS k, count(*) AS n FROM outbox o
           WHERE o.status <> 'done' GROUP BY o.status LOOP
    outbox_by_status := outbox_by_status || jsonb_build_object(r.k, r.n);
  END LOOP;"""
RETURN_OUTBOX_ROWS = """RETURN QUERY SELECT 'outbox_rows', s.k, coalesce(
      (outbox_by_status ->> s.k)::double precision, 0)
    FROM unnest(ARRAY['pending', 'sent', 'failed', 'dead']) AS s(k);"""


def _columns() -> list[sa.Column[object]]:
    return [
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claimed_by", sa.String(length=64), nullable=True),
        sa.Column("broker_epoch", sa.String(length=64), nullable=True),
        sa.Column("failures", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("first_failed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("retry_at", sa.DateTime(timezone=True), nullable=True),
    ]


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch_op:
        for column in _columns():
            batch_op.add_column(column)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(BODY % {"outbox_rows": OUTBOX_ROWS, "return_outbox_rows": RETURN_OUTBOX_ROWS})


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(BODY % {"outbox_rows": "", "return_outbox_rows": ""})
    # `dead` rows stay `dead`: the code before 0011 never touches a status it does not know,
    # which is what `failed` meant there (never retried).
    with op.batch_alter_table("outbox") as batch_op:
        for column in reversed(_columns()):
            batch_op.drop_column(column.name)
