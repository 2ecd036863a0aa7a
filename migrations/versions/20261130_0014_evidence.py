"""evidence: documents, submissions, employees.user_sub, review settings, wider triggers

Documents hold a file's metadata per assignment cycle (the bytes live in the document store);
submissions are records of a cycle waiting for review. Both are tenant tables under forced RLS
like every other. Employees gain `user_sub` (the subject of a worker's own tokens, unique per
org), certifications `review_required`, organizations `reviewer_emails`; notifications gain a
`detail` (a rejection's reason) and a trigger column wide enough for `submission_rejected`.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-30 03:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tenancy import rls

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

TABLES = ("submissions", "documents")


def _stamps() -> list[sa.Column]:
    return [
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
    ]


def upgrade() -> None:
    op.create_table(
        "submissions",
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("assignment_id", sa.Uuid(), nullable=False),
        sa.Column("cycle", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column("issued_on", sa.Date(), nullable=True),
        sa.Column("effective_on", sa.Date(), nullable=True),
        sa.Column("expires_on", sa.Date(), nullable=True),
        sa.Column("answers", sa.JSON(), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("submitted_by", sa.String(length=200), nullable=True),
        sa.Column("submitter_employee_id", sa.Uuid(), nullable=True),
        sa.Column("reviewed_by", sa.String(length=200), nullable=True),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        *_stamps(),
        sa.CheckConstraint(
            "status IN ('pending', 'approved', 'rejected')", name=op.f("ck_submissions_status")
        ),
        sa.ForeignKeyConstraint(
            ["org_id", "assignment_id"],
            ["assignments.org_id", "assignments.id"],
            name=op.f("fk_submissions_org_id_assignment_id_assignments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organizations.id"], name=op.f("fk_submissions_org_id_organizations")
        ),
        sa.PrimaryKeyConstraint("org_id", "id", name=op.f("pk_submissions")),
    )
    with op.batch_alter_table("submissions", schema=None) as batch_op:
        batch_op.create_index(
            "uq_submissions_pending",
            ["org_id", "assignment_id"],
            unique=True,
            postgresql_where=sa.text("status = 'pending'"),
            sqlite_where=sa.text("status = 'pending'"),
        )
        batch_op.create_index(
            "ix_submissions_queue", ["org_id", "status", "created_at", "id"], unique=False
        )

    op.create_table(
        "documents",
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("assignment_id", sa.Uuid(), nullable=False),
        sa.Column("cycle", sa.Integer(), nullable=False),
        sa.Column("submission_id", sa.Uuid(), nullable=True),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("storage_key", sa.String(length=300), nullable=False),
        sa.Column("uploaded_by", sa.String(length=200), nullable=True),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deleted_by", sa.String(length=200), nullable=True),
        *_stamps(),
        sa.ForeignKeyConstraint(
            ["org_id", "assignment_id"],
            ["assignments.org_id", "assignments.id"],
            name=op.f("fk_documents_org_id_assignment_id_assignments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_id", "submission_id"],
            ["submissions.org_id", "submissions.id"],
            name=op.f("fk_documents_org_id_submission_id_submissions"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organizations.id"], name=op.f("fk_documents_org_id_organizations")
        ),
        sa.PrimaryKeyConstraint("org_id", "id", name=op.f("pk_documents")),
    )
    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.create_index(
            "uq_documents_cycle_sha256",
            ["org_id", "assignment_id", "cycle", "sha256"],
            unique=True,
            postgresql_where=sa.text("deleted_at IS NULL"),
            sqlite_where=sa.text("deleted_at IS NULL"),
        )
        batch_op.create_index(
            "ix_documents_assignment", ["org_id", "assignment_id", "created_at"], unique=False
        )
        batch_op.create_index("ix_documents_submission", ["org_id", "submission_id"], unique=False)
    for table in TABLES:
        rls.enable(table)

    # Plain ADD COLUMN (SQLite has it): a batch copy would drop the expression indexes
    # SQLite cannot reflect (certifications' lower(name)).
    op.add_column("assignments", sa.Column("pending_submission_id", sa.Uuid(), nullable=True))
    op.add_column("employees", sa.Column("user_sub", sa.String(length=200), nullable=True))
    op.create_index(
        "uq_employees_org_id_user_sub", "employees", ["org_id", "user_sub"], unique=True
    )
    op.add_column(
        "certifications",
        sa.Column("review_required", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.add_column(
        "organizations",
        sa.Column("reviewer_emails", sa.JSON(), server_default="[]", nullable=False),
    )
    op.add_column("notifications", sa.Column("detail", sa.Text(), nullable=True))
    _trigger_length(32)


def downgrade() -> None:
    # Submission notices cannot fit the narrower column: they go with the feature.
    op.execute(sa.text("DELETE FROM notifications WHERE trigger LIKE 'submission_%'"))
    _trigger_length(16)
    op.drop_column("notifications", "detail")
    op.drop_column("organizations", "reviewer_emails")
    op.drop_column("certifications", "review_required")
    op.drop_index("uq_employees_org_id_user_sub", table_name="employees")
    op.drop_column("employees", "user_sub")
    op.drop_column("assignments", "pending_submission_id")
    for table in TABLES:
        rls.disable(table)
    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.drop_index("ix_documents_submission")
        batch_op.drop_index("ix_documents_assignment")
        batch_op.drop_index("uq_documents_cycle_sha256")
    op.drop_table("documents")
    with op.batch_alter_table("submissions", schema=None) as batch_op:
        batch_op.drop_index("ix_submissions_queue")
        batch_op.drop_index("uq_submissions_pending")
    op.drop_table("submissions")


def _trigger_length(length: int) -> None:
    """Widen (or narrow back) `notifications.trigger`. SQLite copies the table (batch); its
    foreign keys are not followed, or the copy would reflect tables whose expression indexes
    SQLite cannot read."""
    with op.batch_alter_table(
        "notifications", schema=None, reflect_kwargs={"resolve_fks": False}
    ) as batch_op:
        batch_op.alter_column(
            "trigger",
            existing_type=sa.String(length=48 - length),
            type_=sa.String(length=length),
            existing_nullable=False,
        )
