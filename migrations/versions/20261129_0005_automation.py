"""automation: notifications, renewal tasks, audit events

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 05:03:51.609619
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tenancy import rls

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TABLES = ("notifications", "tasks", "audit_events")


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
        "notifications",
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("assignment_id", sa.Uuid(), nullable=False),
        sa.Column("certification_id", sa.Uuid(), nullable=False),
        sa.Column("rule_key", sa.String(length=64), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("cycle", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("recipient_source", sa.String(length=32), nullable=False),
        sa.Column("triggered_on", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("delivered_via", sa.String(length=16), nullable=True),
        sa.Column("enqueued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        *_stamps(),
        sa.CheckConstraint(
            "channel IN ('email', 'webhook')", name=op.f("ck_notifications_channel")
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'sending', 'sent', 'failed', 'cancelled')",
            name=op.f("ck_notifications_status"),
        ),
        sa.ForeignKeyConstraint(
            ["org_id", "assignment_id"],
            ["assignments.org_id", "assignments.id"],
            name=op.f("fk_notifications_org_id_assignment_id_assignments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organizations.id"], name=op.f("fk_notifications_org_id_organizations")
        ),
        sa.PrimaryKeyConstraint("org_id", "id", name=op.f("pk_notifications")),
    )
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.create_index(
            "uq_notifications_once",
            ["org_id", "assignment_id", "rule_key", "cycle", "channel", "recipient"],
            unique=True,
        )
        batch_op.create_index(
            "ix_notifications_org_created", ["org_id", "created_at", "id"], unique=False
        )
        batch_op.create_index("ix_notifications_org_status", ["org_id", "status"], unique=False)

    op.create_table(
        "tasks",
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("assignment_id", sa.Uuid(), nullable=False),
        sa.Column("certification_id", sa.Uuid(), nullable=False),
        sa.Column("rule_key", sa.String(length=64), nullable=False),
        sa.Column("cycle", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), server_default="renewal", nullable=False),
        sa.Column("title", sa.String(length=500), nullable=False),
        sa.Column("assignee_id", sa.Uuid(), nullable=True),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="open", nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_by", sa.String(length=200), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        *_stamps(),
        sa.CheckConstraint("status IN ('open', 'done', 'closed')", name=op.f("ck_tasks_status")),
        sa.ForeignKeyConstraint(
            ["org_id", "assignee_id"],
            ["employees.org_id", "employees.id"],
            name=op.f("fk_tasks_org_id_assignee_id_employees"),
        ),
        sa.ForeignKeyConstraint(
            ["org_id", "assignment_id"],
            ["assignments.org_id", "assignments.id"],
            name=op.f("fk_tasks_org_id_assignment_id_assignments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organizations.id"], name=op.f("fk_tasks_org_id_organizations")
        ),
        sa.PrimaryKeyConstraint("org_id", "id", name=op.f("pk_tasks")),
    )
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.create_index(
            "uq_tasks_once", ["org_id", "assignment_id", "rule_key", "cycle"], unique=True
        )
        batch_op.create_index(
            "ix_tasks_org_assignee", ["org_id", "assignee_id", "status"], unique=False
        )
        batch_op.create_index("ix_tasks_org_due", ["org_id", "due_on", "id"], unique=False)

    op.create_table(
        "audit_events",
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=True),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("entity_type", sa.String(length=64), nullable=False),
        sa.Column("entity_id", sa.Uuid(), nullable=True),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.Column("request_id", sa.String(length=100), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organizations.id"], name=op.f("fk_audit_events_org_id_organizations")
        ),
        sa.PrimaryKeyConstraint("org_id", "id", name=op.f("pk_audit_events")),
    )
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_audit_events_entity",
            ["org_id", "entity_type", "entity_id", "created_at"],
            unique=False,
        )
        batch_op.create_index(
            "ix_audit_events_org_created", ["org_id", "created_at", "id"], unique=False
        )
    for table in TABLES:
        rls.enable(table)


def downgrade() -> None:
    for table in TABLES:
        rls.disable(table)
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_events_org_created")
        batch_op.drop_index("ix_audit_events_entity")
    op.drop_table("audit_events")
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_index("ix_tasks_org_due")
        batch_op.drop_index("ix_tasks_org_assignee")
        batch_op.drop_index("uq_tasks_once")
    op.drop_table("tasks")
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_index("ix_notifications_org_status")
        batch_op.drop_index("ix_notifications_org_created")
        batch_op.drop_index("uq_notifications_once")
    op.drop_table("notifications")
