"""Property: over any history, the figures as of today equal today's figures.

A seeded random history of assignments, renewals, corrections, revocations, reassignments,
exemptions, role moves and leavers is written through the services and the fan-out with pinned
clocks on past days; after today's recomputation, the summary (with and without leavers),
every employee's view row and gate check read from history (`on` = today) equal the live ones
(the gate check also with an equivalence).
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
from sqlalchemy import delete, select

from certifications.assignments import exemptions, fanout, service
from certifications.assignments.models import Assignment
from certifications.assignments.recompute import recompute_org
from certifications.catalog.models import CertificationEquivalence
from certifications.directory.models import Employee
from certifications.history.asof import AsOf, as_of_rows
from certifications.reporting.asof_views import attach_certifications_as_of
from certifications.reporting.compliance import compliance_summary
from certifications.reporting.gate import gate_check
from certifications.reporting.subjects import ViewFilters, attach_certifications
from infra.database import utcnow
from infra.errors import DomainError
from jobs.models import OutboxMessage
from jobs.outbox import PENDING_KEY
from tenancy.organizations import org_today

ZONES = ("UTC", "America/New_York", "Pacific/Auckland")


def at(day: date) -> datetime:
    return datetime.combine(day, time(12), UTC)


def _drop_jobs(s: Any) -> None:
    """The history calls the fan-out itself with its pinned clock: a job its services request
    would run on the session's worker at the real today, between two past days of the history,
    and record requirement periods from a day the history has not reached. Unsent, they go."""
    ids = s.info.pop(PENDING_KEY, None)
    if ids:
        s.execute(
            delete(OutboxMessage).where(OutboxMessage.id.in_(list(ids))),
            execution_options={"synchronize_session": False},
        )


class History:
    """Random changes of one org's records, one transaction each, on increasing past days."""

    def __init__(self, rng: random.Random, as_tenant: Any, org: Any, world: dict[str, Any]):
        self.rng, self.as_tenant, self.org, self.w = rng, as_tenant, org, world

    def run(self, day: date) -> None:
        op = self.rng.choice(
            [self.assign] * 3
            + [self.renew, self.correct, self.revoke, self.exempt, self.lift, self.move] * 2
            + [self.leave]
        )
        with self.as_tenant(self.org.id) as s:
            try:
                op(s, day)
                _drop_jobs(s)
                s.commit()
            except DomainError:
                s.rollback()

    def _live(self, s: Any) -> Assignment | None:
        rows = s.scalars(
            select(Assignment).where(Assignment.revoked_at.is_(None)).order_by(Assignment.id)
        ).all()
        return self.rng.choice(rows) if rows else None

    def _date(self, day: date) -> date | None:
        return self.rng.choice([None, day - timedelta(days=self.rng.randint(0, 400))])

    def assign(self, s: Any, day: date) -> None:
        cert = self.rng.choice(self.w["manual"])
        emp = self.rng.choice(self.w["employees"])
        data = {"certification_id": cert.id, "subject_type": "employee", "subject_id": emp.id}
        issued = self._date(day)
        if issued is not None:
            data["issued_on"] = issued
            if self.rng.random() < 0.5:
                data["expires_on"] = issued + timedelta(days=self.rng.randint(10, 400))
        service.create_assignment(s, data, actor="t", now=at(day))

    def renew(self, s: Any, day: date) -> None:
        a = self._live(s)
        if a is not None:
            issued = day - timedelta(days=self.rng.randint(0, 20))
            if a.effective_on is not None and issued < a.effective_on:
                issued = a.effective_on
            service.renew_assignment(s, a, {"issued_on": issued}, actor="t", now=at(day))

    def correct(self, s: Any, day: date) -> None:
        a = self._live(s)
        if a is not None and a.issued_on is not None:
            expires = a.issued_on + timedelta(days=self.rng.randint(1, 500))
            service.update_assignment(s, a, {"expires_on": expires}, now=at(day))

    def revoke(self, s: Any, day: date) -> None:
        a = self._live(s)
        if a is not None:
            service.revoke_assignment(s, a, "random", actor="t", now=at(day))

    def exempt(self, s: Any, day: date) -> None:
        a = self._live(s)
        if a is not None:
            until = self.rng.choice([None, day + timedelta(days=self.rng.randint(0, 60))])
            exemptions.exempt(s, a, "random", until, actor="t", now=at(day))

    def lift(self, s: Any, day: date) -> None:
        a = self._live(s)
        if a is not None:
            exemptions.lift(s, a, now=at(day))

    def move(self, s: Any, day: date) -> None:
        emp = s.get(Employee, self.rng.choice(self.w["employees"]).id)
        emp.role_id = self.rng.choice([*self.w["roles"], None])
        s.flush()
        fanout.fanout_employees(s, self.org.id, [emp.id], today=day, now=at(day))

    def leave(self, s: Any, day: date) -> None:
        emp = s.get(Employee, self.rng.choice(self.w["employees"]).id)
        emp.active = not emp.active
        s.flush()
        fanout.fanout_employees(s, self.org.id, [emp.id], today=day, now=at(day))


