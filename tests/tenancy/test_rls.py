"""PostgreSQL row-level security, as the app role: the database wall holds on its own."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import ProgrammingError

from certifications.directory.models import Role
from tenancy import scoping as tenant_session

pytestmark = pytest.mark.postgres


@pytest.fixture
def two_orgs(make_org, as_tenant):  # type: ignore[no-untyped-def]
    a, b = make_org(), make_org()
    for org in (a, b):
        with as_tenant(org.id) as s:
            s.add(Role(name=f"role of {org.name}"))
            s.commit()
    return a, b


def test_raw_sql_sees_only_current_org(two_orgs, as_tenant):  # type: ignore[no-untyped-def]
    a, b = two_orgs
    with as_tenant(a.id) as s:
        orgs = s.execute(text("SELECT DISTINCT org_id FROM roles")).scalars().all()
        assert orgs == [a.id]


def test_raw_sql_without_orm_filter(two_orgs, as_tenant, monkeypatch):  # type: ignore[no-untyped-def]
    a, _b = two_orgs
    monkeypatch.setattr(tenant_session, "ORM_FILTER_ENABLED", False)
    with as_tenant(a.id) as s:
        names = s.scalars(text("SELECT name FROM roles")).all()
    assert names == [f"role of {a.name}"]


def test_insert_with_other_org_id_refused(two_orgs, as_tenant):  # type: ignore[no-untyped-def]
    a, b = two_orgs
    with as_tenant(a.id) as s, pytest.raises(ProgrammingError, match="row-level security"):
        s.execute(
            text("INSERT INTO roles (org_id, id, name) VALUES (:o, :i, 'x')"),
            {"o": b.id, "i": uuid.uuid4()},
        )


def test_update_cannot_move_row_to_other_org(two_orgs, as_tenant):  # type: ignore[no-untyped-def]
    a, b = two_orgs
    with as_tenant(a.id) as s, pytest.raises(ProgrammingError, match="row-level security"):
        s.execute(text("UPDATE roles SET org_id = :o"), {"o": b.id})


def test_no_tenant_sees_no_rows(two_orgs, backend):  # type: ignore[no-untyped-def]
    engine = create_engine(backend.app_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM roles")).scalar() == 0
    engine.dispose()


def test_every_org_table_has_forced_rls(backend):  # type: ignore[no-untyped-def]
    engine = create_engine(backend.app_url)
    with engine.connect() as conn:
        rows = conn.execute(
            text("""
            SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,
                   (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid)
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'org_id'
            WHERE n.nspname = 'public' AND c.relkind = 'r'
        """)
        ).all()
        role = conn.execute(
            text("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
        ).one()
        owners = (
            conn.execute(
                text("SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'")
            )
            .scalars()
            .all()
        )
    engine.dispose()
    assert len(rows) >= 10
    unprotected = [r[0] for r in rows if not (r[1] and r[2] and r[3] >= 1)]
    assert unprotected == []
    assert tuple(role) == (False, False)
    assert backend.app_role not in owners
