"""Certification service rules below the API: type immutability under a concurrent assignment,
link edits under concurrent edits."""

from __future__ import annotations

import threading
import uuid
from datetime import date
from typing import Any

import pytest

from certifications.assignments.models import Assignment
from certifications.catalog import service as catalog
from certifications.catalog.models import CertificationGroup
from certifications.directory.models import Role
from infra import context
from infra import database as db
from infra.errors import Conflict


def _create(org_id: Any, **data: Any) -> uuid.UUID:
    with context.tenant(org_id), db.new_session() as s:
        cert = catalog.create_certification(s, {"name": "Forklift", "type": "asset", **data})
        s.commit()
        return cert["id"]


def _change_type(org_id: Any, cert_id: uuid.UUID, out: dict[str, Any]) -> None:
    with context.tenant(org_id), db.new_session() as s:
        try:
            catalog.update_certification(s, cert_id, {"type": "location"})
            s.commit()
            out["result"] = "changed"
        except Conflict:
            out["result"] = "conflict"


def test_describe_and_defaults(org) -> None:
    cert_id = _create(org.id, validity={"days": 90})
    with context.tenant(org.id), db.new_session() as s:
        [item] = catalog.describe(s, [catalog.get_certification(s, cert_id)])
    assert item["validity"] == {"days": 90}
    assert item["warning_days"] == 30
    assert item["group_ids"] == item["role_ids"] == item["client_ids"] == []


@pytest.mark.postgres
def test_type_change_waits_for_an_assignment_being_inserted_then_refuses(org) -> None:
    cert_id = _create(org.id)
    out: dict[str, Any] = {}
    with context.tenant(org.id), db.new_session() as first:
        first.add(
            Assignment(
                certification_id=cert_id,
                subject_type="asset",
                subject_id=uuid.uuid4(),
                issued_on=date(2026, 1, 1),
            )
        )
        first.flush()  # the FK check holds KEY SHARE on the certification row
        change = threading.Thread(target=_change_type, args=(org.id, cert_id, out))
        change.start()
        change.join(timeout=1.0)
        assert change.is_alive(), "the type change did not wait for the assignment insert"
        first.commit()
    change.join(timeout=30)
    assert out == {"result": "conflict"}


@pytest.mark.postgres
@pytest.mark.parametrize("attempt", range(3))
def test_concurrent_creates_of_one_name_give_one_201_and_one_409(api, attempt) -> None:
    barrier = threading.Barrier(2)
    answers: list[Any] = []

    def create(name: str) -> None:
        barrier.wait()
        resp = api.post("/certifications", json={"name": name, "type": "asset"})
        answers.append((resp.status_code, resp.get_json()))

    threads = [threading.Thread(target=create, args=(n,)) for n in ("Crane Ops", "CRANE ops")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    answers.sort(key=lambda a: a[0])
    assert [status for status, _ in answers] == [201, 409]
    assert answers[0][1]["id"] in answers[1][1]["message"]


def _roles_and_groups(org_id: Any, n: int) -> tuple[list[uuid.UUID], list[uuid.UUID]]:
    with context.tenant(org_id), db.new_session() as s:
        roles = [Role(name=f"Role {i} {uuid.uuid4().hex[:6]}") for i in range(n)]
        tree = [CertificationGroup(name=f"Group {i}") for i in range(n)]
        s.add_all([*roles, *tree])
        s.commit()
        return [r.id for r in roles], [g.id for g in tree]


def _edit_in_thread(
    org_id: Any, cert_id: uuid.UUID, changes: dict[str, Any], out: dict[str, Any]
) -> threading.Thread:
    def run() -> None:
        with context.tenant(org_id), db.new_session() as s:
            catalog.update_certification(s, cert_id, changes)
            s.commit()
            out["result"] = "changed"

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.mark.postgres
@pytest.mark.parametrize("field", ["role_ids", "group_ids"])
def test_a_concurrent_link_edit_waits_and_then_replaces_the_links(org, field) -> None:
    """Two PATCHes of one certification's links at once: the second waits for the first and
    replaces what it committed; the certification never keeps the union of both."""
    roles, tree = _roles_and_groups(org.id, 3)
    ids = roles if field == "role_ids" else tree
    cert_id = _create(org.id, type="employee", **{field: [ids[0]]})
    out: dict[str, Any] = {}
    with context.tenant(org.id), db.new_session() as first:
        catalog.update_certification(first, cert_id, {field: [ids[1]]})
        second = _edit_in_thread(org.id, cert_id, {field: [ids[2]]}, out)
        second.join(timeout=1.0)
        assert second.is_alive(), "the second edit did not wait for the first"
        first.commit()
    second.join(timeout=30)
    assert out == {"result": "changed"}
    with context.tenant(org.id), db.new_session() as s:
        [item] = catalog.describe(s, [catalog.get_certification(s, cert_id)])
    assert item[field] == [ids[2]]


@pytest.mark.postgres
def test_a_link_edit_does_not_wait_for_a_fanout_inserting_assignments(org) -> None:
    """The edit's row lock (FOR NO KEY UPDATE) leaves the KEY SHARE of an assignment insert
    alone: a long fan-out holds up no PATCH of its certification, and no PATCH holds it up."""
    roles, _ = _roles_and_groups(org.id, 2)
    cert_id = _create(org.id, type="employee", role_ids=[roles[0]])
    out: dict[str, Any] = {}
    with context.tenant(org.id), db.new_session() as fanout:
        fanout.add(
            Assignment(
                certification_id=cert_id,
                subject_type="employee",
                subject_id=uuid.uuid4(),
                source="role",
            )
        )
        fanout.flush()  # the FK check holds KEY SHARE on the certification row
        edit = _edit_in_thread(org.id, cert_id, {"role_ids": [roles[1]]}, out)
        edit.join(timeout=30)
        assert out == {"result": "changed"}
        fanout.rollback()
