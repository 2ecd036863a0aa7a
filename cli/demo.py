"""`certs demo`: a realistic demo organization whose assignments cover every status.

About 200 employees in 6 roles, assets, clients, job locations, 3 nested certification groups
and 10 certifications with renewal, notification and task rules. Role certifications reach
employees through the real fan-out; dates are then recorded through the assignment service, so
statuses and status events are exactly what the API would have produced. Seeded: the same
directory every time.
"""

from __future__ import annotations

import random
import uuid
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from certifications.assignments import fanout, service
from certifications.assignments.models import Assignment
from certifications.catalog.models import (
    Certification,
    CertificationClient,
    CertificationGroup,
    CertificationGroupMember,
    CertificationRole,
)
from certifications.directory.models import Asset, Client, Employee, Location, Role
from infra import context
from infra import database as db
from tenancy.models import Organization
from tenancy.organizations import create_organization, org_today

DEMO_ORG_NAME = "Demo organization"
DEMO_TIMEZONE = "Europe/London"
DEMO_ACTOR = "demo"

ROLES = {  # role: number of employees
    "Welder": 40,
    "Electrician": 35,
    "Crane operator": 25,
    "Site supervisor": 15,
    "Driver": 45,
    "Office staff": 40,
}
FIRST = ["Ann", "Bo", "Chen", "Dana", "Eli", "Fatima", "Gus", "Hana", "Ivan", "Jo", "Kemal", "Lea"]
LAST = ["Smith", "Okafor", "Garcia", "Nguyen", "Müller", "Rossi", "Kowalski", "Haddad", "Berg"]
FORM = {
    "fields": [
        {"name": "card_number", "label": "Card number", "type": "text", "required": True},
        {"name": "score", "label": "Test score", "type": "number", "required": True},
        {"name": "level", "label": "Level", "type": "choice", "choices": ["basic", "advanced"]},
    ]
}
EXPIRY_RULES: list[dict[str, Any]] = [
    {
        "trigger": "before_expiry",
        "days": 30,
        "recipients": ["holder", "admins"],
        "channels": ["email"],
    },
    {"trigger": "expired", "recipients": ["admins"], "channels": ["email", "webhook"]},
]
MISSING_RULE = {"trigger": "missing", "recipients": ["admins"], "channels": ["email"]}
REVOKED_RULE = {"trigger": "revoked", "recipients": ["holder"], "channels": ["email"]}
TASK_RULE = [{"days_before_expiry": 30, "assignee": "holder"}]

# name, type, group, roles, validity (months, days), extra fields
Validity = tuple[int | None, int | None]
CERTIFICATIONS: list[tuple[str, str, str | None, list[str], Validity, dict[str, Any]]] = [
    ("OSHA 10-Hour Safety", "employee", "Safety",
     ["Welder", "Electrician", "Crane operator", "Site supervisor", "Driver"], (36, None),
     {"notification_rules": [*EXPIRY_RULES, MISSING_RULE], "task_rules": TASK_RULE}),
    ("First Aid", "employee", "Safety", ["Site supervisor", "Office staff"], (24, None),
     {"warning_days": 60, "notification_rules": EXPIRY_RULES}),
    ("Working at Height", "employee", "Working at height", ["Welder", "Electrician",
     "Crane operator"], (12, None), {"notification_rules": EXPIRY_RULES, "task_rules": TASK_RULE}),
    ("Rescue from Height", "employee", "Rescue", ["Site supervisor"], (12, None),
     {"notification_rules": [*EXPIRY_RULES, REVOKED_RULE]}),
    ("Forklift Licence", "employee", None, ["Driver"], (60, None),
     {"valid_when_added": True, "issuer": "RTITB", "cost": Decimal("129.50")}),
    ("Electrical Safety", "employee", "Safety", ["Electrician"], (None, 365),
     {"forms_required": True, "form": FORM, "notification_rules": [MISSING_RULE]}),
    ("Hot Work Permit", "employee", "Safety", ["Welder"], (6, None),
     {"warning_days": 14, "task_rules": [{"days_before_expiry": 14, "assignee": "holder"}]}),
    ("Annual Crane Inspection", "asset", None, [], (12, None),
     {"notification_rules": EXPIRY_RULES, "issuer": "LOLER inspector"}),
    ("Client Safety Induction", "client", None, [], (12, None), {}),
    ("Site Fire Risk Assessment", "location", "Safety", [], (12, None),
     {"notification_rules": EXPIRY_RULES}),
]  # fmt: skip


def find_demo_org(session: Session) -> Organization | None:
    return session.scalars(
        select(Organization)
        .where(Organization.name == DEMO_ORG_NAME)
        .order_by(Organization.created_at)
    ).first()


def create_demo(now: datetime | None = None, seed: int = 7) -> Organization:
    """Create the demo organization (always a new one) and return it."""
    now = now or db.utcnow()
    with context.platform(), db.new_session() as session:
        org = create_organization(
            session, name=DEMO_ORG_NAME, timezone=DEMO_TIMEZONE, modules=["hse"]
        )
        session.commit()
    rng = random.Random(seed)
    with context.tenant(org.id), db.new_session() as session:
        roles = _directory(session, rng)
        certs = _catalog(session, roles)
        today = org_today(org.timezone, now)
        for cert in certs:
            if cert.type == "employee":
                fanout.fanout_certification(session, org.id, cert.id, today=today, now=now)
        _manual_assignments(session, certs, now)
        _spread_statuses(session, rng, today, now)
        session.commit()
    return org


