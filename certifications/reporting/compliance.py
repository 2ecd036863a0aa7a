"""Compliance figures (SPEC §6): per certification, per group of the tree, org-wide.

The group tree and the summary cost two statements each, whatever the size of the catalog or the
number of assignments: the counts per status of every certification's current assignments, read
from the counts the database maintains (`certification_stats`, `reporting.counts`), and the
group tree (`catalog.groups.group_nodes`), rolled up here. A required assignment is compliant
while it is valid or expires soon. Exempt assignments are outside the ratio (and the counts per
status): they count under `exempt`. Assignments of inactive subjects (leavers) are left out
unless `include_inactive`.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, and_, func, select, union_all
from sqlalchemy.orm import Session, aliased

from certifications.assignments.models import Assignment, AssignmentCount
from certifications.assignments.scope import subject_active
from certifications.catalog.groups import GroupNode, group_nodes, top_level
from certifications.catalog.models import Certification
from certifications.history.asof import AsOf, status_counts_as_of
from certifications.history.models import ComplianceSnapshot
from certifications.reporting.subjects import empty_counts, newer_cycle_exists
from certifications.vocabulary import COMPLIANT_STATUSES
from infra.database import without_jit
from tenancy.scoping import run_scoped


@dataclass
class CertificationStats:
    id: uuid.UUID
    name: str
    type: str
    counts: dict[str, int] = field(default_factory=empty_counts)
    required: int = 0
    compliant: int = 0
    exempt: int = 0

    def add(self, status: str, required: bool, exempt: bool, n: int) -> None:
        if exempt:
            self.exempt += n
            return
        self.counts[status] += n
        if required:
            self.required += n
            if status in COMPLIANT_STATUSES:
                self.compliant += n


def compliance_share(required: int, compliant: int) -> float | None:
    """Share of required assignments that are valid (expires soon is still valid)."""
    return round(compliant / required, 4) if required else None


@functools.cache
def _counts_statement(include_inactive: bool) -> Select[*tuple[Any, ...]]:
    """`certification_stats`' statement, built once per flag (asked on every summary and
    tree request); the tenant comes at execution."""
    c = AssignmentCount
    on = [c.org_id == Certification.org_id, c.certification_id == Certification.id]
    if not include_inactive:
        on.append(c.active.is_(True))
    return (
        select(
            Certification.id,
            Certification.name,
            Certification.type,
            c.status,
            c.required,
            c.exempt,
            func.sum(c.n).label("n"),
        )
        .outerjoin(c, and_(*on))
        .where(Certification.archived_at.is_(None))
        .group_by(
            Certification.id, Certification.name, Certification.type, c.status, c.required, c.exempt
        )
        .order_by(Certification.name, Certification.id)
    )


def certification_stats(
    session: Session, include_inactive: bool = False
) -> dict[uuid.UUID, CertificationStats]:
    """Counts per status of every active certification's current assignments: one statement
    over the maintained counts (`reporting.counts`), a few rows per certification whatever the
    number of assignments. Plain rows through the session's scoping (`run_scoped`)."""
    stats: dict[uuid.UUID, CertificationStats] = {}
    for r in run_scoped(session, _counts_statement(include_inactive)):
        s = stats.setdefault(r.id, CertificationStats(r.id, r.name, r.type))
        if r.status is not None and r.n:
            s.add(r.status, bool(r.required), bool(r.exempt), int(r.n))
    return stats


def scanned_certification_stats(
    session: Session, include_inactive: bool = False
) -> dict[uuid.UUID, CertificationStats]:
    """`certification_stats` computed from every assignment of the organization instead of the
    maintained counts: the reference they are checked against (tests), linear in the org."""
    without_jit(session)
    # Live rows and latest revoked rows as two branches: inside an OR, the "latest" probe ran
    # once per revoked row as a subplan and the live rows paid for its estimate.
    exempt = Assignment.exempt_at.is_not(None).label("exempt")
    cols = (Assignment.certification_id, Assignment.status, Assignment.required, exempt)
    scope = [] if include_inactive else [subject_active(Assignment)]
    live = select(*cols).where(*scope, Assignment.revoked_at.is_(None))
    revoked = select(*cols).where(
        *scope,
        Assignment.revoked_at.is_not(None),
        ~newer_cycle_exists(),
    )
    n = func.count().label("n")
    counts = union_all(
        live.add_columns(n).group_by(*cols), revoked.add_columns(n).group_by(*cols)
    ).subquery()
    stmt = (
        select(Certification.id, Certification.name, Certification.type, counts)
        .outerjoin(counts, counts.c.certification_id == Certification.id)
        .where(Certification.archived_at.is_(None))
        .order_by(Certification.name, Certification.id)
    )
    stats: dict[uuid.UUID, CertificationStats] = {}
    for r in session.execute(stmt):
        s = stats.setdefault(r.id, CertificationStats(r.id, r.name, r.type))
        if r.status is not None:
            s.add(r.status, bool(r.required), bool(r.exempt), r.n)
    return stats


