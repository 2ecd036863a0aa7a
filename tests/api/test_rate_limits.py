"""Rate limits on an app of its own with low limits (the suite's app has limits no test reaches).

The limit across two gunicorn workers sharing Redis: tests/concurrency/test_rate_limits_live.py.
"""

from __future__ import annotations

import dataclasses

import pytest

from api import create_app
from tests.conftest import RUNTIME, ApiClient
from tests.support.suite import SETTINGS

PER_SUBJECT = 5
PER_ORG = 8
HEAVY = 2


@pytest.fixture
def limited_app():
    settings = dataclasses.replace(
        SETTINGS,
        rate_limit_per_subject=f"{PER_SUBJECT}/minute",
        rate_limit_per_org=f"{PER_ORG}/minute",
        rate_limit_heavy=f"{HEAVY}/minute",
        rate_limit_storage_url="memory://",  # counters of this app only
    )
    return create_app(settings, RUNTIME)


def _client(app, token_for, org, sub="tester"):
    return ApiClient(app, token_for(org, sub=sub))


def test_the_subject_limit_answers_429_with_retry_after_and_ratelimit_headers(
    limited_app, token_for, org
):
    api = _client(limited_app, token_for, org)
    answers = [api.get("/roles") for _ in range(PER_SUBJECT)]
    assert [r.status_code for r in answers] == [200] * PER_SUBJECT
    assert [r.headers["RateLimit-Remaining"] for r in answers] == [
        str(PER_SUBJECT - n) for n in range(1, PER_SUBJECT + 1)
    ]
    assert answers[0].headers["RateLimit-Limit"] == str(PER_SUBJECT)
    assert 0 < int(answers[0].headers["RateLimit-Reset"]) <= 60
    assert f"{PER_SUBJECT};w=60" in answers[0].headers["RateLimit-Policy"]

    refused = api.get("/roles")
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.headers["RateLimit-Remaining"] == "0"
    body = refused.get_json()
    assert body["code"] == 429
    assert "rate_limit" in body["errors"]
    assert api.post("/roles", json={"name": "Not written"}).status_code == 429


def test_the_org_limit_binds_every_subject_of_the_org(limited_app, token_for, make_org):
    org, other = make_org(), make_org()
    statuses = [
        _client(limited_app, token_for, org, sub=f"user-{n}").get("/roles").status_code
        for n in range(PER_ORG + 1)
    ]
    assert statuses == [200] * PER_ORG + [429]
    assert _client(limited_app, token_for, other).get("/roles").status_code == 200


def test_bulk_and_export_have_their_own_lower_limit(limited_app, token_for, org):
    api = _client(limited_app, token_for, org)
    body = {"items": [{"external_id": "R-1", "name": "Rigger"}]}
    assert [api.post("/roles/bulk", json=body).status_code for _ in range(HEAVY + 1)] == [
        200,
        200,
        429,
    ]
    assert api.get("/roles").status_code == 200  # the general budget is not spent yet


def test_probes_and_docs_are_not_counted(limited_app, token_for, org):
    client = limited_app.test_client()
    for _ in range(PER_SUBJECT + PER_ORG):
        assert client.get("/healthz").status_code == 200
        assert client.get("/api/v1/openapi.json").status_code == 200


def test_requests_without_a_valid_token_are_counted_by_address(limited_app):
    bad = ApiClient(limited_app, "not-a-token")
    statuses = [bad.get("/roles").status_code for _ in range(PER_SUBJECT + 1)]
    assert statuses == [401] * PER_SUBJECT + [429]


def test_the_suites_app_is_not_throttled(api):
    # The suite's limits (tests/support/suite.py) are far above what any test sends.
    resp = api.get("/roles")
    assert int(resp.headers["RateLimit-Remaining"]) > 100_000


def test_unreachable_counters_never_fail_a_request(token_for, org):
    # Nothing listens on port 1: the limiter falls back to counting in memory.
    settings = dataclasses.replace(SETTINGS, rate_limit_storage_url="redis://127.0.0.1:1/0")
    api = ApiClient(create_app(settings, RUNTIME), token_for(org))
    assert [api.get("/roles").status_code for _ in range(3)] == [200, 200, 200]
    assert api.post("/roles", json={"name": "Still works"}).status_code == 201