def _directory(session: Session, rng: random.Random) -> dict[str, Role]:
    roles = {name: Role(name=name, external_id=f"role-{i}") for i, name in enumerate(ROLES)}
    session.add_all(roles.values())
    session.flush()
    n = 0
    for name, count in ROLES.items():
        for _ in range(count):
            n += 1
            person = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
            session.add(
                Employee(
                    name=person,
                    email=f"employee{n}@demo.example",
                    external_id=f"emp-{n:04d}",
                    role_id=roles[name].id,
                    active=n % 40 != 0,  # a few former employees
                )
            )
    clients = [
        Client(name=name, contact_email=f"hse@{name.lower().replace(' ', '')}.example")
        for name in ("Northwind", "Contoso", "Globex", "Initech", "Umbrella", "Stark Works")
    ]
    session.add_all(clients)
    session.flush()
    for i in range(12):
        session.add(
            Location(
                name=f"Site {i + 1}",
                address=f"{10 + i} Harbour Road",
                client_id=clients[i % len(clients)].id,
            )
        )
    for i in range(20):
        kind = ("Crane", "Forklift", "Truck", "Generator")[i % 4]
        session.add(Asset(name=f"{kind} {i + 1}", serial_number=f"SN-{1000 + i}"))
    session.flush()
    return roles


def _catalog(session: Session, roles: dict[str, Role]) -> list[Certification]:
    safety = CertificationGroup(name="Safety")
    session.add(safety)
    session.flush()
    height = CertificationGroup(name="Working at height", parent_id=safety.id)
    session.add(height)
    session.flush()
    rescue = CertificationGroup(name="Rescue", parent_id=height.id)
    session.add(rescue)
    session.flush()
    groups = {g.name: g for g in (safety, height, rescue)}
    client_ids = session.scalars(select(Client.id)).all()
    certs = []
    for name, kind, group, role_names, (months, days), extra in CERTIFICATIONS:
        cert = Certification(
            id=uuid.uuid4(),
            name=name,
            type=kind,
            validity_months=months,
            validity_days=days,
            warning_days=extra.get("warning_days", 30),
            valid_when_added=extra.get("valid_when_added", False),
            forms_required=extra.get("forms_required", False),
            form=extra.get("form"),
            notification_rules=extra.get("notification_rules", []),
            task_rules=extra.get("task_rules", []),
            issuer=extra.get("issuer"),
            cost=extra.get("cost"),
            description=f"{name} ({kind} certification).",
        )
        session.add(cert)
        session.flush()
        if group:
            session.add(
                CertificationGroupMember(certification_id=cert.id, group_id=groups[group].id)
            )
        for role_name in role_names:
            session.add(CertificationRole(certification_id=cert.id, role_id=roles[role_name].id))
        if name == "OSHA 10-Hour Safety":
            for client_id in client_ids[:2]:
                session.add(CertificationClient(certification_id=cert.id, client_id=client_id))
        certs.append(cert)
    session.flush()
    return certs


def _manual_assignments(session: Session, certs: list[Certification], now: datetime) -> None:
    """Asset, client and location certifications are assigned by hand."""
    models: dict[str, type[Asset] | type[Client] | type[Location]] = {
        "asset": Asset,
        "client": Client,
        "location": Location,
    }
    for cert in certs:
        if cert.type not in models:
            continue
        for subject_id in session.scalars(select(models[cert.type].id)).all():
            data = {
                "certification_id": cert.id,
                "subject_type": cert.type,
                "subject_id": subject_id,
            }
            service.create_assignment(session, data, actor=DEMO_ACTOR, now=now)


def _spread_statuses(session: Session, rng: random.Random, today: date, now: datetime) -> None:
    """Record dates so every status shows up: valid, expires soon, expired, upcoming, revoked;
    a share stays missing. Some get a renewal so their history has two cycles."""
    rows = session.scalars(
        select(Assignment).where(Assignment.revoked_at.is_(None)).order_by(Assignment.id)
    ).all()
    for assignment in rows:
        if assignment.issued_on is not None and rng.random() < 0.5:
            continue  # valid_when_added: keep most as recorded today
        pick = rng.random()
        if pick < 0.15:
            continue  # missing
        if pick < 0.20:
            service.revoke_assignment(
                session, assignment, "Failed the practical assessment", actor=DEMO_ACTOR, now=now
            )
            continue
        if pick < 0.45:
            issued, expires = today - timedelta(days=rng.randint(30, 300)), None
        elif pick < 0.65:
            issued = today - timedelta(days=rng.randint(200, 700))
            expires = today + timedelta(days=rng.randint(0, 25))
        elif pick < 0.85:
            issued = today - timedelta(days=rng.randint(800, 1500))
            expires = today - timedelta(days=rng.randint(1, 200))
        else:
            issued, expires = today + timedelta(days=rng.randint(1, 30)), None
        dates = {"issued_on": issued, "expires_on": expires} if expires else {"issued_on": issued}
        if rng.random() < 0.2:
            # A renewal moves forward: record an earlier cycle first, then renew into these dates.
            earlier = {"issued_on": issued - timedelta(days=400), "expires_on": None}
            service.update_assignment(session, assignment, earlier, now=now)
            service.renew_assignment(session, assignment, dates, actor=DEMO_ACTOR, now=now)
        else:
            service.update_assignment(session, assignment, dates, now=now)
        cert = session.get(Certification, assignment.certification_id)
        if cert is not None and cert.forms_required and rng.random() < 0.7:
            answers = {
                "card_number": f"EL-{rng.randint(1000, 9999)}",
                "score": rng.randint(60, 100),
            }
            service.submit_form(session, assignment, answers, actor=DEMO_ACTOR, now=now)
