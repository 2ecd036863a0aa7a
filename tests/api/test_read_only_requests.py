"""A GET that writes nothing ends its transaction without a commit (`tenancy.request`); one that
writes (a job it starts, a flush) commits as any other request."""

from __future__ import annotations

import pytest
from sqlalchemy import event
from sqlalchemy.orm import Session

from api.resources import reports


@pytest.fixture
def commits():
    seen: list[Session] = []

    def count(session: Session) -> None:
        seen.append(session)

    event.listen(Session, "after_commit", count)
    yield seen
    event.remove(Session, "after_commit", count)


@pytest.mark.parametrize("path", ["/org", "/employees?limit=5", "/views/employees?limit=5"])
def test_a_read_commits_nothing(api, commits, path):
    api.get(path)  # the organization kept, as in a running worker
    commits.clear()
    assert api.get(path).status_code == 200
    assert commits == []


def test_a_write_still_commits(api, commits):
    resp = api.patch("/org", json={"name": "Renamed"})
    assert resp.status_code == 200
    assert len(commits) == 1
    assert api.get("/org").get_json()["name"] == "Renamed"


def test_a_get_that_starts_a_job_commits_it(api, org, commits, monkeypatch, make_subject):
    monkeypatch.setattr(reports, "SYNC_SUBJECTS", -1)  # every scope is built by a job
    site = make_subject(org, "location", name="North Site")
    commits.clear()
    resp = api.get(f"/reports/audit-pack?location_id={site.id}")
    assert resp.status_code == 202, resp.get_data(as_text=True)
    assert commits  # the request's (the outbox relay may commit after it)
    job = api.get(f"/jobs/{resp.get_json()['job_id']}")
    assert job.status_code == 200, job.get_data(as_text=True)  # it was written
