"""The audit trail: every API mutation, who/what/before/after/when/request id, same transaction."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import quote

from sqlalchemy import select

from certifications.audit import trail as audit
from certifications.audit.models import AuditEvent
from certifications.directory.models import Role
from infra import context


def _events(api, **params):
    query = "&".join(f"{k}={quote(str(v))}" for k, v in params.items())
    resp = api.get(f"/audit-events?{query}")
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()["items"]


def test_create_update_delete_are_audited_with_who_and_request_id(org, api_for):
    api = api_for(org, sub="alice")
    created = api.post(
        "/employees",
        json={"name": "Ada", "email": "ada@example.com"},
        headers={"X-Request-ID": "req-create-1"},
    )
    assert created.status_code == 201, created.get_json()
    emp_id = created.get_json()["id"]
    assert api.patch(f"/employees/{emp_id}", json={"name": "Ada L."}).status_code == 200
    group = api.post("/certification-groups", json={"name": "Safety"}).get_json()
    assert api.delete(f"/certification-groups/{group['id']}").status_code == 204

    create, update = _events(api, entity_type="employee", entity_id=emp_id)
    assert (create["action"], create["actor"], create["request_id"]) == (
        "create",
        "alice",
        "req-create-1",
    )
    assert create["before"] is None
    assert create["after"]["name"] == "Ada"
    assert create["after"]["email"] == "ada@example.com"
    assert (update["action"], update["before"], update["after"]) == (
        "update",
        {"name": "Ada"},
        {"name": "Ada L."},
    )
    assert update["request_id"] not in (None, "req-create-1")
    actions = [e["action"] for e in _events(api, entity_type="certification_group")]
    assert actions == ["create", "delete"]
    deleted = _events(api, entity_type="certification_group")[1]
    assert deleted["before"]["name"] == "Safety"
    assert deleted["after"] is None


def test_org_patch_is_audited_with_the_secret_redacted_and_never_returned(org, api_for):
    api = api_for(org)
    resp = api.patch(
        "/org",
        json={
            "webhook_url": "https://hooks.example.com/certs",
            "webhook_secret": "a-very-long-webhook-secret",
            "admin_emails": ["boss@example.com"],
        },
    )
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert "webhook_secret" not in body
    assert body["webhook_secret_set"] is True
    assert body["webhook_url"] == "https://hooks.example.com/certs"
    assert body["admin_emails"] == ["boss@example.com"]
    assert "a-very-long-webhook-secret" not in api.get("/org").get_data(as_text=True)

    (event,) = _events(api, entity_type="organization")
    assert event["after"]["webhook_secret"] == audit.REDACTED
    assert event["after"]["admin_emails"] == ["boss@example.com"]
    assert "a-very-long-webhook-secret" not in str(event)


def test_a_rolled_back_request_leaves_no_audit_event(org, api_for, as_tenant):
    api = api_for(org)
    assert api.post("/roles", json={"name": "Welder"}).status_code == 201
    assert api.post("/roles", json={"name": "Welder"}).status_code == 409
    with as_tenant(org.id) as s:
        roles = s.scalars(select(Role)).all()
        events = s.scalars(select(AuditEvent).where(AuditEvent.entity_type == "role")).all()
    assert len(roles) == 1
    assert [e.entity_id for e in events] == [roles[0].id]


def test_changes_without_an_actor_are_not_audited_and_record_covers_bulk(org, as_tenant):
    with as_tenant(org.id) as s:  # a worker or the CLI: nobody to attribute it to
        s.add(Role(name="Rigger"))
        s.commit()
        assert s.scalars(select(AuditEvent)).all() == []
    context.set_actor("importer")
    try:
        with as_tenant(org.id) as s:
            audit.record(s, "bulk_upsert", "employee", after={"created": 1200, "updated": 3})
            s.commit()
    finally:
        context.set_actor(None)
    with as_tenant(org.id) as s:
        (event,) = s.scalars(select(AuditEvent)).all()
    assert (event.actor, event.action, event.after) == (
        "importer",
        "bulk_upsert",
        {"created": 1200, "updated": 3},
    )


def test_audit_events_filters_scope_and_isolation(org, api_for, make_org):
    api = api_for(org)
    before = datetime.now(UTC) - timedelta(seconds=1)
    first = api.post("/roles", json={"name": "A"}).get_json()
    api.post("/roles", json={"name": "B"})
    assert len(_events(api, entity_type="role")) == 2
    assert [e["entity_id"] for e in _events(api, entity_id=first["id"])] == [first["id"]]
    assert len(_events(api, since=before.isoformat())) == 2
    assert _events(api, until=before.isoformat()) == []
    page = api.get("/audit-events?limit=1").get_json()
    rest = api.get(f"/audit-events?limit=1&cursor={page['next_cursor']}").get_json()
    assert page["items"][0]["id"] != rest["items"][0]["id"]

    in_paris = before.astimezone(timezone(timedelta(hours=1))).isoformat()
    assert len(_events(api, since=in_paris)) == 2  # same instant, other offset
    assert api.get("/audit-events?since=not-a-date").status_code == 422
    edge = api.get("/audit-events?since=" + quote("0001-01-01T00:00:00+05:00"))
    assert edge.status_code == 422
    assert api.get("/audit-events?entity_id=42").status_code == 422
    no_admin = api_for(org, scopes=["certifications:read", "directory:read"])
    resp = no_admin.get("/audit-events")
    assert resp.status_code == 403
    assert "org:admin" in resp.get_json()["message"]
    assert api_for(make_org()).get("/audit-events").get_json()["items"] == []
