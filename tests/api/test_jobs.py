"""Jobs are readable by their org only."""

from __future__ import annotations

import uuid

from jobs.models import Job


def test_job_visible_to_owner_404_to_others(api_for, make_org, as_tenant):
    a, b = make_org(), make_org()
    with as_tenant(a.id) as s:
        job = Job(kind="role_fanout", total=10)
        s.add(job)
        s.commit()
    resp = api_for(a).get(f"/jobs/{job.id}")
    assert resp.status_code == 200
    assert resp.get_json()["state"] == "queued"
    assert resp.get_json()["total"] == 10
    resp = api_for(b).get(f"/jobs/{job.id}")
    assert resp.status_code == 404
    assert resp.get_json()["code"] == 404
    assert api_for(a).get(f"/jobs/{uuid.uuid4()}").status_code == 404
    assert api_for(a, scopes=["org:admin"]).get(f"/jobs/{job.id}").status_code == 403
