"""Safe retries and concurrency over HTTP: Idempotency-Key, ETag / If-Match, Location, job ids."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from certifications.directory.models import Employee
from infra.database import utcnow
from tenancy.idempotency import IdempotencyKey
from workers.tick import tick_now


def _employees(as_tenant, org, name):
    with as_tenant(org.id) as s:
        return s.scalar(select(func.count()).select_from(Employee).where(Employee.name == name))


# --- Idempotency-Key --------------------------------------------------------------------------


def test_same_key_twice_creates_one_employee_and_replays_the_answer(api, org, as_tenant):
    key = {"Idempotency-Key": str(uuid.uuid4())}
    first = api.post("/employees", json={"name": "Ida Once"}, headers=key)
    again = api.post("/employees", json={"name": "Ida Once"}, headers=key)

    assert first.status_code == again.status_code == 201
    assert again.get_data() == first.get_data()
    assert again.headers["Location"] == first.headers["Location"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert _employees(as_tenant, org, "Ida Once") == 1


def test_same_key_with_another_body_is_422_naming_the_header(api, org, as_tenant):
    key = {"Idempotency-Key": "retry-42"}
    assert api.post("/employees", json={"name": "Ida A"}, headers=key).status_code == 201
    resp = api.post("/employees", json={"name": "Ida B"}, headers=key)
    assert resp.status_code == 422
    assert "Idempotency-Key" in resp.get_json()["errors"]["headers"]
    assert _employees(as_tenant, org, "Ida B") == 0


def test_without_a_key_the_same_post_runs_twice(api, org, as_tenant):
    for _ in range(2):
        assert api.post("/employees", json={"name": "Ida Twice"}).status_code == 201
    assert _employees(as_tenant, org, "Ida Twice") == 2


def test_keys_belong_to_one_organization(api_for, make_org, as_tenant):
    one, two = make_org(), make_org()
    key = {"Idempotency-Key": "shared-key"}
    assert api_for(one).post("/roles", json={"name": "Rigger"}, headers=key).status_code == 201
    resp = api_for(two).post("/roles", json={"name": "Rigger"}, headers=key)
    assert resp.status_code == 201
    assert "Idempotent-Replayed" not in resp.headers


def test_a_failed_request_stores_nothing_and_runs_again(api):
    key = {"Idempotency-Key": "after-a-422"}
    assert api.post("/employees", json={"name": ""}, headers=key).status_code == 422
    assert api.post("/employees", json={"name": "Fixed"}, headers=key).status_code == 201


@pytest.mark.parametrize("key", ["", "x" * 256, "caf\u00e9"], ids=["empty", "long", "non-ascii"])
def test_a_malformed_key_is_422(api, key):
    resp = api.post("/roles", json={"name": "Any"}, headers={"Idempotency-Key": key})
    assert resp.status_code == 422
    assert "Idempotency-Key" in resp.get_json()["errors"]["headers"]


def test_an_expired_key_is_used_again(api, org, as_tenant):
    key = {"Idempotency-Key": "old-key"}
    assert api.post("/roles", json={"name": "Old"}, headers=key).status_code == 201
    with as_tenant(org.id) as s:
        s.execute(
            update(IdempotencyKey)
            .where(IdempotencyKey.key == "old-key")
            .values(expires_at=utcnow() - timedelta(seconds=1))
            .execution_options(synchronize_session=False)
        )
        s.commit()
    resp = api.post("/roles", json={"name": "New"}, headers=key)  # another body: a new key now
    assert resp.status_code == 201
    assert "Idempotent-Replayed" not in resp.headers


def test_the_tick_purges_keys_older_than_24_hours(api, org, as_tenant):
    assert (
        api.post("/roles", json={"name": "K"}, headers={"Idempotency-Key": "k1"}).status_code == 201
    )
    now = tick_now(utcnow(), org.id)["ticks"][str(org.id)]
    assert now["idempotency_keys_purged"] == 0
    later = tick_now(utcnow() + timedelta(hours=24, minutes=1), org.id)["ticks"][str(org.id)]
    assert later["idempotency_keys_purged"] == 1
    with as_tenant(org.id) as s:
        assert s.scalar(select(func.count()).select_from(IdempotencyKey)) == 0


# --- ETag / If-Match --------------------------------------------------------------------------


def _certification(api):
    body = {"name": f"Cert {uuid.uuid4().hex[:6]}", "type": "employee"}
    resp = api.post("/certifications", json=body)
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()["id"]


def test_single_resource_get_has_a_strong_etag_and_answers_304(api):
    cid = _certification(api)
    got = api.get(f"/certifications/{cid}")
    etag = got.headers["ETag"]
    assert etag.startswith('"')
    assert not etag.startswith("W/")
    assert api.get(f"/certifications/{cid}").headers["ETag"] == etag  # stable
    assert api.get(f"/certifications/{cid}", headers={"If-None-Match": etag}).status_code == 304
    assert "ETag" not in api.get("/certifications").headers  # a list is no single resource


def test_stale_if_match_is_412_and_changes_nothing(api):
    cid = _certification(api)
    etag = api.get(f"/certifications/{cid}").headers["ETag"]
    first = api.patch(f"/certifications/{cid}", json={"name": "First"}, headers={"If-Match": etag})
    assert first.status_code == 200
    assert first.headers["ETag"] != etag  # the answer is the new version, with its tag
    assert first.headers["ETag"] == api.get(f"/certifications/{cid}").headers["ETag"]

    stale = api.patch(f"/certifications/{cid}", json={"name": "Second"}, headers={"If-Match": etag})
    assert stale.status_code == 412
    assert "If-Match" in stale.get_json()["errors"]["headers"]
    assert api.get(f"/certifications/{cid}").get_json()["name"] == "First"
    deleted = api.delete(f"/certifications/{cid}", headers={"If-Match": etag})
    assert deleted.status_code == 412

    fresh = api.get(f"/certifications/{cid}").headers["ETag"]
    assert api.delete(f"/certifications/{cid}", headers={"If-Match": fresh}).status_code == 204


def test_if_match_on_directory_items(api):
    made = api.post("/roles", json={"name": "Scaffolder"}).get_json()
    etag = api.get(f"/roles/{made['id']}").headers["ETag"]
    assert api.patch(f"/roles/{made['id']}", json={"name": "Scaffolder II"}).status_code == 200
    resp = api.patch(f"/roles/{made['id']}", json={"name": "X"}, headers={"If-Match": etag})
    assert resp.status_code == 412
    resp = api.patch(f"/roles/{made['id']}", json={"name": "X"}, headers={"If-Match": "*"})
    assert resp.status_code == 200


def test_org_setting_makes_if_match_required_on_certifications_and_groups(api):
    cid = _certification(api)
    gid = api.post("/certification-groups", json={"name": "Lifting"}).get_json()["id"]
    assert api.patch("/org", json={"require_if_match": True}).get_json()["require_if_match"]

    for path, body in (
        (f"/certifications/{cid}", {"name": "N"}),
        (f"/certification-groups/{gid}", {"name": "G"}),
    ):
        missing = api.patch(path, json=body)
        assert missing.status_code == 428, path
        assert "If-Match" in missing.get_json()["errors"]["headers"]
        etag = api.get(path).headers["ETag"]
        assert api.patch(path, json=body, headers={"If-Match": etag}).status_code == 200

    # Other resources keep unconditional writes.
    role = api.post("/roles", json={"name": "Banksman"}).get_json()
    assert api.patch(f"/roles/{role['id']}", json={"name": "Banksman 2"}).status_code == 200


def test_without_the_org_setting_if_match_stays_optional(api):
    cid = _certification(api)
    assert api.patch(f"/certifications/{cid}", json={"name": "Free"}).status_code == 200


# --- Location and job ids ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/roles", {"name": "Welder"}),
        ("/employees", {"name": "Ann"}),
        ("/certification-groups", {"name": "Heights"}),
        ("/certifications", {"name": "Harness", "type": "employee"}),
    ],
    ids=["roles", "employees", "groups", "certifications"],
)
def test_every_201_has_a_location_that_answers_the_resource(api, path, body):
    resp = api.post(path, json=body)
    assert resp.status_code == 201
    location = resp.headers["Location"]
    assert location == f"/api/v1{path}/{resp.get_json()['id']}"
    got = api.client.get(location, headers={"Authorization": f"Bearer {api.token}"})
    assert got.status_code == 200
    assert got.get_json()["id"] == resp.get_json()["id"]


def test_employee_create_and_role_change_return_their_fanout_job(api):
    role = api.post("/roles", json={"name": "Driver"}).get_json()
    other = api.post("/roles", json={"name": "Loader"}).get_json()
    made = api.post("/employees", json={"name": "Dee", "role_id": role["id"]}).get_json()
    assert made["job_id"]
    assert api.get(f"/jobs/{made['job_id']}").status_code == 200

    moved = api.patch(f"/employees/{made['id']}", json={"role_id": other["id"]}).get_json()
    assert moved["job_id"]
    assert moved["job_id"] != made["job_id"]
    renamed = api.patch(f"/employees/{made['id']}", json={"name": "Dee D"}).get_json()
    assert renamed["job_id"] is None  # no role change: no job
    plain = api.post("/employees", json={"name": "No Role"}).get_json()
    assert plain["job_id"] is None


def test_a_malformed_if_match_is_422_naming_the_header(api):
    cid = _certification(api)
    resp = api.patch(f"/certifications/{cid}", json={"name": "Z"}, headers={"If-Match": "abc"})
    assert resp.status_code == 422
    assert "If-Match" in resp.get_json()["errors"]["headers"]


# --- The OpenAPI document says all of it, for every route -------------------------------------


def _operations(doc):
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method in ("get", "post", "put", "patch", "delete"):
                yield path, method, op


def _param_names(doc, op):
    names = set()
    for p in op.get("parameters", []):
        if "$ref" in p:
            p = doc["components"]["parameters"][p["$ref"].rsplit("/", 1)[-1]]
        names.add(p["name"])
    return names


def test_the_document_describes_retries_preconditions_and_limits_everywhere(app):
    doc = app.test_client().get("/api/v1/openapi.json").get_json()
    too_many = doc["components"]["responses"]["TooManyRequests"]["headers"]
    assert {"Retry-After", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"} <= set(
        too_many
    )
    checked = 0
    for path, method, op in _operations(doc):
        responses = op["responses"]
        assert "429" in responses, (method, path)
        if method == "post":
            assert "Idempotency-Key" in _param_names(doc, op), path
        if "201" in responses:
            assert "Location" in responses["201"]["headers"], path
        for status, response in responses.items():
            if "$ref" not in response and status[0] in "24":
                assert "RateLimit-Remaining" in response["headers"], (method, path, status)
        checked += 1
    assert checked > 50
    item = doc["paths"]["/api/v1/certifications/{certification_id}"]
    assert {"412", "428"} <= set(item["patch"]["responses"])
    assert "If-Match" in _param_names(doc, item["patch"])
    assert "412" in item["delete"]["responses"]
    assert "ETag" in item["get"]["responses"]["200"]["headers"]
    assert "428" not in doc["paths"]["/api/v1/roles/{item_id}"]["patch"]["responses"]
