"""assignments

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 04:40:57.289298
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tenancy import rls

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "assignments",
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("certification_id", sa.Uuid(), nullable=False),
        sa.Column("subject_type", sa.String(length=16), nullable=False),
        sa.Column("subject_id", sa.Uuid(), nullable=False),
        sa.Column("source", sa.String(length=16), server_default="manual", nullable=False),
        sa.Column("required", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("cycle", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("issued_on", sa.Date(), nullable=True),
        sa.Column("effective_on", sa.Date(), nullable=True),
        sa.Column("expires_on", sa.Date(), nullable=True),
        sa.Column("expires_explicit", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("form_accepted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=16), server_default="missing", nullable=False),
        sa.Column(
            "status_changed_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_reason", sa.Text(), nullable=True),
        sa.Column("revoked_by", sa.String(length=200), nullable=True),
        sa.Column("created_by", sa.String(length=200), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint("source IN ('manual', 'role')", name=op.f("ck_assignments_source")),
        sa.CheckConstraint(
            "status IN ('valid', 'upcoming', 'missing', 'expires_soon', 'expired', 'revoked')",
            name=op.f("ck_assignments_status"),
        ),
        sa.CheckConstraint(
            "subject_type IN ('employee', 'asset', 'client', 'location')",
            name=op.f("ck_assignments_subject_type"),
        ),
        sa.ForeignKeyConstraint(
            ["org_id", "certification_id"],
            ["certifications.org_id", "certifications.id"],
            name=op.f("fk_assignments_org_id_certification_id_certifications"),
        ),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organizations.id"], name=op.f("fk_assignments_org_id_organizations")
        ),
        sa.PrimaryKeyConstraint("org_id", "id", name=op.f("pk_assignments")),
    )
    with op.batch_alter_table("assignments", schema=None) as batch_op:
        batch_op.create_index(
            "ix_assignments_cert_status", ["org_id", "certification_id", "status"], unique=False
        )
        batch_op.create_index("ix_assignments_org_expires", ["org_id", "expires_on"], unique=False)
        batch_op.create_index("ix_assignments_org_status", ["org_id", "status"], unique=False)
        batch_op.create_index(
            "ix_assignments_subject",
            ["org_id", "subject_type", "subject_id", "certification_id"],
            unique=False,
        )
        batch_op.create_index(
            "uq_assignments_live",
            ["org_id", "certification_id", "subject_id"],
            unique=True,
            postgresql_where=sa.text("revoked_at IS NULL"),
            sqlite_where=sa.text("revoked_at IS NULL"),
        )

    op.create_table(
        "assignment_cycles",
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("assignment_id", sa.Uuid(), nullable=False),
        sa.Column("cycle", sa.Integer(), nullable=False),
        sa.Column("issued_on", sa.Date(), nullable=True),
        sa.Column("effective_on", sa.Date(), nullable=True),
        sa.Column("expires_on", sa.Date(), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("recorded_by", sa.String(length=200), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["org_id", "assignment_id"],
            ["assignments.org_id", "assignments.id"],
            name=op.f("fk_assignment_cycles_org_id_assignment_id_assignments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organizations.id"], name=op.f("fk_assignment_cycles_org_id_organizations")
        ),
        sa.PrimaryKeyConstraint("org_id", "id", name=op.f("pk_assignment_cycles")),
    )
    with op.batch_alter_table("assignment_cycles", schema=None) as batch_op:
        batch_op.create_index(
            "ix_assignment_cycles_assignment", ["org_id", "assignment_id", "cycle"], unique=False
        )

    op.create_table(
        "form_submissions",
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("assignment_id", sa.Uuid(), nullable=False),
        sa.Column("cycle", sa.Integer(), nullable=False),
        sa.Column("answers", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("submitted_by", sa.String(length=200), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["org_id", "assignment_id"],
            ["assignments.org_id", "assignments.id"],
            name=op.f("fk_form_submissions_org_id_assignment_id_assignments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organizations.id"], name=op.f("fk_form_submissions_org_id_organizations")
        ),
        sa.PrimaryKeyConstraint("org_id", "id", name=op.f("pk_form_submissions")),
    )
    with op.batch_alter_table("form_submissions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_form_submissions_assignment", ["org_id", "assignment_id"], unique=False
        )

    op.create_table(
        "status_events",
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("assignment_id", sa.Uuid(), nullable=False),
        sa.Column("cycle", sa.Integer(), nullable=False),
        sa.Column("from_status", sa.String(length=16), nullable=True),
        sa.Column("to_status", sa.String(length=16), nullable=False),
        sa.Column("on_date", sa.Date(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["org_id", "assignment_id"],
            ["assignments.org_id", "assignments.id"],
            name=op.f("fk_status_events_org_id_assignment_id_assignments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organizations.id"], name=op.f("fk_status_events_org_id_organizations")
        ),
        sa.PrimaryKeyConstraint("org_id", "id", name=op.f("pk_status_events")),
    )
    with op.batch_alter_table("status_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_status_events_assignment", ["org_id", "assignment_id", "created_at"], unique=False
        )
        batch_op.create_index(
            "ix_status_events_org_created", ["org_id", "created_at"], unique=False
        )
    rls.enable("assignments")
    rls.enable("assignment_cycles")
    rls.enable("status_events")
    rls.enable("form_submissions")


def downgrade() -> None:
    rls.disable("assignments")
    rls.disable("assignment_cycles")
    rls.disable("status_events")
    rls.disable("form_submissions")
    with op.batch_alter_table("status_events", schema=None) as batch_op:
        batch_op.drop_index("ix_status_events_org_created")
        batch_op.drop_index("ix_status_events_assignment")

    op.drop_table("status_events")
    with op.batch_alter_table("form_submissions", schema=None) as batch_op:
        batch_op.drop_index("ix_form_submissions_assignment")

    op.drop_table("form_submissions")
    with op.batch_alter_table("assignment_cycles", schema=None) as batch_op:
        batch_op.drop_index("ix_assignment_cycles_assignment")

    op.drop_table("assignment_cycles")
    with op.batch_alter_table("assignments", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_assignments_live",
            postgresql_where=sa.text("revoked_at IS NULL"),
            sqlite_where=sa.text("revoked_at IS NULL"),
        )
        batch_op.drop_index("ix_assignments_subject")
        batch_op.drop_index("ix_assignments_org_status")
        batch_op.drop_index("ix_assignments_org_expires")
        batch_op.drop_index("ix_assignments_cert_status")

    op.drop_table("assignments")
