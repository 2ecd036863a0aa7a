"""Certification service rules below the API: type immutability under a concurrent assignment."""

from __future__ import annotations

import threading
import uuid
from datetime import date
from typing import Any

import pytest

from certifications.assignments.models import Assignment
from certifications.catalog import service as catalog
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


def test_describe_and_defaults(org) -> None:  # type: ignore[no-untyped-def]
    cert_id = _create(org.id, validity={"days": 90})
    with context.tenant(org.id), db.new_session() as s:
        [item] = catalog.describe(s, [catalog.get_certification(s, cert_id)])
    assert item["validity"] == {"days": 90}
    assert item["warning_days"] == 30
    assert item["group_ids"] == item["role_ids"] == item["client_ids"] == []


@pytest.mark.postgres
def test_type_change_waits_for_an_assignment_being_inserted_then_refuses(org) -> None:  # type: ignore[no-untyped-def]
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
def test_concurrent_creates_of_one_name_give_one_201_and_one_409(api, attempt) -> None:  # type: ignore[no-untyped-def]
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
