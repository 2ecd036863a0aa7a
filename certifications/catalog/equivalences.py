"""`satisfied_by` on a certification: which certifications' records satisfy it (OSHA 10 is
satisfied by OSHA 30). Same type only (422 naming the field); no cycles, a certification
listing itself included (409). Edits of the links of one organization take turns
(`lock_equivalences`), so two edits that each close half of a cycle cannot both pass.

What a link does to statuses is in `certifications.assignments.equivalence`.
"""

from __future__ import annotations

import uuid
import zlib
from collections import defaultdict

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from certifications.catalog.models import Certification, CertificationEquivalence
from infra.errors import Conflict

EQ = CertificationEquivalence
# First key of the two-key advisory lock "equivalence edits of one organization" (the role
# fan-outs' is 4_0002).
EQUIVALENCE_LOCK_CLASS = 4_0003


def lock_equivalences(session: Session, org_id: uuid.UUID) -> None:
    """Wait for the org's running edit of `satisfied_by` links (PostgreSQL; SQLite has one
    writer at a time), then hold off the next one until this transaction ends."""
    if session.get_bind().dialect.name != "postgresql":
        return
    org_key = zlib.crc32(org_id.bytes) - 2**31  # fits int4
    session.execute(
        text("SELECT pg_advisory_xact_lock(:cls, :obj)"),
        {"cls": EQUIVALENCE_LOCK_CLASS, "obj": org_key},
    )


def type_errors(session: Session, cert_type: str, provider_ids: list[uuid.UUID]) -> list[str]:
    """Providers of another type than `cert_type` (unknown ids are reported elsewhere)."""
    if not provider_ids:
        return []
    rows = session.execute(
        select(Certification.id, Certification.type).where(Certification.id.in_(provider_ids))
    ).all()
    return [
        f"Certification {cid} is a {kind} certification; this one is {cert_type} (same type only)."
        for cid, kind in rows
        if kind != cert_type
    ]


def dependents_of_other_type(
    session: Session, certification_id: uuid.UUID, cert_type: str
) -> list[uuid.UUID]:
    """Certifications listing `certification_id` in `satisfied_by` whose type is not `cert_type`
    (a type change of a provider would break them)."""
    return list(
        session.scalars(
            select(Certification.id)
            .join(
                EQ,
                (EQ.org_id == Certification.org_id) & (EQ.certification_id == Certification.id),
            )
            .where(EQ.provider_id == certification_id, Certification.type != cert_type)
        )
    )


def refuse_cycle(
    session: Session, certification_id: uuid.UUID, provider_ids: list[uuid.UUID]
) -> None:
    """409 when `certification_id` satisfied by `provider_ids` closes a cycle of links."""
    if certification_id in provider_ids:
        raise Conflict(
            "A certification cannot be satisfied by itself.",
            {"satisfied_by": [f"Lists the certification itself ({certification_id})."]},
        )
    graph: dict[uuid.UUID, set[uuid.UUID]] = defaultdict(set)
    for dependent, provider in session.execute(select(EQ.certification_id, EQ.provider_id)):
        if dependent != certification_id:  # this certification's links are being replaced
            graph[dependent].add(provider)
    graph[certification_id] = set(provider_ids)
    # A cycle through the edited certification: it is reachable again from its providers.
    seen: set[uuid.UUID] = set()
    stack = [(p, [certification_id, p]) for p in provider_ids]
    while stack:
        node, path = stack.pop()
        if node == certification_id:
            chain = " → ".join(str(n) for n in path)
            raise Conflict(
                f"satisfied_by would make a cycle of equivalences: {chain}.",
                {"satisfied_by": [f"Cycle: {chain}."]},
            )
        if node in seen:
            continue
        seen.add(node)
        stack.extend((nxt, [*path, nxt]) for nxt in graph.get(node, ()))
