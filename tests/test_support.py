"""The suite's own machinery: what the shared fixtures count, build and refuse."""

from __future__ import annotations

import threading
from types import SimpleNamespace

from sqlalchemy import select, text

from certifications.assignments.models import Assignment
from certifications.catalog.models import CertificationRole
from infra import context
from infra import database as db
from tests.security import support
from tests.support import factories
from tests.support.collection import nondeterministic_ids


def _select_one() -> None:
    with context.platform(), db.new_session() as s:
        s.execute(text("SELECT 1"))


def test_count_queries_counts_this_threads_statements_only(count_queries) -> None:  # type: ignore[no-untyped-def]
    with count_queries() as q:
        _select_one()
        other = threading.Thread(target=_select_one)
        other.start()
        other.join()
    assert q.containing("SELECT 1") == ["SELECT 1"], q
    _select_one()  # after the block: not counted
    assert len(q.containing("SELECT 1")) == 1


def test_count_queries_filters_and_normalises(count_queries) -> None:  # type: ignore[no-untyped-def]
    with count_queries(where=lambda sql: "42" in sql) as q:
        with context.platform(), db.new_session() as s:
            s.execute(text("SELECT\n   42"))
            s.execute(text("SELECT 1"))
    assert q.statements == ["SELECT 42"]
    assert q.verbs == ["SELECT"]
    assert q.starting("select  42") == ["SELECT 42"]
    q.clear()
    assert len(q) == 0


def test_random_looking_test_ids_are_refused() -> None:
    def items(*nodeids: str) -> list[SimpleNamespace]:
        return [SimpleNamespace(nodeid=n) for n in nodeids]

    random = [
        "t.py::test_x[5034af43-cf10-402f-8628-eed7dcb9765e]",
        "t.py::test_x[<object object at 0x7f3a2c1b9e40>]",
        "t.py::test_x[a-0xDEADBEEF00]",
    ]
    stable = [
        "t.py::test_x[None]",
        "t.py::test_x[another org]",
        "t.py::test_x[GET /jobs/{job_id}]",
        "t.py::test_x",
        "t5034af43-cf10-402f-8628-eed7dcb9765e.py::test_x",
    ]
    assert nondeterministic_ids(items(*random, *stable)) == random


def test_factories_make_ordinary_rows_in_the_given_org(  # type: ignore[no-untyped-def]
    org, make_role, make_employee, make_employees, make_certification, make_assignment, as_tenant
):
    role = make_role(org)
    one, other = make_employee(org, role_id=role.id), make_employee(org.id)  # org or its id
    assert one.name != other.name
    assert one.email != other.email
    assert [e.name for e in make_employees(org, 2)] == ["Employee 0", "Employee 1"]
    cert = make_certification(org, role_ids=[role.id])
    assert (cert.type, cert.validity_months, cert.validity_days) == ("employee", None, None)
    recorded = make_assignment(cert, one)
    assert (recorded.status, recorded.issued_on, recorded.effective_on) == (
        "valid",
        factories.ISSUED_ON,
        factories.ISSUED_ON,
    )
    assert make_assignment(cert, other, issued_on=None).status == "missing"
    with as_tenant(org.id) as s:
        assert s.get(Assignment, recorded.id).subject_id == one.id
        assert s.scalars(select(CertificationRole.role_id)).all() == [role.id]


def test_make_world_has_one_row_of_every_kind_in_that_org_only(org, make_org, make_world):  # type: ignore[no-untyped-def]
    world = make_world(org)
    assert list(world) == list(factories.WORLD_KINDS)
    assert {str(i) for i in world.values()} <= support.all_ids(org.id)
    assert not {str(i) for i in world.values()} & support.all_ids(make_org().id)
