"""`GET /org` is written from columns with orjson (`api.rows`): it must stay what its documented
schema dumps for the same organization, secret flag included, and never show the secret."""

from __future__ import annotations

import json

from api.schemas.org import OrganizationSchema
from infra import context
from infra import database as db
from tenancy.models import Organization


def _dumped(org_id) -> dict:
    with context.platform(), db.new_session() as session:
        org = session.get(Organization, org_id)
        return json.loads(json.dumps(OrganizationSchema().dump(org)))


def test_the_answer_is_the_schema_dump_with_and_without_a_secret(api, org):
    # The first request after a change loads the organization for auth and answers from that
    # entity; the next finds it in the per-worker cache and selects the columns: both the same.
    first = api.get("/org")
    assert first.status_code == 200
    assert first.mimetype == "application/json"
    assert first.get_json() == _dumped(org.id)
    assert api.get("/org").get_data() == first.get_data()
    assert first.get_json()["webhook_secret_set"] is False
    assert first.get_data().endswith(b"\n")

    changed = {
        "webhook_url": "https://hooks.example/certs",
        "webhook_secret": "s3cret-value-of-32-characters-xx",
        "admin_emails": ["a@example.com", "Zoë@example.com"],
        "name": "Ünïcode Org",
    }
    assert api.patch("/org", json=changed).status_code == 200
    second = api.get("/org")
    assert api.get("/org").get_data() == second.get_data()
    body = second.get_json()
    assert body == _dumped(org.id)
    assert body["webhook_secret_set"] is True
    assert "s3cret" not in second.get_data(as_text=True)
    assert list(body) == sorted(body)  # keys sorted, as the JSON provider writes them


def test_a_conditional_get_still_answers_304(api, org):
    etag = api.get("/org").headers["ETag"]
    assert api.get("/org", headers={"If-None-Match": etag}).status_code == 304
