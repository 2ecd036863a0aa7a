"""The maintained compliance counts (migration 0021) follow every change of an assignment.

Each step goes through the API or raw SQL and is followed by `verify` (the counts equal the
assignments' figures) and by the summary's totals: revocation and reassignment (the latest
revoked row stops counting once a live one exists), renewal, exemption, deletion of a live row
beside revoked history (the history counts again), a leaver (the subject's `active` flag, no
assignment touched), and the CLI's `verify` / `rebuild`.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from click.testing import CliRunner
from sqlalchemy import delete, update

from certifications.assignments.models import Assignment, AssignmentCount
from certifications.directory.models import Employee
from cli.main import main
from tests.support.factories import wrong_counts
from tests.support.suite import CLI_ENV


def totals(api: Any, **query: Any) -> dict[str, Any]:
    body = api.get("/compliance/summary", query_string=query).get_json()
    t = body["totals"]
    return {k: v for k, v in t["counts"].items() if v} | {
        "required": t["required"],
        "exempt": t["exempt"],
    }


def test_counts_follow_each_change(api, org, make_certification, make_employee, as_tenant):
    cert = make_certification(org, validity_months=12)
    alice, bob = make_employee(org, name="Alice"), make_employee(org, name="Bob")

    def step(expected: dict[str, Any], **query: Any) -> None:
        assert wrong_counts(org.id) == []
        assert totals(api, **query) == expected

    def assign(subject: Any, **dates: Any) -> str:
        body = {"certification_id": str(cert.id), "subject_type": "employee"}
        resp = api.post("/assignments", json=body | {"subject_id": str(subject.id), **dates})
        assert resp.status_code == 201, resp.get_json()
        return str(resp.get_json()["id"])

    # Issued a month ago, valid 12 months: valid on any day the suite runs (a fixed date
    # turned into "expires soon" once the calendar came within 30 days of its expiry).
    today = datetime.now(UTC).date()
    a1 = assign(alice, issued_on=(today - timedelta(days=30)).isoformat())
    b1 = assign(bob)
    step({"valid": 1, "missing": 1, "required": 2, "exempt": 0})

    assert api.post(f"/assignments/{a1}/revoke", json={"reason": "fraud"}).status_code == 200
    step({"revoked": 1, "missing": 1, "required": 2, "exempt": 0})
    # Reassigned: the revoked row is history, the new live row counts.
    a2 = assign(alice)
    step({"missing": 2, "required": 2, "exempt": 0})
    assert api.post(
        f"/assignments/{a2}/renew", json={"issued_on": (today - timedelta(days=1)).isoformat()}
    ).status_code in (
        200,
        201,
    )
    step({"valid": 1, "missing": 1, "required": 2, "exempt": 0})

    resp = api.post(f"/assignments/{b1}/exemption", json={"reason": "on leave"})
    assert resp.status_code in (200, 201), resp.get_json()
    step({"valid": 1, "required": 1, "exempt": 1})
    assert api.delete(f"/assignments/{b1}/exemption").status_code in (200, 204)
    step({"valid": 1, "missing": 1, "required": 2, "exempt": 0})

    # Bob leaves: his assignment leaves the figures without being touched, and comes back.
    with as_tenant(org.id) as s:
        s.execute(update(Employee).where(Employee.id == bob.id).values(active=False))
        s.commit()
    step({"valid": 1, "required": 1, "exempt": 0})
    step({"valid": 1, "missing": 1, "required": 2, "exempt": 0}, include_inactive="true")
    with as_tenant(org.id) as s:
        s.execute(update(Employee).where(Employee.id == bob.id).values(active=True))
        s.commit()
    step({"valid": 1, "missing": 1, "required": 2, "exempt": 0})

    # The live row deleted beside revoked history (raw SQL: no code path is needed): the
    # latest revoked row is the current one again.
    with as_tenant(org.id) as s:
        s.execute(
            delete(Assignment)
            .where(Assignment.id == uuid.UUID(a2))
            .execution_options(synchronize_session=False)
        )
        s.commit()
    step({"revoked": 1, "missing": 1, "required": 2, "exempt": 0})


def test_cli_verify_and_rebuild(org, make_certification, make_employee, make_assignment, as_tenant):
    cert = make_certification(org)
    make_assignment(cert, make_employee(org))
    args = ["counts", "verify", "--org", str(org.id)]
    ok = CliRunner(env=CLI_ENV).invoke(main, args)
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.output.splitlines()[-1])["wrong"] == 0

    with as_tenant(org.id) as s:  # a count gone wrong (by hand)
        s.execute(
            update(AssignmentCount)
            .values(n=AssignmentCount.n + 5)
            .execution_options(synchronize_session=False)
        )
        s.commit()
    bad = CliRunner(env=CLI_ENV).invoke(main, args)
    assert bad.exit_code == 1
    line = json.loads(bad.output.splitlines()[-1])
    assert line["wrong"] == 1
    assert line["mismatches"][0]["stored"] == 6

    fixed = CliRunner(env=CLI_ENV).invoke(main, ["counts", "rebuild", "--org", str(org.id)])
    assert fixed.exit_code == 0, fixed.output
    assert wrong_counts(org.id) == []


def test_live_row_beside_revoked_history_of_any_status(
    org, make_certification, make_employee, make_assignment
):
    """Revoked history stored with a status other than `revoked` (data written by hand, an
    import): the new live row still supersedes it in the counts."""
    cert = make_certification(org)
    alice = make_employee(org)
    make_assignment(cert, alice, status="valid", revoked_at=datetime(2026, 1, 1, tzinfo=UTC))
    assert wrong_counts(org.id) == []
    make_assignment(cert, alice, status="missing")
    assert wrong_counts(org.id) == []
