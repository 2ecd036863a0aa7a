"""catalog

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 04:40:56.654526
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tenancy import rls

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "certification_groups",
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("parent_id", sa.Uuid(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["org_id", "parent_id"],
            ["certification_groups.org_id", "certification_groups.id"],
            name=op.f("fk_certification_groups_org_id_parent_id_certification_groups"),
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_certification_groups_org_id_organizations"),
        ),
        sa.PrimaryKeyConstraint("org_id", "id", name=op.f("pk_certification_groups")),
    )
    with op.batch_alter_table("certification_groups", schema=None) as batch_op:
        batch_op.create_index(
            "ix_certification_groups_org_parent", ["org_id", "parent_id"], unique=False
        )

    op.create_table(
        "certifications",
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("issuer", sa.String(length=200), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("cost", sa.Numeric(precision=12, scale=2), nullable=True),
        sa.Column("validity_months", sa.Integer(), nullable=True),
        sa.Column("validity_days", sa.Integer(), nullable=True),
        sa.Column("warning_days", sa.Integer(), server_default=sa.text("(30)"), nullable=False),
        sa.Column("valid_when_added", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("forms_required", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("form", sa.JSON(), nullable=True),
        sa.Column("notification_rules", sa.JSON(), nullable=False),
        sa.Column("task_rules", sa.JSON(), nullable=False),
        sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(
            "type IN ('employee', 'asset', 'client', 'location')",
            name=op.f("ck_certifications_type"),
        ),
        sa.CheckConstraint(
            "cost IS NULL OR cost >= 0", name=op.f("ck_certifications_cost_not_negative")
        ),
        sa.CheckConstraint(
            "warning_days >= 0", name=op.f("ck_certifications_warning_days_not_negative")
        ),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organizations.id"], name=op.f("fk_certifications_org_id_organizations")
        ),
        sa.PrimaryKeyConstraint("org_id", "id", name=op.f("pk_certifications")),
    )
    op.create_table(
        "certification_clients",
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("certification_id", sa.Uuid(), nullable=False),
        sa.Column("client_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id", "certification_id"],
            ["certifications.org_id", "certifications.id"],
            name=op.f("fk_certification_clients_org_id_certification_id_certifications"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_id", "client_id"],
            ["clients.org_id", "clients.id"],
            name=op.f("fk_certification_clients_org_id_client_id_clients"),
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_certification_clients_org_id_organizations"),
        ),
        sa.PrimaryKeyConstraint(
            "org_id", "certification_id", "client_id", name=op.f("pk_certification_clients")
        ),
    )
    op.create_table(
        "certification_group_members",
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("certification_id", sa.Uuid(), nullable=False),
        sa.Column("group_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id", "certification_id"],
            ["certifications.org_id", "certifications.id"],
            name=op.f("fk_certification_group_members_org_id_certification_id_certifications"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_id", "group_id"],
            ["certification_groups.org_id", "certification_groups.id"],
            name=op.f("fk_certification_group_members_org_id_group_id_certification_groups"),
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_certification_group_members_org_id_organizations"),
        ),
        sa.PrimaryKeyConstraint(
            "org_id", "certification_id", "group_id", name=op.f("pk_certification_group_members")
        ),
    )
    with op.batch_alter_table("certification_group_members", schema=None) as batch_op:
        batch_op.create_index(
            "ix_certification_group_members_group", ["org_id", "group_id"], unique=False
        )

    op.create_table(
        "certification_roles",
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("certification_id", sa.Uuid(), nullable=False),
        sa.Column("role_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id", "certification_id"],
            ["certifications.org_id", "certifications.id"],
            name=op.f("fk_certification_roles_org_id_certification_id_certifications"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_id", "role_id"],
            ["roles.org_id", "roles.id"],
            name=op.f("fk_certification_roles_org_id_role_id_roles"),
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_certification_roles_org_id_organizations"),
        ),
        sa.PrimaryKeyConstraint(
            "org_id", "certification_id", "role_id", name=op.f("pk_certification_roles")
        ),
    )
    with op.batch_alter_table("certification_roles", schema=None) as batch_op:
        batch_op.create_index("ix_certification_roles_role", ["org_id", "role_id"], unique=False)
    op.create_index(
        "uq_certifications_org_lower_name",
        "certifications",
        ["org_id", sa.text("lower(name)")],
        unique=True,
    )
    rls.enable("certification_groups")
    rls.enable("certifications")
    rls.enable("certification_group_members")
    rls.enable("certification_roles")
    rls.enable("certification_clients")


def downgrade() -> None:
    rls.disable("certification_groups")
    rls.disable("certifications")
    rls.disable("certification_group_members")
    rls.disable("certification_roles")
    rls.disable("certification_clients")
    op.drop_index("uq_certifications_org_lower_name", table_name="certifications")
    with op.batch_alter_table("certification_roles", schema=None) as batch_op:
        batch_op.drop_index("ix_certification_roles_role")

    op.drop_table("certification_roles")
    with op.batch_alter_table("certification_group_members", schema=None) as batch_op:
        batch_op.drop_index("ix_certification_group_members_group")

    op.drop_table("certification_group_members")
    op.drop_table("certification_clients")
    op.drop_table("certifications")
    with op.batch_alter_table("certification_groups", schema=None) as batch_op:
        batch_op.drop_index("ix_certification_groups_org_parent")

    op.drop_table("certification_groups")
