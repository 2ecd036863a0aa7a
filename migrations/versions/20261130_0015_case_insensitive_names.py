"""case-insensitive names: unique role names per org and group names per parent, ignoring case

- `roles`: the unique constraint on (org_id, name) becomes a unique index on
  (org_id, lower(name)): "Welder" and "welder" are one role, like certification names.
- `certification_groups`: sibling groups cannot share a name, ignoring case. Root groups have
  a NULL parent, which a unique index treats as distinct, so two partial indexes: one over
  (org_id, parent_id, lower(name)) for subgroups, one over (org_id, lower(name)) for roots.

Existing rows that would break the new indexes keep their oldest copy's name; each later copy
is renamed "<name> (<first 8 characters of its id>)" (logged), so nothing is lost.

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-30 05:00:00
"""

from __future__ import annotations

import logging
import warnings

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")

ROLE_NAME_INDEX = "uq_roles_org_lower_name"
GROUP_SIBLING_INDEX = "uq_certification_groups_sibling_name"
GROUP_ROOT_INDEX = "uq_certification_groups_root_name"

# Every later copy of a name (ignoring case) among `{partition}` gets its id's prefix appended.
RENAME = """
UPDATE {table} SET name = substr(name, 1, 185) || ' (' || substr(CAST(id AS TEXT), 1, 8) || ')'
WHERE id IN (
  SELECT id FROM (
    SELECT id, row_number() OVER (
      PARTITION BY {partition} ORDER BY created_at, id
    ) AS copy
    FROM {table} {where}
  ) AS ranked
  WHERE copy > 1
)
"""


def _rename_duplicates(table: str, partition: str) -> int:
    bind = op.get_bind()
    sql = sa.text(RENAME.format(table=table, partition=partition, where=""))
    if bind.dialect.name != "postgresql":
        return int(bind.execute(sql).rowcount)
    # FORCE row-level security binds the owner too, and since 0010 the organizations themselves
    # are hidden from it: lift FORCE for this one statement, inside the migration's transaction
    # (no other session ever sees the table without it).
    bind.execute(sa.text(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY"))
    try:
        return int(bind.execute(sql).rowcount)
    finally:
        bind.execute(sa.text(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY"))


def upgrade() -> None:
    renamed = _rename_duplicates("roles", "org_id, lower(name)")
    renamed += _rename_duplicates("certification_groups", "org_id, parent_id, lower(name)")
    if renamed:
        log.warning("renamed %d roles/groups whose names differed only by case", renamed)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression-based")
        with op.batch_alter_table("roles", schema=None) as batch_op:
            batch_op.drop_constraint(op.f("uq_roles_org_id_name"), type_="unique")
    op.create_index(ROLE_NAME_INDEX, "roles", ["org_id", sa.text("lower(name)")], unique=True)
    op.create_index(
        GROUP_SIBLING_INDEX,
        "certification_groups",
        ["org_id", "parent_id", sa.text("lower(name)")],
        unique=True,
        postgresql_where=sa.text("parent_id IS NOT NULL"),
        sqlite_where=sa.text("parent_id IS NOT NULL"),
    )
    op.create_index(
        GROUP_ROOT_INDEX,
        "certification_groups",
        ["org_id", sa.text("lower(name)")],
        unique=True,
        postgresql_where=sa.text("parent_id IS NULL"),
        sqlite_where=sa.text("parent_id IS NULL"),
    )


def downgrade() -> None:
    op.drop_index(GROUP_ROOT_INDEX, table_name="certification_groups")
    op.drop_index(GROUP_SIBLING_INDEX, table_name="certification_groups")
    op.drop_index(ROLE_NAME_INDEX, table_name="roles")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression-based")
        with op.batch_alter_table("roles", schema=None) as batch_op:
            batch_op.create_unique_constraint(op.f("uq_roles_org_id_name"), ["org_id", "name"])
