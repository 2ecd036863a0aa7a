"""Certification groups: a tree per organization (SPEC §4).

Create, rename, move (never into its own subtree), delete (only while empty), the whole tree
built from one query (`group_nodes`, also what the compliance views roll up) and the subtree of
one group as a recursive CTE (`subtree_ids`, also what the views filter by). Moves and deletes
take a per-organization lock on PostgreSQL so two concurrent moves can never create a cycle: the
ancestry check runs inside the locked transaction.
"""

from __future__ import annotations

import functools
import uuid
import zlib
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, func, literal, select, text
from sqlalchemy.orm import Session

from certifications.catalog.models import (
    Certification,
    CertificationGroup,
    CertificationGroupMember,
)
from infra.context import require_org_id
from infra.database import get_or_not_found
from infra.errors import Conflict, Invalid
from tenancy.keys import tenant_join
from tenancy.scoping import prebuilt_tenant_statement, run_scoped

_GROUPS = CertificationGroup  # the session's tenant criteria scopes every statement on it
# First key of the two-key advisory lock: "the certification group tree of one organization".
_TREE_LOCK_CLASS = 4_0001
_HELD_SAMPLE = 20  # how many held ids a 409 lists
# Levels of nesting, the top level being 1: far beyond any real catalog, and it keeps every
# recursive walk (SQL and JSON) short.
MAX_DEPTH = 100


def get_group(session: Session, group_id: uuid.UUID) -> CertificationGroup:
    return get_or_not_found(session, CertificationGroup, group_id, "certification group")


def list_statement() -> Select[Any]:
    """The flat list query; the caller paginates it by (name, id)."""
    return select(CertificationGroup)


def describe(session: Session, group: CertificationGroup) -> dict[str, Any]:
    """A group with its certifications and its direct subgroups (the seed's left panel)."""
    certs = session.execute(
        select(Certification.id, Certification.name, Certification.type, Certification.archived_at)
        .join(
            CertificationGroupMember,
            CertificationGroupMember.certification_id == Certification.id,
        )
        .where(CertificationGroupMember.group_id == group.id)
        .order_by(Certification.name, Certification.id)
    ).all()
    subgroups = session.execute(
        select(CertificationGroup.id, CertificationGroup.name)
        .where(CertificationGroup.parent_id == group.id)
        .order_by(CertificationGroup.name, CertificationGroup.id)
    ).all()
    return {
        **_row(group),
        "certification_count": sum(1 for c in certs if c.archived_at is None),
        "certifications": [
            {"id": c.id, "name": c.name, "type": c.type, "archived": c.archived_at is not None}
            for c in certs
        ],
        "subgroups": [{"id": g.id, "name": g.name} for g in subgroups],
    }


@dataclass
class GroupNode:
    """One group of the tree: its live (not archived) certifications and its subgroups."""

    id: uuid.UUID
    name: str
    parent_id: uuid.UUID | None
    certification_ids: list[uuid.UUID] = field(default_factory=list)
    children: list[GroupNode] = field(default_factory=list)

    def subtree_certification_ids(self) -> set[uuid.UUID]:
        """The live certifications of this group and of every group below it, each once."""
        ids = set(self.certification_ids)
        for child in self.children:
            ids |= child.subtree_certification_ids()
        return ids


@functools.cache
def _group_rows() -> Select[Any]:
    """Every group with its live certifications (none: one row with a null), by name. Built
    once (the summary and the tree ask it on every request); the tenant comes at execution."""
    member = CertificationGroupMember
    live = (
        select(member.group_id, member.certification_id)
        .join(Certification, tenant_join(Certification, member, "certification_id"))
        .where(Certification.archived_at.is_(None))
        .subquery()
    )
    g = CertificationGroup
    return (
        select(g.id, g.name, g.parent_id, live.c.certification_id)
        .outerjoin(live, live.c.group_id == g.id)
        .order_by(g.name, g.id)
    )


