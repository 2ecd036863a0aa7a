"""Rule evaluation: the right notifications on the right day, exactly once, for the right people."""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy import select

from certifications.assignments.recompute import recompute_statuses
from certifications.automation.models import Notification
from certifications.automation.notifications import evaluate_rules
from tests.automation.conftest import TODAY

EMAIL_30 = {"trigger": "before_expiry", "days": 30, "recipients": ["holder"], "channels": ["email"]}


def _evaluate(as_tenant, org, today=TODAY):
    with as_tenant(org.id) as s:
        report = evaluate_rules(s, org.id, today)
        s.commit()
    return report


def _rows(as_tenant, org):
    with as_tenant(org.id) as s:
        return list(s.scalars(select(Notification).order_by(Notification.recipient)))


def test_before_expiry_fires_on_the_day_not_before_and_only_once(
    org, as_tenant, make_employee, make_certification, make_assignment
):
    cert = make_certification(org, notification_rules=[EMAIL_30])
    emp = make_employee(org, email="ada@example.test")
    asg = make_assignment(cert, emp, expires_on=TODAY + timedelta(days=31))

    assert _evaluate(as_tenant, org)["created"] == 0  # 31 days out: not yet
    assert _rows(as_tenant, org) == []

    tomorrow = TODAY + timedelta(days=1)
    assert _evaluate(as_tenant, org, tomorrow)["created"] == 1
    for _ in range(3):  # reruns, later days of the window
        assert _evaluate(as_tenant, org, tomorrow + timedelta(days=2))["created"] == 0
    (row,) = _rows(as_tenant, org)
    assert (row.assignment_id, row.recipient, row.channel) == (asg.id, "ada@example.test", "email")
    assert (row.rule_key, row.cycle, row.status, row.recipient_source) == (
        "before_expiry:30",
        1,
        "pending",
        "holder",
    )
    assert row.triggered_on == tomorrow


def test_recipients_holder_admins_and_literal_addresses(
    make_org, as_tenant, make_employee, make_certification, make_assignment
):
    org = make_org(admin_emails=["boss@example.test", "hr@example.test"])
    rule = {**EMAIL_30, "recipients": ["holder", "admins", "safety@example.test"]}
    cert = make_certification(org, notification_rules=[rule])
    make_assignment(
        cert, make_employee(org, email="ada@example.test"), expires_on=TODAY + timedelta(days=5)
    )
    _evaluate(as_tenant, org)
    got = {(r.recipient, r.recipient_source) for r in _rows(as_tenant, org)}
    assert got == {
        ("ada@example.test", "holder"),
        ("boss@example.test", "admins"),
        ("hr@example.test", "admins"),
        ("safety@example.test", "address"),
    }


def test_holder_without_email_falls_back_to_admins(
    make_org, as_tenant, make_employee, make_asset, make_client, make_certification, make_assignment
):
    org = make_org(admin_emails=["boss@example.test"])
    crane = make_certification(org, type="asset", notification_rules=[EMAIL_30])
    make_assignment(crane, make_asset(org), expires_on=TODAY + timedelta(days=5))
    cert = make_certification(org, notification_rules=[EMAIL_30])
    make_assignment(cert, make_employee(org, email=None), expires_on=TODAY + timedelta(days=5))
    client_cert = make_certification(org, type="client", notification_rules=[EMAIL_30])
    make_assignment(client_cert, make_client(org, contact_email="ops@acme.test"), expires_on=TODAY)
    _evaluate(as_tenant, org)
    got = sorted(
        (r.certification_id == client_cert.id, r.recipient, r.recipient_source)
        for r in _rows(as_tenant, org)
    )
    assert got == [
        (False, "boss@example.test", "holder_fallback_admins"),
        (False, "boss@example.test", "holder_fallback_admins"),
        (True, "ops@acme.test", "holder"),
    ]


