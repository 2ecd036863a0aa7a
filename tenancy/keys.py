"""Composite foreign keys: a reference carries `org_id`, so it can never cross organizations."""

from __future__ import annotations

from sqlalchemy import ForeignKeyConstraint


def tenant_fk(
    column: str, target_table: str, *, ondelete: str | None = None
) -> ForeignKeyConstraint:
    return ForeignKeyConstraint(
        ["org_id", column], [f"{target_table}.org_id", f"{target_table}.id"], ondelete=ondelete
    )
