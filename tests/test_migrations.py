"""Migrations: one head; downgrade to base and back up; models and migrations agree."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    Uuid,
    bindparam,
    column,
    create_engine,
    insert,
    select,
    table,
    text,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from certifications.assignments.models import AssignmentCycle
from certifications.history.models import ExemptionPeriod, RequirementPeriod
from infra import migrate


def test_single_head(settings):
    script = ScriptDirectory.from_config(migrate.alembic_config(settings))
    assert len(script.get_heads()) == 1


# SQLite cannot reflect the expression index on lower(name); PostgreSQL compares it.
@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")
@pytest.mark.filterwarnings("ignore:autogenerate skipping metadata-specified expression-based")
def test_downgrade_base_upgrade_head_and_check(fresh):
    _, s = fresh
    migrate.upgrade(s)
    migrate.downgrade(s, "base")
    migrate.upgrade(s)
    command.check(migrate.alembic_config(s))  # raises if models drifted from migrations


def test_0009_keeps_one_copy_of_each_cycle_recorded_twice(fresh):
    """Lost renewals left several rows for one closed cycle; 0009 keeps the one closed last.

    Two organizations: on PostgreSQL the clean-up must reach every org through RLS.
    """
    backend, s = fresh
    migrate.upgrade(s, "0008")
    engine = create_engine(backend.owner_url)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    kept: dict[tuple[uuid.UUID, uuid.UUID], set[tuple[int, datetime]]] = {}
    try:
        for _ in range(2):
            org, assignment_id = uuid.uuid4(), uuid.uuid4()
            with Session(engine) as session:
                # The tables as of 0008: columns later migrations add are not named.
                cert_id = uuid.uuid4()
                _insert_org(session, org)
                _insert(
                    session,
                    "certifications",
                    org_id=org,
                    id=cert_id,
                    name="Crane",
                    type="employee",
                    notification_rules=[],
                    task_rules=[],
                )
                _insert(
                    session,
                    "assignments",
                    org_id=org,
                    id=assignment_id,
                    certification_id=cert_id,
                    subject_type="employee",
                    subject_id=uuid.uuid4(),
                    cycle=4,
                )
                # cycle 1 once, cycle 2 three times, cycle 3 twice
                for cycle, minutes in ((1, 0), (2, 5), (2, 7), (2, 6), (3, 9), (3, 8)):
                    session.add(
                        AssignmentCycle(
                            org_id=org,
                            assignment_id=assignment_id,
                            cycle=cycle,
                            closed_at=t0 + timedelta(minutes=minutes),
                        )
                    )
                session.commit()
            kept[org, assignment_id] = {
                (1, t0),
                (2, t0 + timedelta(minutes=7)),
                (3, t0 + timedelta(minutes=9)),
            }

        migrate.upgrade(s, "0009")

        for (org, assignment_id), expected in kept.items():
            with Session(engine) as session:
                _as_org(session, org)
                rows = session.execute(
                    select(AssignmentCycle.cycle, AssignmentCycle.closed_at).where(
                        AssignmentCycle.assignment_id == assignment_id
                    )
                ).all()
                assert {(c, closed.astimezone(UTC)) for c, closed in rows} == expected
                session.add(AssignmentCycle(org_id=org, assignment_id=assignment_id, cycle=3))
                with pytest.raises(IntegrityError):
                    session.flush()
        migrate.downgrade(s, "0008")
        migrate.upgrade(s)
    finally:
        engine.dispose()


def test_0015_renames_later_copies_of_names_that_differ_only_by_case(fresh):
    """Roles (per org) and groups (per parent) whose names clash ignoring case keep the oldest
    name; later copies get their id's prefix, so the new unique indexes can be built."""
    backend, s = fresh
    migrate.upgrade(s, "0014")
    engine = create_engine(backend.owner_url)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    orgs = [uuid.uuid4(), uuid.uuid4()]
    try:
        for org in orgs:
            with Session(engine) as session:
                _insert_org(session, org)
                named = {
                    "roles": ("Welder", "WELDER", "Rigger"),
                    "certification_groups": ("Safety", "safety", "Cranes"),
                }
                for table_name, names in named.items():
                    for i, name in enumerate(names):
                        _insert(
                            session,
                            table_name,
                            org_id=org,
                            id=uuid.uuid4(),
                            name=name,
                            created_at=t0 + timedelta(minutes=i),
                        )
                session.commit()
        migrate.upgrade(s)
        for org in orgs:
            with Session(engine) as session:
                _as_org(session, org)
                for table_name, first, later in (
                    ("roles", "Welder", "WELDER ("),
                    ("certification_groups", "Safety", "safety ("),
                ):
                    query = text(
                        f"SELECT name FROM {table_name} WHERE org_id = :o ORDER BY name"
                    ).bindparams(bindparam("o", type_=Uuid()))
                    names = session.scalars(query, {"o": org}).all()
                    assert first in names
                    assert len(names) == 3
                    assert sum(n.startswith(later) for n in names) == 1, names
    finally:
        engine.dispose()


