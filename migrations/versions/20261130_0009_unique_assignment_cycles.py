"""assignment_cycles: one row per (org_id, assignment_id, cycle), a unique index

Concurrent renewals used to lose updates: each read the assignment without a lock, closed the
cycle it had read and wrote `cycle = old + 1`, so several renewals recorded the same closed
cycle and all but one of their new cycles were lost. The service now locks the row first; this
unique index makes a lost renewal impossible to store at all.

Existing duplicates are removed first, not refused: they are copies of the one cycle that was
closed, written by renewals whose own new cycle had already been overwritten, so one copy per
cycle is the history as it should have been recorded. The copy kept is the one closed last
(`closed_at`, then `created_at`, then `id`): it was read last, so it carries any correction made
to that cycle in between. Cycle numbers are not renumbered, since status events, form
submissions, tasks and notifications refer to them. The removed count is logged. Downgrade drops
the unique index (the removed copies do not come back).

FORCE row-level security binds the owner that runs migrations too, so on PostgreSQL the
clean-up runs organization by organization with `app.org_id` set (and filters on `org_id`, so
it is also right for an owner bypassing RLS). Building the index reads every row regardless of
RLS: if a duplicate escaped the clean-up, it fails and the migration stops (one transaction).

It replaces the non-unique index on the same columns, which served the same lookups.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 02:00:00
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")

TABLE = "assignment_cycles"
UNIQUE = "uq_assignment_cycles_assignment_cycle"
INDEX = "ix_assignment_cycles_assignment"
COLUMNS = ["org_id", "assignment_id", "cycle"]

# Every copy of a (org, assignment, cycle) but the one closed last. `{where}` narrows it to one
# organization on PostgreSQL.
DEDUPE = """
DELETE FROM assignment_cycles
WHERE id IN (
  SELECT id FROM (
    SELECT id, row_number() OVER (
      PARTITION BY org_id, assignment_id, cycle
      ORDER BY closed_at IS NULL, closed_at DESC, created_at DESC, id DESC
    ) AS copy
    FROM assignment_cycles {where}
  ) AS ranked
  WHERE copy > 1
)
"""


def _remove_duplicate_cycles() -> int:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return bind.execute(sa.text(DEDUPE.format(where=""))).rowcount
    removed = 0
    one_org = sa.text(DEDUPE.format(where="WHERE org_id = :org")).bindparams(
        sa.bindparam("org", type_=sa.Uuid())
    )
    org_ids = bind.execute(sa.text("SELECT id FROM organizations ORDER BY id")).scalars().all()
    for org_id in org_ids:
        bind.execute(sa.text("SELECT set_config('app.org_id', :org, true)"), {"org": str(org_id)})
        removed += bind.execute(one_org, {"org": org_id}).rowcount
    bind.execute(sa.text("SELECT set_config('app.org_id', '', true)"))
    return removed


def upgrade() -> None:
    removed = _remove_duplicate_cycles()
    if removed:
        log.warning("0009: removed %d duplicate assignment cycle row(s)", removed)
    op.create_index(UNIQUE, TABLE, COLUMNS, unique=True)
    op.drop_index(INDEX, table_name=TABLE)


def downgrade() -> None:
    op.create_index(INDEX, TABLE, COLUMNS, unique=False)
    op.drop_index(UNIQUE, table_name=TABLE)
