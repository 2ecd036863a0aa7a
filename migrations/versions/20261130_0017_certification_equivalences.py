"""certification equivalences: `satisfied_by` links; the provider of an assignment's status

- `certification_equivalences` (org_id, certification_id, provider_id): a record of the provider
  certification satisfies the certification for the same subject. Both columns reference
  certifications within the org (composite keys) and go with either certification. A tenant
  table under forced RLS like every other.
- `assignments.satisfied_via_id`: the equivalent assignment whose record gives this one its
  status (null: its own record does). Nullable, no data to move: nothing is satisfied by
  another certification until an equivalence exists.

Revision ID: 0017
Revises: 0015
Create Date: 2026-11-30 06:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tenancy import rls

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

TABLE = "certification_equivalences"


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("certification_id", sa.Uuid(), nullable=False),
        sa.Column("provider_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id", "certification_id"],
            ["certifications.org_id", "certifications.id"],
            name=op.f("fk_certification_equivalences_org_id_certification_id_certifications"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_id", "provider_id"],
            ["certifications.org_id", "certifications.id"],
            name=op.f("fk_certification_equivalences_org_id_provider_id_certifications"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_certification_equivalences_org_id_organizations"),
        ),
        sa.PrimaryKeyConstraint(
            "org_id", "certification_id", "provider_id", name=op.f("pk_certification_equivalences")
        ),
    )
    op.create_index(
        "ix_certification_equivalences_provider", TABLE, ["org_id", "provider_id"], unique=False
    )
    rls.enable(TABLE)
    # Plain ADD COLUMN (SQLite has it): a batch copy would drop the expression indexes SQLite
    # cannot reflect.
    op.add_column("assignments", sa.Column("satisfied_via_id", sa.Uuid(), nullable=True))


def downgrade() -> None:
    op.drop_column("assignments", "satisfied_via_id")
    rls.disable(TABLE)
    op.drop_index("ix_certification_equivalences_provider", table_name=TABLE)
    op.drop_table(TABLE)
