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
    op.execute("UPDATE assignments SET cycle_recorded_by = created_by")


def downgrade() -> None:
    op.drop_column("assignments", "cycle_recorded_by")