def _random_history(
    seed: int,
    make_org: Any,
    make_role: Any,
    make_employee: Any,
    make_certification: Any,
    as_tenant: Any,
    *,
    equivalence: bool = False,
) -> tuple[Any, str, date]:
    """An org with a seeded random history up to today, recomputed today: (org, zone, today).
    `equivalence`: the second role certification is satisfied by the first manual one."""
    rng = random.Random(seed)
    zone = ZONES[seed % len(ZONES)]
    org = make_org(timezone=zone)
    roles = [make_role(org).id, make_role(org).id]
    world = {
        "roles": roles,
        "employees": [
            make_employee(org, name=f"E{i}", role_id=rng.choice([*roles, None])) for i in range(5)
        ],
        "manual": [
            make_certification(org, warning_days=30, validity_months=12),
            make_certification(org, warning_days=0),
        ],
    }
    make_certification(org, role_ids=[roles[0]], valid_when_added=True, validity_days=90)
    dependent = make_certification(org, role_ids=roles, warning_days=10)
    if equivalence:
        with as_tenant(org.id) as s:
            provider = world["manual"][0].id
            s.add(CertificationEquivalence(certification_id=dependent.id, provider_id=provider))
            s.commit()
    today = org_today(zone, utcnow())
    history = History(rng, as_tenant, org, world)
    with as_tenant(org.id) as s:
        first = today - timedelta(days=300)
        fanout.fanout_employees(
            s, org.id, [e.id for e in world["employees"]], today=first, now=at(first)
        )
        s.commit()
    day = today - timedelta(days=299)
    while day < today:
        history.run(day)
        day += timedelta(days=rng.randint(0, 12))
    if equivalence:
        _give_providers(rng, as_tenant, org, world, today, make_employee)
    with as_tenant(org.id) as s:
        recompute_org(s, org.id, utcnow())
        s.commit()
    return org, zone, today


def _give_providers(
    rng: random.Random,
    as_tenant: Any,
    org: Any,
    world: dict[str, Any],
    today: date,
    make_employee: Any,
) -> None:
    """Most employees get (or renew) a record of the provider on a recent past day, mostly
    valid today; a newcomer "Z" joins a role five days ago holding a valid one, so at least one
    requirement is satisfied via the provider."""
    provider = world["manual"][0]
    z = make_employee(org, name="Z", role_id=world["roles"][1])
    world["employees"].append(z)
    joined = today - timedelta(days=5)
    with as_tenant(org.id) as s:
        fanout.fanout_employees(s, org.id, [z.id], today=joined, now=at(joined))
        s.commit()
    for emp in world["employees"]:
        recorded = joined if emp is z else today - timedelta(days=rng.randint(1, 30))
        expires = today + timedelta(days=100 if emp is z else rng.randint(-10, 200))
        with as_tenant(org.id) as s:
            held = s.scalars(
                select(Assignment).where(
                    Assignment.certification_id == provider.id,
                    Assignment.subject_id == emp.id,
                    Assignment.revoked_at.is_(None),
                )
            ).first()
            issued = recorded
            if held is not None and held.effective_on is not None:
                issued = max(issued, held.effective_on)
            dates = {"issued_on": issued, "expires_on": max(expires, issued + timedelta(days=1))}
            try:
                if held is None:
                    data = {
                        "certification_id": provider.id,
                        "subject_type": "employee",
                        "subject_id": emp.id,
                        **dates,
                    }
                    service.create_assignment(s, data, actor="t", now=at(recorded))
                else:
                    service.renew_assignment(s, held, dates, actor="t", now=at(recorded))
                _drop_jobs(s)
                s.commit()
            except DomainError:
                s.rollback()


def _gates_agree(s: Any, org: Any, when: AsOf) -> tuple[int, int]:
    """Every employee's gate check from history (`when`, today) equals the live one; returns
    the requirements compared and how many of them were satisfied via another certification."""
    compared = via = 0
    for emp in s.scalars(select(Employee).order_by(Employee.name)).all():
        live = gate_check(s, org.id, "employee", emp.id, None, when.on)
        then = gate_check(s, org.id, "employee", emp.id, None, when.on, when)
        assert then == live, emp.name
        compared += len(live["requirements"])
        via += sum(r["satisfied_via"] is not None for r in live["requirements"])
    return compared, via


@pytest.mark.parametrize("seed", range(6), ids=lambda s: f"seed{s}")
def test_as_of_today_equals_today(
    seed, make_org, make_role, make_employee, make_certification, as_tenant
):
    org, zone, today = _random_history(
        seed, make_org, make_role, make_employee, make_certification, as_tenant
    )
    when = AsOf.of(zone, today)
    with as_tenant(org.id) as s:
        for include_inactive in (False, True):
            live = compliance_summary(s, include_inactive)
            assert compliance_summary(s, include_inactive, when) == live
        employees = s.scalars(select(Employee).order_by(Employee.name)).all()
        f = ViewFilters(include_inactive=True)
        live_rows = [r.to_dict() for r in attach_certifications(s, "employee", employees, f)]
        rows = as_of_rows(when, include_inactive=True)
        then = [r.to_dict() for r in attach_certifications_as_of(s, "employee", employees, f, rows)]
        assert then == live_rows
        assert sum(len(r["certifications"]) for r in live_rows) > 0
        _gates_agree(s, org, when)
    assert isinstance(org.id, uuid.UUID)


@pytest.mark.parametrize("seed", range(6), ids=lambda s: f"seed{s}")
def test_gate_check_as_of_today_equals_today_with_an_equivalence(
    seed, make_org, make_role, make_employee, make_certification, as_tenant
):
    """The gate check's history path applies `satisfied_by` as the live one does."""
    org, zone, today = _random_history(
        seed, make_org, make_role, make_employee, make_certification, as_tenant, equivalence=True
    )
    with as_tenant(org.id) as s:
        compared, via = _gates_agree(s, org, AsOf.of(zone, today))
    assert compared > 0
    assert via > 0  # the history makes providers likely: the equivalence was exercised
