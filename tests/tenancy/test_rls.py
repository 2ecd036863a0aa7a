"""PostgreSQL row-level security, as the app role: the database wall holds on its own."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import ProgrammingError

from certifications.directory.models import Role
from tenancy import scoping as tenant_session

pytestmark = pytest.mark.postgres

# Raw SQL that the session guard (tenancy.scoping) would refuse: these tests prove RLS alone.
RAW = {"all_tenants": True}


@pytest.fixture
def two_orgs(make_org, as_tenant):
    a, b = make_org(), make_org()
    for org in (a, b):
        with as_tenant(org.id) as s:
            s.add(Role(name=f"role of {org.name}"))
            s.commit()
    return a, b


def test_raw_sql_sees_only_current_org(two_orgs, as_tenant):
    a, b = two_orgs
    with as_tenant(a.id) as s:
        orgs = (
            s.execute(text("SELECT DISTINCT org_id FROM roles"), execution_options=RAW)
            .scalars()
            .all()
        )
        assert orgs == [a.id]


def test_raw_sql_without_orm_filter(two_orgs, as_tenant, monkeypatch):
    a, _b = two_orgs
    monkeypatch.setattr(tenant_session, "ORM_FILTER_ENABLED", False)
    with as_tenant(a.id) as s:
        names = s.scalars(text("SELECT name FROM roles"), execution_options=RAW).all()
    assert names == [f"role of {a.name}"]


def test_insert_with_other_org_id_refused(two_orgs, as_tenant):
    a, b = two_orgs
    with as_tenant(a.id) as s, pytest.raises(ProgrammingError, match="row-level security"):
        s.execute(
            text("INSERT INTO roles (org_id, id, name) VALUES (:o, :i, 'x')"),
            {"o": b.id, "i": uuid.uuid4()},
            execution_options=RAW,
        )


def test_update_cannot_move_row_to_other_org(two_orgs, as_tenant):
    a, b = two_orgs
    with as_tenant(a.id) as s, pytest.raises(ProgrammingError, match="row-level security"):
        s.execute(text("UPDATE roles SET org_id = :o"), {"o": b.id}, execution_options=RAW)


def test_no_tenant_sees_no_rows(two_orgs, backend):
    engine = create_engine(backend.app_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM roles")).scalar() == 0
    engine.dispose()


def test_every_org_table_has_forced_rls(backend):
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


# --- the platform flag is not the app role's to set -------------------------------------------


@pytest.fixture
def platform_rows(two_orgs, as_tenant):
    """An outbox row and a recompute_state row for each org (rows the relay never picks up)."""
    from datetime import date

    from certifications.assignments.schedule import mark_recomputed
    from infra import database as db
    from jobs.models import OutboxMessage

    for org in two_orgs:
        with as_tenant(org.id) as s:
            s.add(OutboxMessage(org_id=org.id, actor_name="rls_probe", payload={}, status="failed"))
            mark_recomputed(s, org.id, date(2026, 1, 1), db.utcnow(), 0)
            s.commit()
    return two_orgs


def _as_app_role(backend, org_id, statements):
    """Run `statements` on the app's own role, tenant `org_id`, in one transaction."""
    engine = create_engine(backend.app_url)
    try:
        with engine.connect() as conn:
            assert conn.scalar(text("SELECT current_user")) == backend.app_role
            conn.execute(text("SELECT set_config('app.org_id', :o, true)"), {"o": str(org_id)})
            return [conn.execute(text(sql)).all() for sql in statements]
    finally:
        engine.dispose()


