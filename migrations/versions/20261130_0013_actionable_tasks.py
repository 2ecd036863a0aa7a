"""actionable tasks: task notes, `cancelled` tasks, default task assignees

- `tasks.note`: free text a person adds to a task (`PATCH /tasks/{id}`).
- `tasks.status` accepts `cancelled` (a person cancels a task; `closed` stays the system's word
  for a task a renewal or revocation superseded).
- `certifications.task_assignee_id`: who gets the renewal tasks of this certification's assets,
  clients and locations (a composite foreign key: never another organization's employee).
- `organizations.default_task_assignee_id`: the same for every certification without its own.
  Organizations are not tenant tables, so this column has no foreign key: the API checks the id
  is one of the org's employees, and task creation ignores it once it no longer is.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30 04:00:00
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

OLD_TASK_STATUSES = "status IN ('open', 'done', 'closed')"
NEW_TASK_STATUSES = "status IN ('open', 'done', 'closed', 'cancelled')"


NAME_INDEX = "uq_certifications_org_lower_name"


@contextmanager
def _certifications_batch() -> Iterator[Any]:
    """`batch_alter_table("certifications")` keeping its expression index on SQLite.

    SQLite's batch mode copies the table and cannot reflect the `lower(name)` index (it warns and
    leaves it out): the index is dropped before the copy and created again after it.
    """
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        op.execute(f"DROP INDEX IF EXISTS {NAME_INDEX}")
    with op.batch_alter_table("certifications", schema=None) as batch_op:
        yield batch_op
    if sqlite:
        op.execute(
            f"CREATE UNIQUE INDEX IF NOT EXISTS {NAME_INDEX} "
            "ON certifications (org_id, lower(name))"
        )


@contextmanager
def _quiet_reflection() -> Iterator[None]:
    """SQLite's batch mode reflects the tables a table refers to, and warns that it cannot
    reflect the certifications' expression index: harmless for tables it does not copy."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression-based")
        yield


def upgrade() -> None:
    with _quiet_reflection():
        _upgrade()


def downgrade() -> None:
    with _quiet_reflection():
        _downgrade()


def _upgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("note", sa.Text(), nullable=True))
        batch_op.drop_constraint(op.f("ck_tasks_status"), type_="check")
        batch_op.create_check_constraint(op.f("ck_tasks_status"), NEW_TASK_STATUSES)
    with _certifications_batch() as batch_op:
        batch_op.add_column(sa.Column("task_assignee_id", sa.Uuid(), nullable=True))
        batch_op.create_foreign_key(
            op.f("fk_certifications_org_id_task_assignee_id_employees"),
            "employees",
            ["org_id", "task_assignee_id"],
            ["org_id", "id"],
        )
    op.add_column("organizations", sa.Column("default_task_assignee_id", sa.Uuid(), nullable=True))


def _cancelled_tasks_become_closed() -> None:
    if op.get_bind().dialect.name != "postgresql":
        op.execute("UPDATE tasks SET status = 'closed' WHERE status = 'cancelled'")
        return
    # FORCE row-level security binds the migrating owner too: one organization at a time.
    op.execute(
        """
        DO $$
        DECLARE o uuid;
        BEGIN
          FOR o IN SELECT id FROM organizations LOOP
            PERFORM set_config('app.org_id', o::text, true);
            UPDATE tasks SET status = 'closed' WHERE org_id = o AND status = 'cancelled';
          END LOOP;
          PERFORM set_config('app.org_id', '', true);
        END $$
        """
    )


def _downgrade() -> None:
    op.drop_column("organizations", "default_task_assignee_id")
    with _certifications_batch() as batch_op:
        batch_op.drop_constraint(
            op.f("fk_certifications_org_id_task_assignee_id_employees"), type_="foreignkey"
        )
        batch_op.drop_column("task_assignee_id")
    _cancelled_tasks_become_closed()
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_tasks_status"), type_="check")
        batch_op.create_check_constraint(op.f("ck_tasks_status"), OLD_TASK_STATUSES)
        batch_op.drop_column("note")