def _insert(session: Session, table_name: str, /, **values: object) -> None:
    """One row naming only `values`' columns (a lightweight table: no model defaults added)."""
    types = {uuid.UUID: Uuid(), list: JSON()}
    columns = [column(k, types.get(type(v))) for k, v in values.items()]
    session.execute(insert(table(table_name, *columns)).values(**values))


def _insert_org(session: Session, org_id: uuid.UUID, /, **later_columns: object) -> None:
    """Act as a new organization and insert its row, naming the columns of the early schema
    (and `later_columns`, those a later revision added)."""
    _as_org(session, org_id)
    _insert(session, "organizations", id=org_id, name="Org", timezone="UTC", modules=[],
            admin_emails=[], **later_columns)  # fmt: skip


def _as_org(session: Session, org_id: uuid.UUID) -> None:
    """The owner is bound by FORCE row-level security too: act as this organization."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT set_config('app.org_id', :org, true)"), {"org": str(org_id)})


def test_downgrade_past_0010_refuses_to_strand_sealed_webhook_secrets(fresh):
    """The code before 0010 would sign with the `fernet:` text itself: refuse, change nothing."""
    backend, s = fresh
    # At 0010 itself: later revisions' downgrades are not what this test is about.
    migrate.upgrade(s, "0010")
    owner = create_engine(backend.owner_url)
    org_id = uuid.uuid4()
    with owner.begin() as conn:
        if backend.is_postgres:  # FORCE row-level security binds the owner too
            conn.execute(text("SELECT set_config('app.org_id', :o, true)"), {"o": str(org_id)})
        conn.execute(
            text(
                "INSERT INTO organizations (id, name, timezone, modules, admin_emails, "
                "webhook_secret, created_at, updated_at) VALUES (:i, 'Sealed', 'UTC', '[]', "
                "'[]', 'fernet:gAAAA', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            ).bindparams(bindparam("i", type_=Uuid())),
            {"i": org_id},
        )
    try:
        with pytest.raises(RuntimeError, match="sealed webhook secret"):
            migrate.downgrade(s, "0009")
        with owner.connect() as conn:
            assert conn.scalar(text("SELECT version_num FROM alembic_version")) == "0010"
    finally:
        owner.dispose()


def test_0022_backfills_requirement_and_exemption_periods(fresh):
    """Current assignments get an open period from their creation day (required as they are),
    a revoked one superseded since a period ending when its successor came; exempt ones an
    open exemption period. Two organizations: on PostgreSQL the backfill must pass RLS."""
    backend, s = fresh
    migrate.upgrade(s, "0015")
    engine = create_engine(backend.owner_url)
    t0 = datetime(2026, 1, 10, 12, tzinfo=UTC)
    made: dict[uuid.UUID, dict[str, uuid.UUID]] = {}
    try:
        for _ in range(2):
            org, cert, subject = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
            ids = {"old": uuid.uuid4(), "new": uuid.uuid4(), "unrequired": uuid.uuid4()}
            with Session(engine) as session:
                _insert_org(session, org, reviewer_emails=[])
                _insert(session, "certifications", org_id=org, id=cert, name="Crane",
                        type="employee", notification_rules=[], task_rules=[])  # fmt: skip
                rows = [
                    ("old", subject, t0, t0 + timedelta(days=5), True, None),
                    ("new", subject, t0 + timedelta(days=9), None, True, t0),
                    ("unrequired", uuid.uuid4(), t0, None, False, None),
                ]
                for key, subj, created, revoked, required, exempt_at in rows:
                    _insert(session, "assignments", org_id=org, id=ids[key],
                            certification_id=cert, subject_type="employee",
                            subject_id=subj, required=required, created_at=created,
                            updated_at=created, revoked_at=revoked,
                            revoked_reason="r" if revoked else None,
                            exempt_at=exempt_at,
                            exempt_reason="leave" if exempt_at else None)  # fmt: skip
                session.commit()
            made[org] = ids
        migrate.upgrade(s, "0022")
        for org, ids in made.items():
            with Session(engine) as session:
                _as_org(session, org)
                p, x = RequirementPeriod, ExemptionPeriod
                periods = {
                    r.assignment_id: (r.required, r.starts_on, r.ends_on)
                    for r in session.execute(
                        select(p.assignment_id, p.required, p.starts_on, p.ends_on).where(
                            p.org_id == org
                        )
                    )
                }
                exempt = session.execute(
                    select(x.assignment_id, x.reason, x.starts_on).where(x.org_id == org)
                ).all()
            assert periods == {
                ids["old"]: (True, date(2026, 1, 10), date(2026, 1, 19)),
                ids["new"]: (True, date(2026, 1, 19), None),
                ids["unrequired"]: (False, date(2026, 1, 10), None),
            }
            assert [tuple(r) for r in exempt] == [(ids["new"], "leave", date(2026, 1, 10))]
        migrate.downgrade(s, "0015")
        migrate.upgrade(s)
    finally:
        engine.dispose()


def test_0024_moves_open_periods_onto_their_assignments_and_back(fresh):
    """Upgrade: an existing assignment's open period becomes its `counted_since` /
    `counted_required` (the row is deleted); closed periods and open ones of deleted assignments
    stay. Downgrade: the columns become open periods again. Two organizations: on PostgreSQL
    the move must pass RLS."""
    backend, s = fresh
    migrate.upgrade(s, "0023")
    engine = create_engine(backend.owner_url)
    t0 = datetime(2026, 1, 10, 12, tzinfo=UTC)
    made: dict[uuid.UUID, dict[str, uuid.UUID]] = {}
    jan, feb, mar = date(2026, 1, 10), date(2026, 2, 1), date(2026, 3, 1)
    try:
        for _ in range(2):
            org, cert = uuid.uuid4(), uuid.uuid4()
            ids = {k: uuid.uuid4() for k in ("counts", "not_counted", "deleted")}
            with Session(engine) as session:
                _insert_org(session, org, reviewer_emails=[])
                _insert(session, "certifications", org_id=org, id=cert, name="Crane",
                        type="employee", notification_rules=[], task_rules=[])  # fmt: skip
                for key in ("counts", "not_counted"):
                    _insert(session, "assignments", org_id=org, id=ids[key],
                            certification_id=cert, subject_type="employee",
                            subject_id=uuid.uuid4(), required=True, created_at=t0,
                            updated_at=t0)  # fmt: skip
                periods = [
                    ("counts", True, jan, feb),
                    ("counts", False, feb, None),
                    ("not_counted", True, jan, mar),
                    ("deleted", True, jan, None),
                ]
                for key, required, starts, ends in periods:
                    _insert(session, "requirement_periods", org_id=org, id=uuid.uuid4(),
                            assignment_id=ids[key], certification_id=cert,
                            subject_type="employee", subject_id=uuid.uuid4(),
                            required=required, starts_on=starts, ends_on=ends)  # fmt: skip
                session.commit()
            made[org] = ids
        migrate.upgrade(s, "0024")
        for org, ids in made.items():
            assert _open_on_rows(engine, org) == {
                ids["counts"]: (feb, False),
                ids["not_counted"]: (None, None),
            }
            assert _period_rows(engine, org) == {
                (ids["counts"], True, jan, feb),
                (ids["not_counted"], True, jan, mar),
                (ids["deleted"], True, jan, None),
            }
        migrate.downgrade(s, "0023")
        for org, ids in made.items():
            assert _period_rows(engine, org) == {
                (ids["counts"], True, jan, feb),
                (ids["counts"], False, feb, None),
                (ids["not_counted"], True, jan, mar),
                (ids["deleted"], True, jan, None),
            }
        migrate.upgrade(s)
    finally:
        engine.dispose()


def _open_on_rows(engine: Any, org: uuid.UUID) -> dict[uuid.UUID, tuple[Any, Any]]:
    a = table("assignments", column("org_id", Uuid()), column("id", Uuid()),
              column("counted_since", Date()), column("counted_required", Boolean()))  # fmt: skip
    with Session(engine) as session:
        _as_org(session, org)
        rows = session.execute(
            select(a.c.id, a.c.counted_since, a.c.counted_required).where(a.c.org_id == org)
        )
        return {r[0]: (r[1], r[2]) for r in rows}


def _period_rows(engine: Any, org: uuid.UUID) -> set[tuple[Any, ...]]:
    p = RequirementPeriod
    with Session(engine) as session:
        _as_org(session, org)
        rows = session.execute(
            select(p.assignment_id, p.required, p.starts_on, p.ends_on).where(p.org_id == org)
        )
        return {tuple(r) for r in rows}
