"""The ORM session filters every tenant table by the current org, and fails closed."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, update

from certifications.directory.models import Role
from infra import context
from infra import database as db
from tenancy.scoping import TenantMismatch


@pytest.fixture
def two_orgs(make_org, as_tenant):
    a, b = make_org(), make_org()
    for org, names in ((a, ["Welder", "Driver"]), (b, ["Secret role"])):
        with as_tenant(org.id) as s:
            s.add_all([Role(name=n) for n in names])
            s.commit()
    return a, b


def test_orm_reads_only_current_org(two_orgs, as_tenant):
    a, b = two_orgs
    with as_tenant(a.id) as s:
        assert sorted(s.scalars(select(Role.name)).all()) == ["Driver", "Welder"]
        assert s.scalar(select(func.count()).select_from(Role)) == 2
    with as_tenant(b.id) as s:
        assert s.scalars(select(Role.name)).all() == ["Secret role"]


def test_get_of_other_org_row_is_none(two_orgs, as_tenant):
    a, b = two_orgs
    with as_tenant(b.id) as s:
        secret = s.scalars(select(Role)).one()
    with as_tenant(a.id) as s:
        assert s.get(Role, secret.id) is None


def test_bulk_update_is_scoped(two_orgs, as_tenant):
    a, b = two_orgs
    with as_tenant(a.id) as s:
        s.execute(update(Role).values(active=False))
        s.commit()
    with as_tenant(b.id) as s:
        assert s.scalars(select(Role.active)).all() == [True]


def test_no_tenant_sees_nothing(two_orgs):
    with db.new_session() as s:
        assert s.scalars(select(Role)).all() == []
    with context.platform(), db.new_session() as s:
        assert s.scalars(select(Role)).all() == []


def test_insert_for_other_org_refused(two_orgs, as_tenant):
    a, b = two_orgs
    with as_tenant(a.id) as s:
        s.add(Role(name="Intruder", org_id=b.id))
        with pytest.raises(TenantMismatch):
            s.flush()


def test_insert_without_tenant_refused():
    with db.new_session() as s:
        s.add(Role(name="Orphan"))
        with pytest.raises(TenantMismatch):
            s.flush()
