"""`certs demo`: a demo organization covering every status, and a token that works."""

from __future__ import annotations

import uuid

from click.testing import CliRunner
from sqlalchemy import func, select

from certifications.assignments.models import Assignment
from certifications.directory.models import Employee, Role
from certifications.vocabulary import STATUSES
from cli.main import main
from tests.support.suite import CLI_ENV


def _org_and_token(output: str) -> tuple[uuid.UUID, str]:
    lines = [line for line in output.splitlines() if line.strip()]
    org_id = uuid.UUID(lines[-2].rsplit("(", 1)[1].rstrip(")"))
    return org_id, lines[-1].removeprefix("export TOKEN=")


def test_demo_covers_every_status_and_is_reused(app, as_tenant, jobs, smtp):
    runner = CliRunner(env=CLI_ENV)
    first = runner.invoke(main, ["demo", "--if-missing"])
    assert first.exit_code == 0, first.output
    org_id, token = _org_and_token(first.output)
    # The demo's jobs end with its reminders going out: here, not in whichever later test
    # happens to run the worker (into another test's mail sink).
    jobs.drain()
    assert smtp.messages
    with as_tenant(org_id) as s:
        statuses = dict(
            s.execute(select(Assignment.status, func.count()).group_by(Assignment.status)).all()
        )
        kinds = set(s.scalars(select(Assignment.subject_type).distinct()))
        employees = s.scalar(select(func.count()).select_from(Employee))
        roles = s.scalar(select(func.count()).select_from(Role))
    assert set(statuses) == set(STATUSES)
    assert kinds == {"employee", "asset", "client", "location"}
    assert (employees, roles) == (200, 6)

    client = app.test_client()
    resp = client.get(
        "/api/v1/assignments?status=expires_soon", headers={"Authorization": f"Bearer {token}"}
    )
    assert resp.status_code == 200
    assert resp.get_json()["items"]

    again = runner.invoke(main, ["demo", "--if-missing"])
    assert again.exit_code == 0, again.output
    assert _org_and_token(again.output)[0] == org_id