@pytest.mark.parametrize("flag", ["on", "true", "1", "platform"])
def test_app_role_cannot_turn_platform_on(platform_rows, backend, flag):
    """Any app connection could `set_config('app.platform', 'on')` and read every tenant's
    outbox and tick state, and every organization (no RLS on organizations at all)."""
    a, _b = platform_rows
    _flag, outbox, states, orgs = _as_app_role(
        backend,
        a.id,
        [
            f"SELECT set_config('app.platform', '{flag}', true)",
            "SELECT DISTINCT org_id FROM outbox WHERE actor_name = 'rls_probe'",
            "SELECT org_id FROM recompute_state",
            "SELECT id FROM organizations",
        ],
    )
    assert [r[0] for r in outbox] == [a.id]
    assert [r[0] for r in states] == [a.id]
    assert [r[0] for r in orgs] == [a.id]


def test_app_role_without_tenant_sees_no_organization(two_orgs, backend):
    engine = create_engine(backend.app_url)
    try:
        with engine.connect() as conn:
            assert conn.scalar(text("SELECT count(*) FROM organizations")) == 0
            conn.execute(text("SELECT set_config('app.platform', 'on', true)"))
            assert conn.scalar(text("SELECT count(*) FROM organizations")) == 0
    finally:
        engine.dispose()


def test_app_role_cannot_write_another_organization(two_orgs, backend):
    a, b = two_orgs
    engine = create_engine(backend.app_url)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT set_config('app.org_id', :o, true)"), {"o": str(a.id)})
            conn.execute(text("SELECT set_config('app.platform', 'on', true)"))
            changed = conn.execute(
                text("UPDATE organizations SET name = 'taken' WHERE id = :b"), {"b": b.id}
            )
            assert changed.rowcount == 0
            with pytest.raises(ProgrammingError, match="row-level security"):
                conn.execute(
                    text(
                        "INSERT INTO organizations (id, name, timezone, modules, admin_emails) "
                        "VALUES (:i, 'rogue', 'UTC', '[]', '[]')"
                    ),
                    {"i": uuid.uuid4()},
                )
    finally:
        engine.dispose()


def test_platform_context_still_sees_every_org(platform_rows):
    """The app's own platform work (relay, scheduler, org creation) keeps working."""
    from infra import context
    from infra import database as db

    a, b = platform_rows
    with context.platform(), db.new_session() as s:
        outbox = s.scalars(
            text("SELECT DISTINCT org_id FROM outbox WHERE actor_name = 'rls_probe'")
        ).all()
        orgs = s.scalars(text("SELECT id FROM organizations")).all()
    assert {a.id, b.id} <= set(outbox)
    assert {a.id, b.id} <= set(orgs)


def test_organizations_rls_is_forced(backend):
    engine = create_engine(backend.app_url)
    try:
        with engine.connect() as conn:
            row = conn.execute(
                text(
                    "SELECT relrowsecurity, relforcerowsecurity FROM pg_class "
                    "WHERE oid = 'public.organizations'::regclass"
                )
            ).one()
    finally:
        engine.dispose()
    assert tuple(row) == (True, True)


# --- audit events are append-only for the app ------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    ["UPDATE audit_events SET action = 'forged'", "DELETE FROM audit_events"],
)
def test_audit_events_are_append_only_for_the_app_role(api, org, as_tenant, statement):
    assert api.patch("/org", json={"name": "Audited"}).status_code == 200
    with as_tenant(org.id) as s:
        assert s.scalar(text("SELECT count(*) FROM audit_events"), execution_options=RAW) >= 1
        with pytest.raises(ProgrammingError, match="permission denied"):
            s.execute(text(statement), execution_options=RAW)


def test_readyz_fails_on_a_platform_key_the_database_does_not_accept(api, runtime, monkeypatch):
    """Keys changed without `certs db upgrade`: platform work would silently see nothing."""
    from infra import database as db
    from tenancy.scoping import install_tenant_scoping

    factory = db.session_factory(runtime.engine)
    install_tenant_scoping(factory, "x" * 40)
    monkeypatch.setattr(db.registry, "factory", factory)
    resp = api.get("/readyz")
    assert resp.status_code == 503
    assert "DB_PLATFORM_KEYS" in resp.get_json()["checks"]["platform_key"]
