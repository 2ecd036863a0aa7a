"""assignments.cycle_recorded_by: who recorded the current cycle (the renewer, not the creator)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 01:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("assignments", sa.Column("cycle_recorded_by", sa.String(200), nullable=True))
    # Until now every cycle was stamped with the creator: the best record there is.
    if op.get_bind().dialect.name != "postgresql":
        op.execute("UPDATE assignments SET cycle_recorded_by = created_by")
        return
    # FORCE row-level security binds the migrating owner too: one organization at a time.
    op.execute(
        """
        DO $$
        DECLARE o uuid;
        BEGIN
          FOR o IN SELECT id FROM organizations LOOP
            PERFORM set_config('app.org_id', o::text, true);
            UPDATE assignments SET cycle_recorded_by = created_by WHERE org_id = o;
          END LOOP;
          PERFORM set_config('app.org_id', '', true);
        END $$
        """
    )


def downgrade() -> None:
    op.drop_column("assignments", "cycle_recorded_by")
