"""Bulk upsert is set-based: a bounded number of statements and no ORM objects, at any size."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from certifications.directory.bulk import bulk_upsert, parse_csv
from certifications.directory.models import Employee, Role
from certifications.directory.service import KINDS
from infra.errors import Invalid


def _rows(n: int, role_id: object, prefix: str = "") -> list[tuple[int, dict]]:
    return [
        (i, {"external_id": f"E{i}", "name": f"{prefix}Employee {i}", "role_id": role_id})
        for i in range(n)
    ]


@pytest.mark.parametrize("size", [10, 3000])
def test_statement_count_does_not_grow_per_row(org, as_tenant, count_queries, size):
    with as_tenant(org.id) as s:
        role = Role(name="Welder")
        s.add(role)
        s.commit()
        kind = KINDS["employees"]
        with count_queries() as q:
            report = bulk_upsert(s, kind, _rows(size, role.id), {})
            s.flush()
        assert report["counts"]["created"] == size
        selects = q.verbs.count("SELECT")
        inserts = q.verbs.count("INSERT")
        # references + existing rows (+ the RLS tenant setting on PostgreSQL)
        assert selects <= 3, q
        # the upsert and the employees' role links (each batched by the driver, ~1000 rows a
        # page) + job + outbox row + audit event
        assert inserts <= 3 + 2 * -(-size // 1000), q
        # no ORM object per row: only the job and outbox message live in the session
        assert all(not isinstance(o, Employee) for o in s.identity_map.values())
        s.commit()

        with count_queries() as q:
            report = bulk_upsert(s, kind, _rows(size, role.id, prefix="Renamed "), {})
        assert report["counts"]["updated"] == size
        # + the audit event + the stored employees' roles (one SELECT per 5,000)
        assert len(q) <= 5 + -(-size // 1000), q
        s.commit()
        names = s.scalars(select(Employee.name).order_by(Employee.name).limit(1)).all()
        assert names == ["Renamed Employee 0"]
        assert s.scalar(select(func.count()).select_from(Employee)) == size


def test_unchanged_rows_are_not_written(org, as_tenant, count_queries):
    with as_tenant(org.id) as s:
        kind = KINDS["assets"]
        rows = [(0, {"external_id": "A", "name": "Crane"})]
        bulk_upsert(s, kind, rows, {})
        s.commit()
        with count_queries() as q:
            report = bulk_upsert(s, kind, rows, {})
        assert report["counts"]["unchanged"] == 1
        assert "INSERT" not in q.verbs, q
        assert "UPDATE" not in q.verbs, q


def test_parse_csv() -> None:
    rows = parse_csv(
        'external_id,name,email\r\nE1,"Smith, Ann",\r\nE2,,b@x.io\r\nE3\r\n',
        allowed=["external_id", "name", "email"],
        nullable=["email"],
    )
    assert rows == [
        {"_line": 2, "external_id": "E1", "name": "Smith, Ann", "email": None},
        {"_line": 3, "external_id": "E2", "email": "b@x.io"},
        {"_line": 4, "external_id": "E3", "email": None},
    ]
    with pytest.raises(Invalid) as exc:
        parse_csv("external_id,org_id\n", allowed=["external_id"], nullable=[])
    assert "org_id" in exc.value.errors["csv"]["header"][0]