def certification_stats_as_of(
    session: Session, when: AsOf, include_inactive: bool = False
) -> dict[uuid.UUID, CertificationStats]:
    """`certification_stats` as the figures stood on a past day (`history.asof`)."""
    without_jit(session)
    catalog = (
        select(Certification.id, Certification.name, Certification.type)
        .where(Certification.archived_at.is_(None))
        .order_by(Certification.name, Certification.id)
    )
    stats = {r.id: CertificationStats(r.id, r.name, r.type) for r in session.execute(catalog)}
    for cid, status, required, exempt, n in status_counts_as_of(session, when, include_inactive):
        if cid in stats:
            stats[cid].add(status, required, exempt, n)
    return stats


def certification_stats_from_snapshots(
    session: Session, when: AsOf
) -> dict[uuid.UUID, CertificationStats] | None:
    """The day's figures from its snapshots (the tick's or the backfill's: computed from the
    same history), or None unless every active certification that existed then has one and the
    day's are final. A day's first tick writes its snapshot as the day starts and the next day's
    first tick rewrites it as it stood at its end (`history.snapshots.snapshot_org`); until a
    later day's snapshot exists, changes made since may be missing from it (a report run at
    08:00 for its own day), so that day is computed from history."""
    later = aliased(ComplianceSnapshot)
    final = select(later.id).where(later.day > when.on).limit(1).exists()
    stmt = (
        select(
            Certification.id,
            Certification.name,
            Certification.type,
            Certification.created_at,
            ComplianceSnapshot,
        )
        .outerjoin(
            ComplianceSnapshot,
            and_(
                ComplianceSnapshot.org_id == Certification.org_id,
                ComplianceSnapshot.certification_id == Certification.id,
                ComplianceSnapshot.day == when.on,
            ),
        )
        .where(Certification.archived_at.is_(None), final)
        .order_by(Certification.name, Certification.id)
    )
    stats: dict[uuid.UUID, CertificationStats] = {}
    written = False
    for cid, name, type_, created_at, snap in session.execute(stmt):
        s = stats[cid] = CertificationStats(cid, name, type_)
        if snap is None:
            if created_at < when.cutoff:
                return None
            continue  # created after the day: nothing counted then
        written = True
        s.counts = {status: getattr(snap, status) for status in s.counts}
        s.required, s.compliant, s.exempt = snap.required, snap.compliant, snap.exempt
    return stats if written else None


def _stats(
    session: Session, include_inactive: bool, when: AsOf | None
) -> dict[uuid.UUID, CertificationStats]:
    if when is None:
        return certification_stats(session, include_inactive)
    if not include_inactive:
        # A past day's snapshots answer in one short read; a day without them (before the
        # backfill, a certification created since) is computed from history.
        stats = certification_stats_from_snapshots(session, when)
        if stats is not None:
            return stats
    return certification_stats_as_of(session, when, include_inactive)


def _cert_json(s: CertificationStats) -> dict[str, Any]:
    return {
        "certification_id": s.id,
        "name": s.name,
        "type": s.type,
        "counts": dict(s.counts),
        "required": s.required,
        "compliant": s.compliant,
        "compliance": compliance_share(s.required, s.compliant),
        "exempt": s.exempt,
    }


def _rollup(stats: Iterable[CertificationStats]) -> dict[str, Any]:
    counts, required, compliant, exempt = empty_counts(), 0, 0, 0
    for s in stats:
        for k, v in s.counts.items():
            counts[k] += v
        required += s.required
        compliant += s.compliant
        exempt += s.exempt
    return {
        "counts": counts,
        "required": required,
        "compliant": compliant,
        "compliance": compliance_share(required, compliant),
        "exempt": exempt,
    }


def group_tree(
    session: Session, include_inactive: bool = False, when: AsOf | None = None
) -> dict[str, Any]:
    """The group tree; each node lists its own certifications with counts per status, its own
    counts, and `subtree` counts over itself and its descendants (each certification once).
    `when`: as the figures stood on that past day."""
    stats = _stats(session, include_inactive, when)
    nodes = group_nodes(session)

    def render(node: GroupNode) -> dict[str, Any]:
        own = sorted(
            (stats[c] for c in set(node.certification_ids) if c in stats),
            key=lambda s: (s.name, str(s.id)),
        )
        return {
            "id": node.id,
            "name": node.name,
            "parent_id": node.parent_id,
            "certifications": [_cert_json(s) for s in own],
            **_rollup(own),
            "subtree": _rollup(stats[c] for c in node.subtree_certification_ids() if c in stats),
            "children": [render(child) for child in node.children],
        }

    grouped = {c for n in nodes.values() for c in n.certification_ids}
    return {
        "groups": [render(n) for n in top_level(nodes)],
        "ungrouped": [_cert_json(s) for s in stats.values() if s.id not in grouped],
    }


def compliance_summary(
    session: Session, include_inactive: bool = False, when: AsOf | None = None
) -> dict[str, Any]:
    """Org-wide: per certification, per group (with its subgroups) and in total; `when`: as
    the figures stood on that past day (read from history)."""
    stats = _stats(session, include_inactive, when)
    nodes = group_nodes(session)
    groups = []
    for node in nodes.values():
        groups.append(
            {
                "group_id": node.id,
                "name": node.name,
                "parent_id": node.parent_id,
                **_rollup(stats[c] for c in node.subtree_certification_ids() if c in stats),
            }
        )
    return {
        "totals": _rollup(stats.values()),
        "certifications": [_cert_json(s) for s in stats.values()],
        "groups": groups,
    }
