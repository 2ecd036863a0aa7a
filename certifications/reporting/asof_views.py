"""Subject views as of a past day: the same pages as `subjects`, their certifications and
statuses read from history (`history.asof.as_of_rows`) instead of the stored rows.

The subjects themselves (names, roles, clients, `active`) are today's directory.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select, Subquery, literal, select
from sqlalchemy.orm import Session

from certifications.catalog.groups import subtree_ids
from certifications.catalog.models import (
    Certification,
    CertificationClient,
    CertificationGroupMember,
)
from certifications.directory.models import SUBJECT_MODELS
from certifications.history.asof import AsOf, as_of_rows
from certifications.reporting.subjects import (
    SubjectRow,
    ViewFilters,
    _subject_row,
    fill_rows,
    narrows_certifications,
    subject_query,
)


def _conditions(kind: str, f: ViewFilters, rows: Subquery) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = [rows.c.subject_type == kind]
    if f.certification_id is not None:
        conds.append(rows.c.certification_id == f.certification_id)
    if f.exempt is not None:
        conds.append(rows.c.exempt.is_(f.exempt))
    if f.group_id is not None:
        conds.append(
            rows.c.certification_id.in_(
                select(CertificationGroupMember.certification_id).where(
                    CertificationGroupMember.group_id.in_(subtree_ids(f.group_id))
                )
            )
        )
    if kind == "employee" and f.client_id is not None:
        conds.append(
            rows.c.certification_id.in_(
                select(CertificationClient.certification_id).where(
                    CertificationClient.client_id == f.client_id
                )
            )
        )
    return conds


def subject_query_as_of(
    kind: str, f: ViewFilters, when: AsOf
) -> tuple[Select[Any], list[Any], Subquery]:
    """`subject_query`, narrowed by the day's certifications and statuses; and those rows."""
    # Inactive subjects' rows too: the subject query decides which subjects a view lists.
    rows = as_of_rows(when, include_inactive=True)
    plain = dataclasses.replace(
        f,
        status=(),
        exempt=None,
        certification_id=None,
        group_id=None,
        client_id=None if kind == "employee" else f.client_id,
    )
    stmt, keys = subject_query(kind, plain)
    if narrows_certifications(kind, f):
        model: Any = SUBJECT_MODELS[kind]
        match = select(literal(1)).where(rows.c.subject_id == model.id, *_conditions(kind, f, rows))
        if f.status:
            match = match.where(rows.c.status.in_(f.status))
        stmt = stmt.where(match.exists())
    return stmt, keys, rows


def attach_certifications_as_of(
    session: Session, kind: str, subjects: Sequence[Any], f: ViewFilters, rows: Subquery
) -> list[SubjectRow]:
    """The page's subjects with their certifications as they stood (one statement)."""
    page = [_subject_row(kind, s) for s in subjects]
    if not page:
        return page
    ids: list[uuid.UUID] = [r.id for r in page]
    stmt = (
        select(
            rows.c.subject_id,
            rows.c.assignment_id,
            rows.c.certification_id,
            Certification.name,
            rows.c.status,
            rows.c.required,
            rows.c.issued_on,
            rows.c.effective_on,
            rows.c.expires_on,
            rows.c.exempt,
        )
        .join(Certification, Certification.id == rows.c.certification_id)
        .where(rows.c.subject_id.in_(ids), *_conditions(kind, f, rows))
        .order_by(Certification.name, Certification.id, rows.c.assignment_id)
    )
    fill_rows(page, session.execute(stmt).all(), f.status)
    return page