def test_expired_revoked_and_missing_triggers(
    make_org, as_tenant, make_employee, make_certification, make_assignment
):
    org = make_org(admin_emails=["boss@example.test"])
    rules = [
        {"trigger": t, "recipients": ["admins"], "channels": ["email"]}
        for t in ("expired", "revoked", "missing")
    ]
    cert = make_certification(org, notification_rules=rules)
    expired = make_assignment(
        cert, make_employee(org), expires_on=TODAY - timedelta(days=1), status="expired"
    )
    revoked = make_assignment(cert, make_employee(org), status="revoked", revoked_reason="fraud")
    missing = make_assignment(
        cert, make_employee(org), issued_on=None, effective_on=None, status="missing"
    )
    make_assignment(  # a role-sourced record no longer required: not nagged about
        cert,
        make_employee(org),
        issued_on=None,
        effective_on=None,
        status="missing",
        required=False,
    )
    make_assignment(
        cert, make_employee(org), expires_on=TODAY + timedelta(days=200)
    )  # valid: nothing
    # Expired yesterday but still stored as valid: rules read the stored status only, so it is
    # notified once its status is recomputed, which the org's tick does right before it
    # evaluates the rules (done by hand here).
    stale = make_assignment(
        cert, make_employee(org), expires_on=TODAY - timedelta(days=1), status="valid"
    )
    _evaluate(as_tenant, org)
    assert stale.id not in {r.assignment_id for r in _rows(as_tenant, org)}
    with as_tenant(org.id) as s:
        assert recompute_statuses(s, org.id, TODAY, assignment_ids=[stale.id]) == 1
        s.commit()
    _evaluate(as_tenant, org)
    got = {(r.assignment_id, r.trigger) for r in _rows(as_tenant, org)}
    assert got == {
        (expired.id, "expired"),
        (stale.id, "expired"),
        (revoked.id, "revoked"),
        (missing.id, "missing"),
    }


def test_before_expiry_skips_expired_and_revoked(
    org, as_tenant, make_employee, make_certification, make_assignment
):
    cert = make_certification(org, notification_rules=[EMAIL_30])
    make_assignment(
        cert, make_employee(org), expires_on=TODAY - timedelta(days=1), status="expired"
    )
    make_assignment(
        cert, make_employee(org), expires_on=TODAY + timedelta(days=3), status="revoked"
    )
    assert _evaluate(as_tenant, org)["created"] == 0


def test_webhook_channel_needs_a_webhook_url(
    make_org, as_tenant, make_employee, make_certification, make_assignment
):
    org = make_org()
    rule = {**EMAIL_30, "channels": ["email", "webhook"]}
    cert = make_certification(org, notification_rules=[rule])
    holder = make_employee(org, email="ada@example.test")
    make_assignment(cert, holder, expires_on=TODAY + timedelta(days=5))
    _evaluate(as_tenant, org)
    assert [r.channel for r in _rows(as_tenant, org)] == ["email"]
    with as_tenant(org.id) as s:
        from tenancy.models import Organization

        s.get(Organization, org.id).webhook_url = "https://hooks.example.test/x"
        s.commit()
    _evaluate(as_tenant, org)
    assert sorted((r.channel, r.recipient) for r in _rows(as_tenant, org)) == [
        ("email", "ada@example.test"),
        ("webhook", "webhook"),
    ]


def test_new_cycle_gets_its_own_notification_and_cancels_the_old_pending_one(
    org, as_tenant, make_employee, make_certification, make_assignment
):
    from certifications.assignments.models import Assignment

    cert = make_certification(org, notification_rules=[EMAIL_30])
    asg = make_assignment(cert, make_employee(org), expires_on=TODAY + timedelta(days=5))
    _evaluate(as_tenant, org)
    with as_tenant(org.id) as s:  # renewed: cycle 2, expiring a year later, then due again
        row = s.get(Assignment, asg.id)
        row.cycle, row.expires_on = 2, TODAY + timedelta(days=20)
        s.commit()
    _evaluate(as_tenant, org)
    got = sorted((r.cycle, r.status) for r in _rows(as_tenant, org))
    assert got == [(1, "cancelled"), (2, "pending")]


def test_rules_of_other_orgs_and_archived_certifications_do_nothing(
    make_org, as_tenant, make_employee, make_certification, make_assignment
):
    from datetime import UTC, datetime

    org, other = make_org(), make_org()
    archived = make_certification(org, notification_rules=[EMAIL_30], archived_at=datetime.now(UTC))
    make_assignment(archived, make_employee(org), expires_on=TODAY + timedelta(days=5))
    cert = make_certification(other, notification_rules=[EMAIL_30])
    make_assignment(cert, make_employee(other), expires_on=TODAY + timedelta(days=5))
    assert _evaluate(as_tenant, org)["created"] == 0
    assert _rows(as_tenant, other) == []


def test_two_concurrent_evaluations_create_each_notification_once(
    make_org, as_tenant, make_employee, make_certification, make_assignment
):
    org = make_org(admin_emails=["boss@example.test"])
    rule = {**EMAIL_30, "recipients": ["holder", "admins"]}
    cert = make_certification(org, notification_rules=[rule])
    for i in range(20):
        make_assignment(
            cert,
            make_employee(org, email=f"e{i}@example.test"),
            expires_on=TODAY + timedelta(days=i),
        )
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait()
            _evaluate(as_tenant, org)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    rows = _rows(as_tenant, org)
    assert len(rows) == 40
    assert len({(r.assignment_id, r.recipient) for r in rows}) == 40
