"""recompute state: when each org's statuses were last recomputed (scheduler bookkeeping)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 05:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tenancy import rls

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "recompute_state",
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("local_date", sa.Date(), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("changed", sa.Integer(), nullable=True),
        sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organizations.id"], name=op.f("fk_recompute_state_org_id_organizations")
        ),
        sa.PrimaryKeyConstraint("org_id", name=op.f("pk_recompute_state")),
    )
    rls.enable("recompute_state", platform_readable=True)


def downgrade() -> None:
    rls.disable("recompute_state")
    op.drop_table("recompute_state")
