"""open requirement periods on the assignment row

- `assignments.counted_since` / `assignments.counted_required`: the open requirement period of
  an assignment that counts in the figures (the day since which it has counted, and whether as
  required); null while it does not count. A 100k-employee fan-out then writes its rows once
  instead of once more as open `requirement_periods` rows (see docs/decisions.md).
- `requirement_periods` keeps the closed periods, and the open ones of assignments that no
  longer exist (left as they are); `uq_requirement_periods_open` goes: nothing writes an open
  period any more.

Data: each open period of an existing assignment moves into its row and is deleted; the
downgrade writes them back as open periods (new ids) from the columns.

Revision ID: 0024
Revises: 0023
Create Date: 2026-11-30 13:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None

OPEN = sa.text("ends_on IS NULL")
# The open period of the assignment `assignments` (correlated: UPDATE … FROM is not in every
# SQLite a deployment may run).
OPEN_OF_ROW = """
FROM requirement_periods p
WHERE p.org_id = assignments.org_id AND p.assignment_id = assignments.id AND p.ends_on IS NULL
"""
MOVE_IN = f"""
UPDATE assignments
SET counted_since = (SELECT p.starts_on {OPEN_OF_ROW}),
    counted_required = (SELECT p.required {OPEN_OF_ROW})
WHERE EXISTS (SELECT 1 {OPEN_OF_ROW})
"""
DROP_MOVED = """
DELETE FROM requirement_periods
WHERE ends_on IS NULL AND EXISTS (
  SELECT 1 FROM assignments a
  WHERE a.org_id = requirement_periods.org_id AND a.id = requirement_periods.assignment_id)
"""
MOVE_OUT = """
INSERT INTO requirement_periods
  (org_id, id, assignment_id, certification_id, subject_type, subject_id, required,
   starts_on, ends_on)
SELECT org_id, {uuid}, id, certification_id, subject_type, subject_id, counted_required,
       counted_since, NULL
FROM assignments WHERE counted_since IS NOT NULL
"""


def upgrade() -> None:
    op.add_column("assignments", sa.Column("counted_since", sa.Date(), nullable=True))
    op.add_column("assignments", sa.Column("counted_required", sa.Boolean(), nullable=True))
    _as_owner(sa.text(MOVE_IN), sa.text(DROP_MOVED))
    op.drop_index("uq_requirement_periods_open", table_name="requirement_periods")


def downgrade() -> None:
    op.create_index(
        "uq_requirement_periods_open",
        "requirement_periods",
        ["org_id", "assignment_id"],
        unique=True,
        postgresql_where=OPEN,
        sqlite_where=OPEN,
    )
    pg = op.get_bind().dialect.name == "postgresql"
    uuid = "gen_random_uuid()" if pg else "lower(hex(randomblob(16)))"
    _as_owner(sa.text(MOVE_OUT.format(uuid=uuid)))
    op.drop_column("assignments", "counted_required")
    op.drop_column("assignments", "counted_since")


def _as_owner(*statements: sa.TextClause) -> None:
    """Run the data moves over every organization.

    FORCE row-level security binds the owner too: lift FORCE for these statements, inside the
    migration's transaction (no other session sees the tables without it), as 0022 does. The
    counts triggers fire on the UPDATE of assignments; a row keeps its counted key, so the
    delta they apply is empty."""
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        for statement in statements:
            bind.execute(statement)
        return
    tables = ("assignments", "requirement_periods")
    for table in tables:
        bind.execute(sa.text(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY"))
    try:
        for statement in statements:
            bind.execute(statement)
    finally:
        for table in tables:
            bind.execute(sa.text(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY"))
