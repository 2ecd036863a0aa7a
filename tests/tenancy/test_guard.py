"""The session guard: a statement on a tenant table runs scoped or not at all (both backends).

On SQLite there is no row-level security: the session's tenant criteria and this guard are the
whole wall. Every set-based domain operation, run as one organization, leaves another one's rows
exactly as they were.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import delete, func, insert, literal, select, text, update
from sqlalchemy.orm import join

from certifications.assignments import fanout, recompute
from certifications.assignments.models import Assignment
from certifications.automation import delivery, pipeline
from certifications.automation.models import Notification
from certifications.catalog import groups
from certifications.catalog.models import Certification
from certifications.directory.models import Employee, Role
from certifications.reporting.compliance import certification_stats
from certifications.tables import metadata
from tenancy.scoping import (
    TenantMismatch,
    UnscopedStatement,
    prebuilt_tenant_statement,
    run_prebuilt,
    run_scoped,
    tenant_statement,
    tenant_tables,
    unscoped_tables,
)

ROLES = Role.__table__
EMPLOYEES = Employee.__table__
ASSIGNMENTS = Assignment.__table__
NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
TODAY = date(2026, 6, 1)
ALL = {"all_tenants": True}


@pytest.fixture
def two_orgs(make_org, as_tenant):
    a, b = make_org(), make_org()
    for org, names in ((a, ["Welder", "Driver"]), (b, ["Secret role"])):
        with as_tenant(org.id) as s:
            s.add_all([Role(name=n) for n in names])
            s.commit()
    return a, b


# --- statements the criteria cannot reach are refused ---------------------------------------


@pytest.mark.parametrize(
    "statement",
    [
        pytest.param(lambda: select(ROLES.c.name), id="core-select"),
        pytest.param(lambda: select(func.count()).select_from(ROLES), id="core-count"),
        pytest.param(lambda: update(ROLES).values(active=False), id="core-update"),
        pytest.param(lambda: delete(ROLES), id="core-delete"),
        pytest.param(lambda: select(ROLES.alias().c.name), id="core-alias"),
        pytest.param(lambda: select(select(ROLES.c.id).cte("c").c.id), id="core-cte"),
        pytest.param(lambda: select(Role.name).where(Role.id.in_(select(ROLES.c.id))), id="sub"),
        pytest.param(lambda: text("SELECT name FROM roles"), id="text"),
        pytest.param(
            lambda: select(Employee.id).select_from(join(Employee, Role)), id="prebuilt-join"
        ),
        pytest.param(
            lambda: update(Employee).where(Employee.role_id == Role.id).values(active=False),
            id="update-from-second-table",
        ),
        pytest.param(
            lambda: insert(Role).from_select(
                ["org_id", "id", "name"], select(ROLES.c.org_id, ROLES.c.id, ROLES.c.name)
            ),
            id="insert-select-core",
        ),
    ],
)
def test_unscoped_statement_is_refused(two_orgs, as_tenant, statement):
    a, b = two_orgs
    with as_tenant(a.id) as s:
        with pytest.raises(UnscopedStatement, match="roles"):
            s.execute(statement())
        s.rollback()
    with as_tenant(b.id) as s:  # nothing ran: the other org's row is untouched
        assert s.execute(select(Role.name, Role.active)).all() == [("Secret role", True)]


def test_the_same_statements_through_the_helper_see_only_the_tenant(two_orgs, as_tenant):
    a, b = two_orgs
    with as_tenant(a.id) as s:
        names = s.scalars(tenant_statement(select(ROLES.c.name), ROLES)).all()
        assert sorted(names) == ["Driver", "Welder"]
        count = s.scalar(tenant_statement(select(func.count()).select_from(ROLES), ROLES))
        assert count == 2
        changed = s.execute(tenant_statement(update(ROLES).values(active=False), ROLES))
        assert changed.rowcount == 2
        s.commit()
    with as_tenant(b.id) as s:
        assert s.execute(select(Role.name, Role.active)).all() == [("Secret role", True)]


def test_the_helper_scopes_only_its_own_level(two_orgs, as_tenant):
    """A raw subquery inside a statement the helper scoped is still checked on its own."""
    a, _b = two_orgs
    with as_tenant(a.id) as s:
        outer = tenant_statement(
            select(ROLES.c.name).where(ROLES.c.id.in_(select(ROLES.c.id))), ROLES
        )
        with pytest.raises(UnscopedStatement):
            s.execute(outer)


def test_the_helper_needs_a_tenant(two_orgs):
    with pytest.raises(UnscopedStatement):
        tenant_statement(select(ROLES.c.name), ROLES)


# --- prebuilt statements (run on the connection: no criteria) -------------------------------


@pytest.mark.parametrize(
    "statement",
    [
        # Mapped classes are no cover here: the connection applies no criteria.
        pytest.param(lambda: select(Role.name), id="mapped-select"),
        pytest.param(
            lambda: select(Employee.name).where(Employee.role_id.in_(select(Role.id))),
            id="mapped-subquery",
        ),
        pytest.param(lambda: select(Employee.name).join(Role), id="mapped-join"),
    ],
)
def test_a_prebuilt_statement_must_scope_every_table_it_reads(statement):
    with pytest.raises(UnscopedStatement, match="roles"):
        prebuilt_tenant_statement(statement(), Employee)


def test_a_prebuilt_statement_runs_as_the_current_tenant_only(two_orgs, as_tenant):
    a, b = two_orgs
    held = prebuilt_tenant_statement(select(Role.id).where(Role.name != ""), Role)
    stmt = prebuilt_tenant_statement(select(Role.name).where(Role.id.in_(held)), Role)
    with as_tenant(a.id) as s:
        assert sorted(run_prebuilt(s, stmt, {}).scalars()) == ["Driver", "Welder"]
        # The tenant is the context's: a parameter cannot name another organization.
        assert sorted(run_prebuilt(s, stmt, {"org_id": b.id}).scalars()) == ["Driver", "Welder"]
    with as_tenant(b.id) as s:
        assert list(run_prebuilt(s, stmt, {}).scalars()) == ["Secret role"]


def test_a_prebuilt_statement_needs_a_tenant(two_orgs):
    from infra import database as db

    stmt = prebuilt_tenant_statement(select(Role.name), Role)
    with db.new_session() as s, pytest.raises(UnscopedStatement):
        run_prebuilt(s, stmt, {})


def test_run_scoped_gives_core_rows_under_the_sessions_criteria_and_guard(two_orgs, as_tenant):
    a, b = two_orgs
    stmt = select(Role.name).where(Role.id.in_(select(Role.id))).order_by(Role.name)
    with as_tenant(a.id) as s:
        assert [r.name for r in run_scoped(s, stmt)] == ["Driver", "Welder"]
        with pytest.raises(UnscopedStatement, match="roles"):
            run_scoped(s, select(ROLES.c.name))  # a bare table: the criteria cannot reach it
    with as_tenant(b.id) as s:
        assert list(run_scoped(s, stmt).scalars()) == ["Secret role"]


def test_mapped_statements_of_every_kind_pass_and_are_scoped(two_orgs, as_tenant):
    a, b = two_orgs
    with as_tenant(a.id) as s:
        cte = select(Role.id, Role.name).cte("r")
        assert sorted(s.scalars(select(cte.c.name)).all()) == ["Driver", "Welder"]
        assert s.scalar(select(func.count()).select_from(Role)) == 2
        sub = select(Role.id).where(Role.name == "Welder").scalar_subquery()
        s.execute(update(Role).where(Role.id == sub).values(active=False))
        s.commit()
    with as_tenant(b.id) as s:
        assert s.execute(select(Role.name, Role.active)).all() == [("Secret role", True)]


def test_all_tenants_is_the_explicit_opt_out(two_orgs, as_tenant):
    a, _b = two_orgs
    with as_tenant(a.id) as s:
        rows = s.execute(text("SELECT count(*) FROM roles"), execution_options=ALL).scalar()
        assert rows >= 3 or s.get_bind().dialect.name == "postgresql"  # RLS still binds there


def test_insert_naming_another_org_is_refused(two_orgs, as_tenant):
    a, b = two_orgs
    with as_tenant(a.id) as s:
        with pytest.raises(TenantMismatch):
            s.execute(insert(ROLES), [{"org_id": b.id, "id": uuid.uuid4(), "name": "Intruder"}])
        s.rollback()
        with pytest.raises(TenantMismatch):
            s.execute(insert(Role).values(org_id=b.id, id=uuid.uuid4(), name="Intruder"))
        s.rollback()
        rows = [{"org_id": o, "id": uuid.uuid4(), "name": "Intruder"} for o in (a.id, b.id)]
        with pytest.raises(TenantMismatch):
            s.execute(insert(ROLES).values(rows))
        s.rollback()
        source = select(literal(b.id), Role.id, Role.name)
        with pytest.raises(UnscopedStatement):
            s.execute(insert(Role).from_select(["org_id", "id", "name"], source))


def test_insert_of_the_tenants_rows_passes(two_orgs, as_tenant):
    a, _b = two_orgs
    with as_tenant(a.id) as s:
        s.execute(insert(ROLES), [{"org_id": a.id, "id": uuid.uuid4(), "name": "Rigger"}])
        assert s.scalar(select(func.count()).select_from(Role)) == 3


def test_every_table_of_a_tenant_entity_is_guarded():
    with_org = {t.name for t in metadata.tables.values() if "org_id" in t.c}
    platform = {"outbox", "recompute_state"}  # read across orgs by the relay and the scheduler
    assert tenant_tables() == with_org - platform


def test_the_guard_reads_statements_as_the_criteria_does():
    assert (
        unscoped_tables(select(Assignment.id).where(Assignment.subject_id.in_(select(Employee.id))))
        == set()
    )
    assert unscoped_tables(select(Assignment).where(ASSIGNMENTS.c.id == uuid.uuid4())) == set()
    assert unscoped_tables(
        select(Assignment.id).where(Assignment.subject_id.in_(select(EMPLOYEES.c.id)))
    ) == {"employees"}


# --- every set-based domain operation touches only its own tenant ---------------------------


def _seed(make_role, make_employee, make_certification, make_group, make_assignment, org):
    role = make_role(org)
    staff = [make_employee(org, role_id=role.id) for _ in range(3)]
    top = make_group(org)
    sub = make_group(org, parent_id=top.id)
    cert = make_certification(
        org,
        validity_months=12,
        warning_days=30,
        role_ids=[role.id],
        group_ids=[sub.id],
        notification_rules=[
            {"trigger": "before_expiry", "days": 30, "recipients": ["holder", "admins"]}
        ],
        task_rules=[{"days_before_expiry": 30, "assignee": "holder"}],
    )
    # Stored as valid, expiring within the warning window: the recompute has work to do.
    make_assignment(
        cert, staff[0], expires_on=TODAY + timedelta(days=5), expires_explicit=True, status="valid"
    )
    return {"role": role, "staff": staff, "top": top, "sub": sub, "cert": cert}


def _snapshot(s, org_id) -> dict[str, list[Any]]:
    rows = {}
    for name in sorted(tenant_tables()):
        table = metadata.tables[name]
        stmt = select(table).where(table.c.org_id == org_id)
        rows[name] = sorted(map(repr, s.execute(stmt, execution_options=ALL).all()))
    return rows


def test_set_based_domain_operations_leave_other_orgs_alone(
    make_org, make_role, make_employee, make_certification, make_group, make_assignment, as_tenant
):
    a, b = make_org(admin_emails=["a@example.test"]), make_org(admin_emails=["b@example.test"])
    seeds = {
        org.id: _seed(
            make_role, make_employee, make_certification, make_group, make_assignment, org
        )
        for org in (a, b)
    }
    with as_tenant(b.id) as s:
        before = _snapshot(s, b.id)
    mine = seeds[a.id]
    with as_tenant(a.id) as s:
        fanout.fanout_certification(s, a.id, mine["cert"].id, today=TODAY, now=NOW)
        fanout.fanout_employees(s, a.id, [e.id for e in mine["staff"]], today=TODAY, now=NOW)
        s.execute(update(Employee).where(Employee.id == mine["staff"][1].id).values(active=False))
        fanout.fanout_employees(s, a.id, [mine["staff"][1].id], today=TODAY, now=NOW)
        changed = recompute.recompute_certification(s, a.id, mine["cert"].id, NOW)["changed"]
        changed += recompute.recompute_org(s, a.id, NOW)["changed"]
        evaluated = pipeline.evaluate_org(s, a.id, NOW, "UTC")
        queued = pipeline.enqueue_deliveries(s, NOW)
        note = s.scalars(select(Notification.id).limit(1)).first()
        out = delivery.claim(s, note, NOW) if note else None
        if out is not None:
            delivery.mark_sent(s, out, "email", NOW)
        tree = groups.tree(s)
        above = groups.ancestors_of(s, mine["sub"].id)
        below = set(s.scalars(groups.subtree_ids(mine["top"].id)))
        height = groups.subtree_height(s, mine["top"].id)
        stats = certification_stats(s)
        s.flush()
        # The operations did their work in org A...
        assert (changed, evaluated["tasks"]["created"], queued, bool(out)) == (1, 1, 2, True)
        assert [node["id"] for node in tree] == [str(mine["top"].id)]
        assert above == below == {mine["top"].id, mine["sub"].id}
        assert height == 2
        assert set(stats) == {mine["cert"].id}
        # ...and org B is exactly as it was, read in the same transaction (on PostgreSQL its
        # RLS policies are pointed at B first), which is then rolled back: nothing is queued.
        if s.get_bind().dialect.name == "postgresql":
            s.execute(text("SELECT set_config('app.org_id', :o, true)"), {"o": str(b.id)})
        assert _snapshot(s, b.id) == before
        s.rollback()


def test_domain_reads_never_see_other_orgs(
    make_org, make_role, make_employee, make_certification, make_group, make_assignment, as_tenant
):
    a, b = make_org(), make_org()
    theirs = _seed(make_role, make_employee, make_certification, make_group, make_assignment, b)
    with as_tenant(a.id) as s:
        assert groups.tree(s) == []
        assert groups.ancestors_of(s, theirs["sub"].id) == set()
        assert groups.subtree_height(s, theirs["top"].id) == 0
        assert certification_stats(s) == {}
        assert fanout.count_role_members(s, a.id, theirs["cert"].id, TODAY) == 0
        assert s.scalar(select(func.count()).select_from(Certification)) == 0


def test_a_verdict_is_kept_per_shape_and_mark(two_orgs, as_tenant):
    """The same SQL vouched for once by `tenant_statement` is still refused without it."""
    a, _b = two_orgs
    sql = "SELECT count(*) FROM roles"
    with as_tenant(a.id) as s:
        assert s.scalar(tenant_statement(text(sql))) >= 2
        with pytest.raises(UnscopedStatement):
            s.scalar(text(sql))
