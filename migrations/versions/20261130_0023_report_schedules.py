"""report schedules and their runs

- `report_schedules`: a report (audit pack or compliance summary) emailed on a cron schedule
  evaluated in the org's time zone; `next_run_at` (UTC) is what the tick and the scheduler read,
  through a partial index over enabled schedules. Readable by platform work too: the scheduler
  finds the orgs with a schedule due.
- `report_runs`: one row per (schedule, occurrence), unique: what makes each run happen once;
  claimed, sent and recorded like a notification.

No data moves. Both tables are tenant tables under forced RLS.

Revision ID: 0023
Revises: 0021
Create Date: 2026-11-30 10:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tenancy import rls

revision = "0023"
down_revision = "0021"
branch_labels = None
depends_on = None

ENABLED = sa.text("enabled")


def _key(table: str) -> list[sa.SchemaItem]:
    return [
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organizations.id"], name=op.f(f"fk_{table}_org_id_organizations")
        ),
        sa.PrimaryKeyConstraint("org_id", "id", name=op.f(f"pk_{table}")),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(),
                  nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(),
                  nullable=False),
    ]  # fmt: skip


def upgrade() -> None:
    op.create_table(
        "report_schedules",
        *_key("report_schedules"),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("format", sa.String(length=8), nullable=False),
        sa.Column("scope_kind", sa.String(length=16), nullable=True),
        sa.Column("scope_id", sa.Uuid(), nullable=True),
        sa.Column("cron", sa.String(length=100), nullable=False),
        sa.Column("recipients", sa.JSON(), nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("next_run_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_run_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_run_status", sa.String(length=16), nullable=True),
        sa.Column("created_by", sa.String(length=200), nullable=True),
        sa.CheckConstraint(
            "kind IN ('audit-pack', 'summary')", name=op.f("ck_report_schedules_kind")
        ),
        sa.CheckConstraint(
            "format IN ('pdf', 'xlsx', 'csv')", name=op.f("ck_report_schedules_format")
        ),
        sa.CheckConstraint(
            "scope_kind IN ('location', 'client', 'group')",
            name=op.f("ck_report_schedules_scope_kind"),
        ),
    )
    op.create_index(
        "ix_report_schedules_org_created", "report_schedules", ["org_id", "created_at", "id"]
    )
    op.create_index(
        "ix_report_schedules_due",
        "report_schedules",
        ["next_run_at"],
        postgresql_where=ENABLED,
        sqlite_where=ENABLED,
    )
    op.create_table(
        "report_runs",
        *_key("report_runs"),
        sa.Column("schedule_id", sa.Uuid(), nullable=False),
        sa.Column("scheduled_for", sa.DateTime(timezone=True), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["org_id", "schedule_id"],
            ["report_schedules.org_id", "report_schedules.id"],
            name=op.f("fk_report_runs_org_id_schedule_id_report_schedules"),
            ondelete="CASCADE",
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'sending', 'sent', 'failed')",
            name=op.f("ck_report_runs_status"),
        ),
    )
    op.create_index(
        "uq_report_runs_once",
        "report_runs",
        ["org_id", "schedule_id", "scheduled_for"],
        unique=True,
    )
    rls.enable("report_schedules", platform_readable=True)
    rls.enable("report_runs")


def downgrade() -> None:
    rls.disable("report_runs")
    rls.disable("report_schedules")
    op.drop_index("uq_report_runs_once", table_name="report_runs")
    op.drop_table("report_runs")
    op.drop_index("ix_report_schedules_due", table_name="report_schedules")
    op.drop_index("ix_report_schedules_org_created", table_name="report_schedules")
    op.drop_table("report_schedules")
