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
from sqlalchemy.orm import Session
from sqlalchemy.sql import FromClause

from certifications.assignments.models import Assignment
from certifications.catalog.models import Certification
from certifications.directory.models import SUBJECT_MODELS
from infra.context import require_org_id


@dataclass(frozen=True)
class Names:
    certification_name: str
    subject_type: str
    subject_id: uuid.UUID
    subject_name: str


def subject_name_sql(a: Any, source: FromClause) -> tuple[FromClause, Any]:
    """(`source` outer-joined to the four subject tables, the subject's name) for assignments
    `a` (a table); one LEFT JOIN per kind, each only matching its own `subject_type`."""
    names = []
    for kind, model in SUBJECT_MODELS.items():
        s = model.__table__.alias(f"subject_{kind}")  # type: ignore[attr-defined]
        source = source.outerjoin(
            s,
            and_(a.c.subject_type == kind, s.c.org_id == a.c.org_id, s.c.id == a.c.subject_id),
        )
        names.append(s.c.name)
    return source, func.coalesce(*names)


def names_by_assignment(
    session: Session, assignment_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, Names]:
    """Certification and subject names of these assignments: one query whatever their number."""
    ids = list(dict.fromkeys(assignment_ids))
    if not ids:
        return {}
    a = Assignment.__table__
    c = Certification.__table__
    certified = a.join(c, and_(c.c.org_id == a.c.org_id, c.c.id == a.c.certification_id))
    joined, subject_name = subject_name_sql(a, certified)
    # Core statement: the ORM tenant criteria do not reach it, so the tenant filter is explicit.
    org_filter = a.c.org_id == require_org_id()
    rows = session.execute(
        select(a.c.id, c.c.name, a.c.subject_type, a.c.subject_id, subject_name)
        .select_from(joined)
        .where(org_filter, a.c.id.in_(ids))
    )
    return {row[0]: Names(row[1], row[2], row[3], row[4] or f"{row[2]} (deleted)") for row in rows}


def attach_names(session: Session, records: Any) -> Any:
    """Set `certification_name`, `subject_type`, `subject_id`, `subject_name` on each record
    (an Assignment, or anything with `assignment_id`), or on a page's items; returns `records`."""
    items = getattr(records, "items", None)
    many = items if items is not None else records if isinstance(records, list) else [records]
    found = names_by_assignment(session, (_assignment_id(r) for r in many))
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


def _assignment_id(record: Any) -> uuid.UUID:
    if isinstance(record, Assignment):
        return record.id
    if isinstance(record, dict):
        return record["assignment_id"]  # type: ignore[no-any-return]
    return record.assignment_id  # type: ignore[no-any-return]
