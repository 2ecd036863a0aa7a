"""Composite foreign keys: a reference carries `org_id`, so it can never cross organizations."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, ForeignKeyConstraint, and_


def tenant_fk(
    column: str, target_table: str, *, ondelete: str | None = None
) -> ForeignKeyConstraint:
    return ForeignKeyConstraint(
        ["org_id", column], [f"{target_table}.org_id", f"{target_table}.id"], ondelete=ondelete
    )


def tenant_join(target: Any, source: Any, column: str) -> ColumnElement[bool]:
    """The ON clause following the composite reference `source.column` to `target`:
    `target.org_id = source.org_id AND target.id = source.column` (mapped classes or tables)."""
    t, s = getattr(target, "c", target), getattr(source, "c", source)
    return and_(t.org_id == s.org_id, t.id == getattr(s, column))
