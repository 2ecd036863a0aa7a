"""compliance history: requirement periods, exemption periods, daily compliance snapshots

- `requirement_periods`: when each assignment counted in the figures (and whether as required),
  by the org's local day; written by the fan-out and the assignment services from now on.
- `exemption_periods`: when each assignment was exempt (the row keeps only the current one).
- `compliance_snapshots`: one row per (org, certification, day) with counts per status.

Backfill: every current assignment (live, or the latest revoked one) gets an open period from
its creation day, as required or not as it is now; a revoked one superseded since gets a closed
period ending on the day its successor was created. Assignments exempt now get an open
exemption period from the day they were exempted. The days are UTC days (the org's time zone
is not known to SQL here); history from now on uses the org's day.

Revision ID: 0022
Revises: 0015
Create Date: 2026-11-30 07:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tenancy import rls

revision = "0022"
down_revision = "0019"
branch_labels = None
depends_on = None

TABLES = ("requirement_periods", "exemption_periods", "compliance_snapshots")
OPEN = sa.text("ends_on IS NULL")


def _key(table: str) -> list[sa.SchemaItem]:
    return [
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organizations.id"], name=op.f(f"fk_{table}_org_id_organizations")
        ),
        sa.PrimaryKeyConstraint("org_id", "id", name=op.f(f"pk_{table}")),
    ]


def _ref(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["org_id", column],
        [f"{target}.org_id", f"{target}.id"],
        name=op.f(f"fk_{table}_org_id_{column}_{target}"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "requirement_periods",
        *_key("requirement_periods"),
        sa.Column("assignment_id", sa.Uuid(), nullable=False),
        sa.Column("certification_id", sa.Uuid(), nullable=False),
        sa.Column("subject_type", sa.String(length=16), nullable=False),
        sa.Column("subject_id", sa.Uuid(), nullable=False),
        sa.Column("required", sa.Boolean(), nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=False),
        sa.Column("ends_on", sa.Date(), nullable=True),
        _ref("requirement_periods", "certification_id", "certifications"),
    )
    op.create_index(
        "uq_requirement_periods_open",
        "requirement_periods",
        ["org_id", "assignment_id"],
        unique=True,
        postgresql_where=OPEN,
        sqlite_where=OPEN,
    )
    op.create_index(
        "ix_requirement_periods_assignment",
        "requirement_periods",
        ["org_id", "assignment_id", "starts_on"],
    )
    op.create_index(
        "ix_requirement_periods_subject",
        "requirement_periods",
        ["org_id", "subject_id", "certification_id"],
    )
    op.create_table(
        "exemption_periods",
        *_key("exemption_periods"),
        sa.Column("assignment_id", sa.Uuid(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("until", sa.Date(), nullable=True),
        sa.Column("exempt_by", sa.String(length=200), nullable=True),
        sa.Column("starts_on", sa.Date(), nullable=False),
        sa.Column("ends_on", sa.Date(), nullable=True),
        _ref("exemption_periods", "assignment_id", "assignments"),
    )
    op.create_index(
        "uq_exemption_periods_open",
        "exemption_periods",
        ["org_id", "assignment_id"],
        unique=True,
        postgresql_where=OPEN,
        sqlite_where=OPEN,
    )
    op.create_index(
        "ix_exemption_periods_assignment",
        "exemption_periods",
        ["org_id", "assignment_id", "starts_on"],
    )
    counts = [
        sa.Column(name, sa.Integer(), nullable=False)
        for name in (
            "valid",
            "upcoming",
            "missing",
            "expires_soon",
            "expired",
            "revoked",
            "exempt",
            "required",
            "compliant",
        )
    ]
    op.create_table(
        "compliance_snapshots",
        *_key("compliance_snapshots"),
        sa.Column("certification_id", sa.Uuid(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        *counts,
        _ref("compliance_snapshots", "certification_id", "certifications"),
    )
    op.create_index(
        "uq_compliance_snapshots_day",
        "compliance_snapshots",
        ["org_id", "certification_id", "day"],
        unique=True,
    )
    op.create_index("ix_compliance_snapshots_org_day", "compliance_snapshots", ["org_id", "day"])
    for table in TABLES:
        rls.enable(table)
    _backfill()


def downgrade() -> None:
    for table in TABLES:
        rls.disable(table)
    op.drop_index("ix_compliance_snapshots_org_day", table_name="compliance_snapshots")
    op.drop_index("uq_compliance_snapshots_day", table_name="compliance_snapshots")
    op.drop_table("compliance_snapshots")
    op.drop_index("ix_exemption_periods_assignment", table_name="exemption_periods")
    op.drop_index("uq_exemption_periods_open", table_name="exemption_periods")
    op.drop_table("exemption_periods")
    op.drop_index("ix_requirement_periods_subject", table_name="requirement_periods")
    op.drop_index("ix_requirement_periods_assignment", table_name="requirement_periods")
    op.drop_index("uq_requirement_periods_open", table_name="requirement_periods")
    op.drop_table("requirement_periods")


# The successor of a revoked assignment: the next one of its (certification, subject).
PERIODS = """
INSERT INTO requirement_periods
  (org_id, id, assignment_id, certification_id, subject_type, subject_id, required,
   starts_on, ends_on)
SELECT a.org_id, {uuid}, a.id, a.certification_id, a.subject_type, a.subject_id, a.required,
       {day}(a.created_at),
       (SELECT MIN({day}(b.created_at)) FROM assignments b
         WHERE b.org_id = a.org_id AND b.certification_id = a.certification_id
           AND b.subject_id = a.subject_id AND b.id != a.id
           AND a.revoked_at IS NOT NULL AND b.created_at >= a.created_at)
FROM assignments a {where}
"""
EXEMPTIONS = """
INSERT INTO exemption_periods
  (org_id, id, assignment_id, reason, until, exempt_by, starts_on)
SELECT org_id, {uuid}, id, exempt_reason, exempt_until, exempt_by, {day}(exempt_at)
FROM assignments WHERE exempt_at IS NOT NULL {and_org}
"""


def _backfill() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        lite = {"uuid": "lower(hex(randomblob(16)))", "day": "date"}
        bind.execute(sa.text(PERIODS.format(where="", **lite)))
        bind.execute(sa.text(EXEMPTIONS.format(and_org="", **lite)))
        return
    pg = {"uuid": "gen_random_uuid()", "day": "DATE"}
    # FORCE row-level security binds the owner too (and since 0010 it cannot list the orgs to
    # act as each): lift FORCE for these statements, inside the migration's transaction (no
    # other session ever sees the tables without it), as 0015 does.
    tables = ("assignments", "requirement_periods", "exemption_periods")
    for table in tables:
        bind.execute(sa.text(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY"))
    try:
        bind.execute(sa.text(PERIODS.format(where="", **pg)))
        bind.execute(sa.text(EXEMPTIONS.format(and_org="", **pg)))
    finally:
        for table in tables:
            bind.execute(sa.text(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY"))
