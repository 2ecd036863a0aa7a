"""Names where ids are: certification and subject names for records that carry only ids.

Assignments, tasks, notifications and history entries name a certification and a polymorphic
subject by id. `subject_name_sql` is the SQL expression of the subject's name (for set-based
writes such as task titles); `attach_names` decorates one page of records with one query.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session, aliased

from certifications.assignments.models import Assignment
from certifications.assignments.requirements import attach_sources
from certifications.catalog.models import Certification
from certifications.directory.models import SUBJECT_MODELS


@dataclass(frozen=True)
class Names:
    certification_name: str
    subject_type: str
    subject_id: uuid.UUID
    subject_name: str


def subject_name_joins(a: Any) -> tuple[list[tuple[Any, Any]], Any]:
    """The outer joins from assignments `a` (the entity or an alias) to the four subject
    entities, each matching only its own `subject_type`, and the subject's name over them.
    Apply them with `outerjoin_all` (`Select.outerjoin`, so the tenant scoping reaches them)."""
    joins: list[tuple[Any, Any]] = []
    names = []
    for kind, model in SUBJECT_MODELS.items():
        s = aliased(model, name=f"subject_{kind}")
        joins.append((s, and_(a.subject_type == kind, s.id == a.subject_id)))
        names.append(s.name)
    return joins, func.coalesce(*names)


def outerjoin_all(stmt: Any, joins: list[tuple[Any, Any]]) -> Any:
    for target, on in joins:
        stmt = stmt.outerjoin(target, on)
    return stmt


def names_by_assignment(
    session: Session, assignment_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, Names]:
    """Certification and subject names of these assignments: one query whatever their number."""
    ids = list(dict.fromkeys(assignment_ids))
    if not ids:
        return {}
    a, c = Assignment, Certification
    subjects, subject_name = subject_name_joins(a)
    stmt = (
        select(a.id, c.name, a.subject_type, a.subject_id, subject_name)
        .select_from(a)
        .join(c, c.id == a.certification_id)
        .where(a.id.in_(ids))
    )
    rows = session.execute(outerjoin_all(stmt, subjects))
    return {row[0]: Names(row[1], row[2], row[3], row[4] or f"{row[2]} (deleted)") for row in rows}


def attach_names(session: Session, records: Any) -> Any:
    """Set `certification_name`, `subject_type`, `subject_id`, `subject_name` on each record
    (an Assignment, or anything with `assignment_id`), or on a page's items; returns `records`."""
    items = getattr(records, "items", None)
    many = items if items is not None else records if isinstance(records, list) else [records]
    found = names_by_assignment(session, (_assignment_id(r) for r in many))
    _attach_satisfied_via(session, [r for r in many if isinstance(r, Assignment)])
    attach_sources(session, [r for r in many if isinstance(r, Assignment)])
    for record in many:
        names = found.get(_assignment_id(record))
        if names is None:
            continue
        fields: tuple[str, ...] = ("certification_name", "subject_name")
        if not isinstance(record, Assignment):  # an assignment has its own subject columns
            fields += ("subject_type", "subject_id")
        for field in fields:
            value = getattr(names, field)
            if isinstance(record, dict):
                record[field] = value
            else:
                setattr(record, field, value)
    return records


def _attach_satisfied_via(session: Session, assignments: list[Assignment]) -> None:
    """`satisfied_via` ({certification_id, certification_name, assignment_id} or None) on each
    assignment: one query, and none when no assignment of the page is satisfied via another."""
    via_ids = {a.satisfied_via_id for a in assignments if a.satisfied_via_id is not None}
    providers: dict[uuid.UUID, dict[str, Any]] = {}
    if via_ids:
        rows = session.execute(
            select(Assignment.id, Certification.id, Certification.name)
            .join(Certification, Certification.id == Assignment.certification_id)
            .where(Assignment.id.in_(via_ids))
        )
        providers = {
            row[0]: {
                "certification_id": row[1],
                "certification_name": row[2],
                "assignment_id": row[0],
            }
            for row in rows
        }
    for a in assignments:
        # Per instance (the class default is None): not a mapped column, so mypy sees a ClassVar.
        a.satisfied_via = providers.get(a.satisfied_via_id) if a.satisfied_via_id else None  # type: ignore[misc]


def _assignment_id(record: Any) -> uuid.UUID:
    if isinstance(record, Assignment):
        return record.id
    if isinstance(record, dict):
        return record["assignment_id"]  # type: ignore[no-any-return]
    return record.assignment_id  # type: ignore[no-any-return]
