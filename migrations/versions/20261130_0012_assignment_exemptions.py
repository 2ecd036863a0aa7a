"""assignments: exemptions (reason, until, by, at) — outside compliance while set

Nullable columns, no data to move: an assignment is exempt while `exempt_at` is set.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30 04:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("assignments", sa.Column("exempt_reason", sa.Text(), nullable=True))
    op.add_column("assignments", sa.Column("exempt_until", sa.Date(), nullable=True))
    op.add_column("assignments", sa.Column("exempt_by", sa.String(200), nullable=True))
    op.add_column("assignments", sa.Column("exempt_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    for column in ("exempt_at", "exempt_by", "exempt_until", "exempt_reason"):
        op.drop_column("assignments", column)
