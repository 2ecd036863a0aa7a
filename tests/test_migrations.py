"""Migrations: one head; downgrade to base and back up; models and migrations agree."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import (
    JSON,
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
from tests.support.backend import create_backend, drop_backend


def test_single_head(settings):
    script = ScriptDirectory.from_config(migrate.alembic_config(settings))
    assert len(script.get_heads()) == 1


# SQLite cannot reflect the expression index on lower(name); PostgreSQL compares it.
@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")
@pytest.mark.filterwarnings("ignore:autogenerate skipping metadata-specified expression-based")
def test_downgrade_base_upgrade_head_and_check(settings):
    backend = create_backend()
    try:
        s = dataclasses.replace(
            settings,
            migration_database_url=backend.owner_url,
            database_url=backend.app_url,
            db_app_role=backend.app_role,
        )
        migrate.upgrade(s)
        migrate.downgrade(s, "base")
        migrate.upgrade(s)
        command.check(migrate.alembic_config(s))  # raises if models drifted from migrations
    finally:
        drop_backend(backend)


def test_0009_keeps_one_copy_of_each_cycle_recorded_twice(settings):
    """Lost renewals left several rows for one closed cycle; 0009 keeps the one closed last.

    Two organizations: on PostgreSQL the clean-up must reach every org through RLS.
    """
    backend = create_backend()
    try:
        s = dataclasses.replace(
            settings,
            migration_database_url=backend.owner_url,
            database_url=backend.app_url,
            db_app_role=backend.app_role,
        )
        migrate.upgrade(s, "0008")
        engine = create_engine(backend.owner_url)
        t0 = datetime(2026, 1, 1, tzinfo=UTC)
        kept: dict[tuple[uuid.UUID, uuid.UUID], set[tuple[int, datetime]]] = {}
        try:
            for _ in range(2):
                org, assignment_id = uuid.uuid4(), uuid.uuid4()
                with Session(engine) as session:
                    _as_org(session, org)
                    # The tables as of 0008: columns later migrations add are not named.
                    cert_id = uuid.uuid4()
                    _insert(
                        session,
                        "organizations",
                        id=org,
                        name="Org",
                        timezone="UTC",
                        modules=[],
                        admin_emails=[],
                    )
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
    finally:
        drop_backend(backend)


def test_0015_renames_later_copies_of_names_that_differ_only_by_case(settings):
    """Roles (per org) and groups (per parent) whose names clash ignoring case keep the oldest
    name; later copies get their id's prefix, so the new unique indexes can be built."""
    backend = create_backend()
    try:
        s = dataclasses.replace(
            settings,
            migration_database_url=backend.owner_url,
            database_url=backend.app_url,
            db_app_role=backend.app_role,
        )
        migrate.upgrade(s, "0014")
        engine = create_engine(backend.owner_url)
        t0 = datetime(2026, 1, 1, tzinfo=UTC)
        orgs = [uuid.uuid4(), uuid.uuid4()]
        try:
            for org in orgs:
                with Session(engine) as session:
                    _as_org(session, org)
                    _insert(
                        session,
                        "organizations",
                        id=org,
                        name="Org",
                        timezone="UTC",
                        modules=[],
                        admin_emails=[],
                    )
                    for i, name in enumerate(("Welder", "WELDER", "Rigger")):
                        _insert(
                            session,
                            "roles",
                            org_id=org,
                            id=uuid.uuid4(),
                            name=name,
                            created_at=t0 + timedelta(minutes=i),
                        )
                    for i, name in enumerate(("Safety", "safety", "Cranes")):
                        _insert(
                            session,
                            "certification_groups",
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
    finally:
        drop_backend(backend)


def _insert(session: Session, table_name: str, /, **values: object) -> None:
    """One row naming only `values`' columns (a lightweight table: no model defaults added)."""
    types = {uuid.UUID: Uuid(), list: JSON()}
    columns = [column(k, types.get(type(v))) for k, v in values.items()]
    session.execute(insert(table(table_name, *columns)).values(**values))


def _as_org(session: Session, org_id: uuid.UUID) -> None:
    """The owner is bound by FORCE row-level security too: act as this organization."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT set_config('app.org_id', :org, true)"), {"org": str(org_id)})


def test_downgrade_past_0010_refuses_to_strand_sealed_webhook_secrets(settings):
    """The code before 0010 would sign with the `fernet:` text itself: refuse, change nothing."""
    backend = create_backend()
    try:
        s = dataclasses.replace(
            settings,
            migration_database_url=backend.owner_url,
            database_url=backend.app_url,
            db_app_role=backend.app_role,
        )
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
    finally:
        drop_backend(backend)


def test_0022_backfills_requirement_and_exemption_periods(settings):
    """Current assignments get an open period from their creation day (required as they are),
    a revoked one superseded since a period ending when its successor came; exempt ones an
    open exemption period. Two organizations: on PostgreSQL the backfill must pass RLS."""
    backend = create_backend()
    try:
        s = dataclasses.replace(
            settings,
            migration_database_url=backend.owner_url,
            database_url=backend.app_url,
            db_app_role=backend.app_role,
        )
        migrate.upgrade(s, "0015")
        engine = create_engine(backend.owner_url)
        t0 = datetime(2026, 1, 10, 12, tzinfo=UTC)
        made: dict[uuid.UUID, dict[str, uuid.UUID]] = {}
        try:
            for _ in range(2):
                org, cert, subject = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
                ids = {"old": uuid.uuid4(), "new": uuid.uuid4(), "unrequired": uuid.uuid4()}
                with Session(engine) as session:
                    _as_org(session, org)
                    _insert(session, "organizations", id=org, name="Org", timezone="UTC",
                            modules=[], admin_emails=[], reviewer_emails=[])  # fmt: skip
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
    finally:
        drop_backend(backend)
