"""Reminder plans: which stage repetition is due on which day, and the rules ↔ plan bridge."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from certifications.automation.models import Notification
from certifications.automation.notifications import evaluate_rules
from certifications.automation.plans import plan_from_rules, rules_from_plan, stage_key
from tests.automation.conftest import TODAY

WEEKLY = {
    "offset_days": -30,
    "recipients": ["holder"],
    "channels": ["email"],
    "repeat_every_days": 7,
    "max_repeats": 2,
}
AFTER = {"offset_days": 3, "recipients": ["holder"], "channels": ["email"]}


def _due(as_tenant, org, stage, days_to_expiry, make_certification, make_employee, make_assignment):
    """(rule_key, repetition) created for one assignment `days_to_expiry` from TODAY."""
    cert = make_certification(org, reminder_plan={"stages": [stage]})
    expires = TODAY + timedelta(days=days_to_expiry)
    status = "expired" if days_to_expiry < 0 else "expires_soon"
    asg = make_assignment(
        cert, make_employee(org, email="ada@example.test"), expires_on=expires, status=status
    )
    with as_tenant(org.id) as s:
        evaluate_rules(s, org.id, TODAY)
        s.commit()
        rows = s.scalars(select(Notification).where(Notification.assignment_id == asg.id)).all()
        return sorted((r.rule_key, r.repetition) for r in rows)


@pytest.mark.parametrize(
    ("stage", "days_to_expiry", "expected"),
    [
        (WEEKLY, 31, []),  # not yet
        (WEEKLY, 30, [("before_expiry:30", 0)]),
        (WEEKLY, 24, [("before_expiry:30", 0)]),  # still the first week
        (WEEKLY, 23, [("before_expiry:30", 1)]),  # a late tick: only the repetition due
        (WEEKLY, 16, [("before_expiry:30", 2)]),
        (WEEKLY, 2, [("before_expiry:30", 2)]),  # max_repeats reached: the last one stays due
        (WEEKLY, 0, [("before_expiry:30", 2)]),  # the expiry day still counts
        (WEEKLY, -1, []),  # expired: a before-expiry stage is over
        (AFTER, -2, []),
        (AFTER, -3, [("after_expiry:3", 0)]),
        (AFTER, -40, [("after_expiry:3", 0)]),  # still expired: catches up once
    ],
)
def test_the_repetition_due_on_a_day(
    org,
    as_tenant,
    make_certification,
    make_employee,
    make_assignment,
    stage,
    days_to_expiry,
    expected,
):
    got = _due(
        as_tenant, org, stage, days_to_expiry, make_certification, make_employee, make_assignment
    )
    assert got == expected


def test_stop_when_submission_pending_pauses_the_record(
    org, as_tenant, make_certification, make_employee, make_assignment
):
    plan = {"stages": [WEEKLY], "stop_when": "submission_pending"}
    cert = make_certification(org, reminder_plan=plan)
    waiting = make_assignment(
        cert,
        make_employee(org, email="a@example.test"),
        expires_on=TODAY + timedelta(days=10),
        status="expires_soon",
    )
    make_assignment(
        cert,
        make_employee(org, email="b@example.test"),
        expires_on=TODAY + timedelta(days=10),
        status="expires_soon",
    )
    with as_tenant(org.id) as s:
        s.get(type(waiting), waiting.id).pending_submission_id = waiting.id  # any id: "one waits"
        s.commit()
        evaluate_rules(s, org.id, TODAY)
        s.commit()
        assert [n.recipient for n in s.scalars(select(Notification))] == ["b@example.test"]


def test_rules_become_one_stage_each_with_the_same_identity():
    rules = [
        {"trigger": "before_expiry", "days": 30, "recipients": ["holder"], "channels": ["email"]},
        {"trigger": "before_expiry", "days": 0, "recipients": ["admins"], "channels": ["email"]},
        {"trigger": "revoked", "recipients": ["a@example.test"], "channels": ["webhook"]},
    ]
    plan = plan_from_rules(rules)
    assert [stage_key(s) for s in plan["stages"]] == [
        "before_expiry:30",
        "before_expiry:0",
        "revoked",
    ]
    assert rules_from_plan(plan) == rules
    plan["stages"].append({**WEEKLY, "offset_days": -7})  # repeats: not a rule
    plan["stages"].append({**AFTER, "recipients": ["admins"]})  # after the expiry: not a rule
    plan["stages"].append({"offset_days": -1, "recipients": ["manager"], "channels": ["email"]})
    assert rules_from_plan(plan) == rules


def test_plan_validation_names_the_field(api):
    def post(stage, **plan):
        body = {"name": "X", "type": "employee", "reminder_plan": {"stages": [stage], **plan}}
        return api.post("/certifications", json=body)

    bad = [
        ({"recipients": ["holder"], "channels": ["email"]}, "offset_days"),
        ({**WEEKLY, "max_repeats": 99}, "max_repeats"),
        ({**WEEKLY, "repeat_every_days": None, "max_repeats": 2}, "max_repeats"),
        ({"offset_days": -1, "recipients": ["boss"], "channels": ["email"]}, "recipients"),
        (
            {"event": "revoked", "offset_days": 4, "recipients": ["holder"], "channels": ["email"]},
            "offset_days",
        ),
    ]
    for stage, field in bad:
        resp = post(stage)
        assert resp.status_code == 422, stage
        errors = resp.get_json()["errors"]["json"]["reminder_plan"]["stages"]["0"]
        assert field in errors, (stage, errors)
    resp = post(WEEKLY, stop_when="never")
    assert "stop_when" in resp.get_json()["errors"]["json"]["reminder_plan"]
    both = {
        "name": "Y",
        "type": "employee",
        "reminder_plan": {"stages": []},
        "notification_rules": [],
    }
    resp = api.post("/certifications", json=both)
    assert resp.status_code == 422
    assert "notification_rules" in resp.get_json()["errors"]
