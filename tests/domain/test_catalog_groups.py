"""Group tree rules below the API: ancestry queries and cycle safety under concurrent moves."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
from sqlalchemy import select

from certifications.catalog import groups
from certifications.catalog.models import CertificationGroup
from infra import context
from infra import database as db
from infra.errors import Conflict


def _make_chain(org_id: Any, depth: int) -> list[Any]:
    tag = uuid.uuid4().hex[:6]  # sibling names are unique: chains of one org get their own
    with context.tenant(org_id), db.new_session() as s:
        ids: list[Any] = []
        for level in range(depth):
            ids.append(groups.create_group(s, f"{tag} level {level}", ids[-1] if ids else None).id)
        s.commit()
    return ids


def _parents(org_id: Any) -> dict[Any, Any]:
    with context.tenant(org_id), db.new_session() as s:
        return dict(s.execute(select(CertificationGroup.id, CertificationGroup.parent_id)).all())


def _has_cycle(parents: dict[Any, Any]) -> bool:
    for start in parents:
        seen, node = set(), start
        while node is not None:
            if node in seen:
                return True
            seen.add(node)
            node = parents.get(node)
    return False


def test_ancestors_and_subtree_follow_the_whole_chain(org) -> None:
    chain = _make_chain(org.id, 30)
    with context.tenant(org.id), db.new_session() as s:
        assert groups.ancestors_of(s, chain[-1]) == set(chain)
        assert groups.ancestors_of(s, chain[0]) == {chain[0]}
        assert set(s.scalars(groups.subtree_ids(chain[10]))) == set(chain[10:])


def test_ancestry_never_crosses_organizations(org, make_org) -> None:
    other = make_org()
    theirs = _make_chain(other.id, 3)
    with context.tenant(org.id), db.new_session() as s:
        assert groups.ancestors_of(s, theirs[-1]) == set()
        assert list(s.scalars(groups.subtree_ids(theirs[0]))) == []


def _move_in_thread(org_id: Any, group_id: Any, parent_id: Any, out: dict[str, Any]) -> None:
    with context.tenant(org_id), db.new_session() as s:
        try:
            groups.move_group(s, group_id, parent_id)
            s.commit()
            out["result"] = "moved"
        except Conflict:
            out["result"] = "conflict"


@pytest.mark.postgres
def test_a_crossing_move_waits_for_the_first_and_then_sees_the_cycle(org) -> None:
    """A→under B holds the org's tree lock; B→under A blocks, then re-checks and is refused."""
    a = _make_chain(org.id, 1)[0]
    b = _make_chain(org.id, 1)[0]
    out: dict[str, Any] = {}
    with context.tenant(org.id), db.new_session() as first:
        groups.move_group(first, a, b)
        second = threading.Thread(target=_move_in_thread, args=(org.id, b, a, out))
        second.start()
        second.join(timeout=1.0)
        assert second.is_alive(), "the crossing move did not wait for the tree lock"
        first.commit()
    second.join(timeout=30)
    assert out == {"result": "conflict"}
    assert _parents(org.id) == {a: b, b: None}


@pytest.mark.postgres
def test_other_organizations_do_not_wait_for_the_lock(org, make_org) -> None:
    other = make_org()
    a, b = _make_chain(org.id, 1)[0], _make_chain(org.id, 1)[0]
    x, y = _make_chain(other.id, 1)[0], _make_chain(other.id, 1)[0]
    out: dict[str, Any] = {}
    with context.tenant(org.id), db.new_session() as first:
        groups.move_group(first, a, b)
        t = threading.Thread(target=_move_in_thread, args=(other.id, x, y, out))
        t.start()
        t.join(timeout=10)
        assert out == {"result": "moved"}
        first.rollback()


@pytest.mark.postgres
@pytest.mark.parametrize("attempt", range(5))
def test_concurrent_crossing_moves_over_http_never_make_a_cycle(api, org, attempt) -> None:
    """Two requests at once, A→under B and B→under A: exactly one succeeds."""
    ids = [api.post("/certification-groups", json={"name": n}).get_json()["id"] for n in "AB"]
    # Put each under its own chain so the ancestry walk has some depth.
    a_parent = api.post("/certification-groups", json={"name": "pa"}).get_json()["id"]
    api.post(f"/certification-groups/{ids[0]}/move", json={"parent_id": a_parent})
    barrier = threading.Barrier(2)
    statuses: list[int] = []

    def move(group_id: str, parent_id: str) -> None:
        barrier.wait()
        resp = api.post(f"/certification-groups/{group_id}/move", json={"parent_id": parent_id})
        statuses.append(resp.status_code)

    threads = [
        threading.Thread(target=move, args=(ids[0], ids[1])),
        threading.Thread(target=move, args=(ids[1], ids[0])),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(statuses) == [200, 409]
    assert not _has_cycle(_parents(org.id))


def test_subtree_height_counts_levels(org) -> None:
    chain = _make_chain(org.id, 7)
    with context.tenant(org.id), db.new_session() as s:
        assert groups.subtree_height(s, chain[0]) == 7
        assert groups.subtree_height(s, chain[5]) == 2
        assert groups.subtree_height(s, chain[6]) == 1