def group_nodes(session: Session) -> dict[uuid.UUID, GroupNode]:
    """Every group by name, each linked to its subgroups (by name too): one query."""
    # Plain rows (`run_scoped`: the session's scoping), not entities: loading 5,000 ORM
    # objects costs more than the query.
    rows = run_scoped(session, _group_rows())
    nodes: dict[uuid.UUID, GroupNode] = {}
    for gid, name, parent_id, certification_id in rows:
        node = nodes.get(gid)
        if node is None:
            node = nodes[gid] = GroupNode(gid, name, parent_id)
        if certification_id is not None:
            node.certification_ids.append(certification_id)
    for node in nodes.values():  # in name order, so every children list is sorted too
        parent = nodes.get(node.parent_id) if node.parent_id else None
        if parent is not None:
            parent.children.append(node)
    return nodes


def top_level(nodes: dict[uuid.UUID, GroupNode]) -> list[GroupNode]:
    """The groups of `group_nodes` that no other group holds, by name."""
    return [n for n in nodes.values() if n.parent_id is None or n.parent_id not in nodes]


def tree(session: Session) -> list[dict[str, Any]]:
    """Every group nested under its parent, with live certification counts: one query."""
    nodes = group_nodes(session)
    # JSON-ready nodes (string ids): the nesting is serialized as is, without recursion.
    out: dict[uuid.UUID, dict[str, Any]] = {
        gid: {
            "id": str(gid),
            "name": node.name,
            "parent_id": str(node.parent_id) if node.parent_id else None,
            "certification_count": len(node.certification_ids),
            "children": [],
        }
        for gid, node in nodes.items()
    }
    for gid, node in nodes.items():
        out[gid]["children"] = [out[child.id] for child in node.children]
    return [out[node.id] for node in top_level(nodes)]


def create_group(session: Session, name: str, parent_id: uuid.UUID | None = None) -> Any:
    if parent_id is not None:
        lock_tree(session)
        _require_parent(session, parent_id)
        _check_depth(len(ancestors_of(session, parent_id)) + 1)
    _check_sibling_name(session, name, parent_id, None)
    group = CertificationGroup(name=name, parent_id=parent_id)
    session.add(group)
    session.flush()
    return group


def rename_group(session: Session, group_id: uuid.UUID, name: str) -> CertificationGroup:
    group = get_group(session, group_id)
    _check_sibling_name(session, name, group.parent_id, group.id)
    group.name = name
    session.flush()
    return group


def move_group(
    session: Session, group_id: uuid.UUID, parent_id: uuid.UUID | None
) -> CertificationGroup:
    """Re-parent a group (None = the root); its certifications and subgroups move with it."""
    lock_tree(session)
    group = get_group(session, group_id)
    if parent_id is not None:
        _require_parent(session, parent_id)
        above = ancestors_of(session, parent_id)
        if group_id in above:
            raise Conflict(
                "A group cannot move into itself or one of its own subgroups.",
                {"parent_id": [f"{parent_id} is inside group {group_id}."]},
            )
        _check_depth(len(above) + subtree_height(session, group_id))
    _check_sibling_name(session, group.name, parent_id, group.id)
    group.parent_id = parent_id
    session.flush()
    return group


def _check_sibling_name(
    session: Session, name: str, parent_id: uuid.UUID | None, group_id: uuid.UUID | None
) -> None:
    """Sibling groups (same parent, or both at the root) have distinct names, ignoring case."""
    stmt = select(CertificationGroup.id).where(
        func.lower(CertificationGroup.name) == name.lower(),
        CertificationGroup.parent_id.is_(None)
        if parent_id is None
        else CertificationGroup.parent_id == parent_id,
    )
    if group_id is not None:
        stmt = stmt.where(CertificationGroup.id != group_id)
    if session.scalar(stmt.limit(1)) is not None:
        raise Conflict(
            "Another group in the same place already has this name.",
            {"name": ["Already used by a sibling group (names ignore case)."]},
        )


def delete_group(session: Session, group_id: uuid.UUID) -> None:
    """Delete an empty group; one that holds certifications or subgroups is refused (409)."""
    lock_tree(session)
    group = get_group(session, group_id)
    cert_ids = session.scalars(
        select(CertificationGroupMember.certification_id)
        .where(CertificationGroupMember.group_id == group.id)
        .limit(_HELD_SAMPLE + 1)
    ).all()
    sub_ids = session.scalars(
        select(CertificationGroup.id)
        .where(CertificationGroup.parent_id == group.id)
        .limit(_HELD_SAMPLE + 1)
    ).all()
    if cert_ids or sub_ids:
        n_certs = _count(session, CertificationGroupMember, group.id)
        n_subs = _count(session, CertificationGroup, group.id)
        held = [_plural(n_certs, "certification"), _plural(n_subs, "subgroup")]
        held_text = " and ".join(h for h in held if h)
        errors = {}
        if cert_ids:
            errors["certifications"] = [str(i) for i in cert_ids[:_HELD_SAMPLE]]
        if sub_ids:
            errors["subgroups"] = [str(i) for i in sub_ids[:_HELD_SAMPLE]]
        raise Conflict(
            f"Group {group.id} still holds {held_text}; move or delete them first.", errors
        )
    session.delete(group)
    session.flush()


