"""Equivalences (`satisfied_by`): a subject's assignment of B takes the best live status among its
own record and the subject's records of the certifications that satisfy B.

Ranking: valid > expires_soon > upcoming > expired > missing. A provider gives B its status only
when that status is valid, expires_soon or upcoming (an expired or unrecorded record satisfies
nothing) and strictly better than B's own (a tie keeps B's own record, `satisfied_via` null);
among equally good providers the smallest assignment id wins, so the choice is deterministic.
Revoked stays revoked (a decision about B); a revoked provider provides nothing. One level: a
provider's *own* record counts, never what it is itself satisfied by (not transitive).

The rule exists twice, kept in agreement by a property test (tests/domain): the pure
`effective_status` below, used by single-assignment writes (`service.restatus`), and
`best_providers` (SQL), used by the set-based recomputation (`assignments.recompute`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import date
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, select
from sqlalchemy.orm import Session, aliased

from certifications.assignments import status as rules
from certifications.assignments.models import Assignment
from certifications.catalog.models import Certification, CertificationEquivalence
from certifications.vocabulary import EXPIRED, EXPIRES_SOON, MISSING, REVOKED, UPCOMING, VALID

A = Assignment
C = Certification
EQ = CertificationEquivalence

# Higher is better; revoked and "no provider" rank 0.
RANK = {VALID: 5, EXPIRES_SOON: 4, UPCOMING: 3, EXPIRED: 2, MISSING: 1}
# What an equivalent record can give: an expired or unrecorded OSHA 30 satisfies nothing, so
# OSHA 10 then shows its own record (drops back to missing without one).
PROVIDING = (VALID, EXPIRES_SOON, UPCOMING)


def effective_status(
    own: str, providers: Iterable[tuple[uuid.UUID, str]]
) -> tuple[str, uuid.UUID | None]:
    """(status, providing assignment id or None) from B's own status and its providers'
    (assignment id, own status) pairs."""
    if own == REVOKED:
        return own, None
    best: tuple[int, uuid.UUID, str] | None = None
    for provider_id, status in providers:
        rank = RANK[status] if status in PROVIDING else 0
        if rank and (best is None or (-rank, provider_id) < (-best[0], best[1])):
            best = (rank, provider_id, status)
    if best is not None and best[0] > RANK.get(own, 0):
        return best[2], best[1]
    return own, None


def rank_sql(status: Any) -> Any:
    """`RANK` as SQL over a status expression (NULL and revoked: 0)."""
    return case(*[(status == s, r) for s, r in RANK.items()], else_=0)


def best_providers(
    today: date, where: Sequence[ColumnElement[bool]], status_sql: Callable[..., Any]
) -> Any:
    """CTE (dependent_id, provider_id, provider_status): for each live assignment of `where`
    (on the `assignments` entity) whose certification has `satisfied_by`, the best live record
    of an equivalent certification of the same subject (absent: no provider record at all).

    `status_sql(today, assignments, certifications)` is the own-status CASE (recompute's)."""
    p = aliased(Assignment, name="provider")
    pc = aliased(Certification, name="provider_certification")
    p_status = status_sql(today, p, pc)
    ranked = (
        select(
            A.id.label("dependent_id"),
            p.id.label("provider_id"),
            p_status.label("provider_status"),
            func.row_number()
            .over(partition_by=A.id, order_by=[rank_sql(p_status).desc(), p.id])
            .label("pick"),
        )
        .select_from(A)
        .join(EQ, and_(EQ.org_id == A.org_id, EQ.certification_id == A.certification_id))
        .join(
            p,
            and_(
                p.org_id == A.org_id,
                p.certification_id == EQ.provider_id,
                p.subject_type == A.subject_type,
                p.subject_id == A.subject_id,
            ),
        )
        .join(pc, and_(pc.org_id == p.org_id, pc.id == p.certification_id))
        .where(*where, A.revoked_at.is_(None), p.revoked_at.is_(None), p_status.in_(PROVIDING))
        .cte("ranked")
    )
    return (
        select(ranked.c.dependent_id, ranked.c.provider_id, ranked.c.provider_status)
        .where(ranked.c.pick == 1)
        .cte("best")
    )


def effective_sql(own: Any, best: Any) -> tuple[Any, Any]:
    """(new status, new satisfied_via_id) of `assignments` rows outer-joined to `best`."""
    better = and_(A.revoked_at.is_(None), rank_sql(best.c.provider_status) > rank_sql(own))
    return (
        case((better, best.c.provider_status), else_=own),
        case((better, best.c.provider_id), else_=None),
    )


# --- lookups for services ----------------------------------------------------------------------


def dependent_certification_ids(
    session: Session, provider_ids: Iterable[uuid.UUID] | None = None
) -> list[uuid.UUID]:
    """Certifications with `satisfied_by` (of these providers only, when given): a few ids."""
    stmt = select(EQ.certification_id).distinct()
    if provider_ids is not None:
        stmt = stmt.where(EQ.provider_id.in_(list(provider_ids)))
    return list(session.scalars(stmt))


def provider_statuses(
    session: Session, assignment: Assignment, today: date
) -> list[tuple[uuid.UUID, str]]:
    """(id, own status) of the subject's live records of the certifications satisfying
    `assignment`'s certification (few rows: one subject)."""
    pc = aliased(Certification, name="provider_certification")
    rows = session.execute(
        select(A, pc)
        .join(EQ, and_(EQ.org_id == A.org_id, EQ.provider_id == A.certification_id))
        .join(pc, and_(pc.org_id == A.org_id, pc.id == A.certification_id))
        .where(
            EQ.certification_id == assignment.certification_id,
            A.subject_type == assignment.subject_type,
            A.subject_id == assignment.subject_id,
            A.revoked_at.is_(None),
            A.id != assignment.id,
        )
    ).all()
    return [(p.id, rules.assignment_status(p, cert, today)) for p, cert in rows]


def dependents_of(
    session: Session, provider_certification_id: uuid.UUID, subject_ids: Iterable[uuid.UUID]
) -> list[uuid.UUID]:
    """Live assignments these subjects hold of certifications `provider_certification_id`
    satisfies: the rows whose status may follow a change of the subjects' provider records."""
    subjects = list(dict.fromkeys(subject_ids))
    if not subjects:
        return []
    dependents = select(EQ.certification_id).where(EQ.provider_id == provider_certification_id)
    return list(
        session.scalars(
            select(A.id).where(
                A.certification_id.in_(dependents),
                A.subject_id.in_(subjects),
                A.revoked_at.is_(None),
            )
        )
    )


def depends_on(session: Session, certification_id: uuid.UUID) -> bool:
    """Whether `certification_id` has `satisfied_by` (its assignments look at providers)."""
    return (
        session.scalar(
            select(EQ.provider_id).where(EQ.certification_id == certification_id).limit(1)
        )
        is not None
    )
