"""Migration 0019 turns each certification's notification_rules into its reminder plan, in
place, one org at a time (RLS on PostgreSQL), and its downgrade turns the plan back."""

from __future__ import annotations

import json
import uuid

from sqlalchemy import Uuid, bindparam, create_engine, text
from sqlalchemy.orm import Session

from infra import migrate
from tests.test_migrations import _as_org, _insert, _insert_org

RULES = [
    {"trigger": "before_expiry", "days": 30, "recipients": ["holder"], "channels": ["email"]},
    {"trigger": "expired", "recipients": ["admins"], "channels": ["email", "webhook"]},
]
PLAN = {
    "stages": [
        {
            "offset_days": -30,
            "recipients": ["holder"],
            "channels": ["email"],
            "repeat_every_days": None,
            "max_repeats": 0,
        },
        {
            "event": "expired",
            "offset_days": 0,
            "recipients": ["admins"],
            "channels": ["email", "webhook"],
            "repeat_every_days": None,
            "max_repeats": 0,
        },
    ],
    "stop_when": "renewed",
}


def _json(value: object) -> object:
    return json.loads(value) if isinstance(value, str) else value


def _read(engine, org: uuid.UUID, column: str) -> object:
    with Session(engine) as session:
        _as_org(session, org)
        stmt = text(f"SELECT {column} FROM certifications WHERE org_id = :o")  # noqa: S608 - fixed
        value = session.execute(stmt.bindparams(bindparam("o", type_=Uuid())), {"o": org})
        return _json(value.scalar_one())


def test_0019_moves_rules_into_plans_and_back(fresh):
    backend, s = fresh
    migrate.upgrade(s, "0015")
    engine = create_engine(backend.owner_url)
    orgs = [uuid.uuid4(), uuid.uuid4()]
    try:
        for org in orgs:
            with Session(engine) as session:
                _insert_org(session, org)
                _insert(
                    session,
                    "certifications",
                    org_id=org,
                    id=uuid.uuid4(),
                    name="Crane",
                    type="employee",
                    notification_rules=RULES,
                    task_rules=[],
                )
                session.commit()
        migrate.upgrade(s, "0019")
        for org in orgs:  # every org reached through row-level security
            assert _read(engine, org, "reminder_plan") == PLAN
        # A plan edited after the upgrade: the downgrade keeps what a rule can say.
        with Session(engine) as session:
            _as_org(session, orgs[0])
            daily = {**PLAN["stages"][0], "offset_days": -7, "repeat_every_days": 1}
            plan = {**PLAN, "stages": [*PLAN["stages"], {**daily, "max_repeats": 3}]}
            value = "CAST(:p AS JSON)" if engine.dialect.name == "postgresql" else ":p"
            session.execute(
                text(f"UPDATE certifications SET reminder_plan = {value}"),  # noqa: S608 - fixed
                {"p": json.dumps(plan)},
            )
            session.commit()
        migrate.downgrade(s, "0015")
        for org in orgs:
            assert _read(engine, org, "notification_rules") == RULES
    finally:
        engine.dispose()