def ancestors_of(session: Session, group_id: uuid.UUID) -> set[uuid.UUID]:
    """`group_id` and every group above it, by one recursive query."""
    up = (
        select(_GROUPS.id, _GROUPS.parent_id)
        .where(_GROUPS.id == group_id)
        .cte("ancestors", recursive=True)
    )
    # UNION (not UNION ALL) so even corrupt data with a cycle terminates.
    up = up.union(select(_GROUPS.id, _GROUPS.parent_id).join(up, _GROUPS.id == up.c.parent_id))
    return set(session.scalars(select(up.c.id)))


def subtree_ids(group_id: Any, *, prebuilt: bool = False) -> Select[Any]:
    """A select of `group_id` and every group below it (recursive CTE), for `IN (...)` filters.

    `prebuilt`: for a statement built once (`group_id` a bind parameter) and run by
    `run_prebuilt`: each level of the CTE scoped with `prebuilt_tenant_statement`."""
    scoped = prebuilt_tenant_statement if prebuilt else _unchanged
    top = scoped(select(_GROUPS.id).where(_GROUPS.id == group_id), _GROUPS)
    down = top.cte("subtree", recursive=True)
    below = select(_GROUPS.id).join(down, _GROUPS.parent_id == down.c.id)
    down = down.union(scoped(below, _GROUPS))
    return select(down.c.id)


def _unchanged(stmt: Select[Any], *_tables: Any) -> Select[Any]:
    return stmt


def subtree_height(session: Session, group_id: uuid.UUID) -> int:
    """Levels in the subtree of `group_id` (1 = no subgroups), by one recursive query."""
    down = (
        select(_GROUPS.id, literal(1).label("level"))
        .where(_GROUPS.id == group_id)
        .cte("levels", recursive=True)
    )
    down = down.union_all(
        select(_GROUPS.id, down.c.level + 1)
        .join(down, _GROUPS.parent_id == down.c.id)
        .where(down.c.level <= MAX_DEPTH)  # bounded even if corrupt
    )
    return int(session.scalar(select(func.max(down.c.level))) or 0)


def lock_tree(session: Session) -> None:
    """Serialize tree changes of this organization until the transaction ends (PostgreSQL).

    SQLite already serializes writers; elsewhere a transaction-level advisory lock keyed by the
    org makes "check ancestry, then re-parent" atomic against a concurrent crossing move.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    org_key = zlib.crc32(require_org_id().bytes) - 2**31  # fits int4
    session.execute(
        text("SELECT pg_advisory_xact_lock(:cls, :obj)"), {"cls": _TREE_LOCK_CLASS, "obj": org_key}
    )


def _require_parent(session: Session, parent_id: uuid.UUID) -> None:
    if session.get(CertificationGroup, parent_id) is None:
        raise Invalid({"parent_id": [f"Certification group {parent_id} does not exist."]})


def _check_depth(deepest_level: int) -> None:
    if deepest_level > MAX_DEPTH:
        raise Invalid(
            {
                "parent_id": [
                    f"Groups nest at most {MAX_DEPTH} levels deep; this would make {deepest_level}."
                ]
            }
        )


def _count(session: Session, model: Any, group_id: uuid.UUID) -> int:
    column = model.group_id if model is CertificationGroupMember else model.parent_id
    return session.execute(
        select(func.count()).select_from(model).where(column == group_id)
    ).scalar_one()


def _plural(n: int, noun: str) -> str:
    return "" if n == 0 else f"{n} {noun}" + ("" if n == 1 else "s")


def _row(group: CertificationGroup) -> dict[str, Any]:
    return {
        "id": group.id,
        "name": group.name,
        "parent_id": group.parent_id,
        "created_at": group.created_at,
        "updated_at": group.updated_at,
    }
