"""Rate limits on an app of its own with low limits (the suite's app has limits no test reaches).

The limit across two gunicorn workers sharing Redis: tests/concurrency/test_retries_live.py.
"""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid

import pytest
from limits import parse_many

from api import create_app
from api.rate_limits import Counters
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


@pytest.mark.parametrize(
    ("method", "query", "accept", "heavy"),
    [
        ("GET", "", "", False),
        ("GET", "", "application/json", False),
        ("GET", "?format=csv", "", True),
        ("GET", "", "text/csv", True),
        ("GET", "", "application/json, text/csv;q=0.5", False),  # prefers JSON
        ("GET", "", "text/csv, application/json;q=0.5", True),
        ("GET", "", "text/*", False),
        ("POST", "?format=csv", "text/csv", False),
    ],
)
def test_what_counts_as_an_export(limited_app, method, query, accept, heavy):
    from api.rate_limits import is_heavy

    headers = {"Accept": accept} if accept else {}
    path = "/api/v1/views/employees" + query
    with limited_app.test_request_context(path, method=method, headers=headers):
        assert is_heavy() is heavy


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


# --- Leases on Redis (api.rate_limits.Counters): each Counters is one process's view ---------

needs_redis = pytest.mark.skipif(
    not SETTINGS.redis_url, reason="needs Redis (REDIS_URL): leases are the shared counters'"
)


def _counters(prefix: str) -> Counters:
    counters = Counters(SETTINGS.redis_url or "", prefix)
    assert counters.script is not None
    return counters


def _counting_calls(counters: Counters) -> list[int]:
    calls: list[int] = []
    script = counters.script

    def counted(**kw):
        calls.append(len(kw["keys"]))
        return script(**kw)

    counters.script = counted
    return calls


@needs_redis
def test_a_large_budget_is_leased_and_counted_exactly_by_one_process():
    (item,) = parse_many("1000/minute")  # leases of 10 units
    counters = _counters(f"test-lease-{uuid.uuid4().hex}")
    calls = _counting_calls(counters)
    spent = [counters.hit([(item, "sub:a")])[0] for _ in range(100)]
    assert len(calls) == 10, "one round trip per lease of 10, not one per request"
    assert [s.remaining for s in spent] == list(range(999, 899, -1))
    assert not any(s.refused for s in spent)
    assert all(0 < s.reset <= 60 for s in spent)


@needs_redis
def test_leases_never_serve_past_the_limit_across_processes():
    (item,) = parse_many("1000/minute")
    prefix = f"test-lease-{uuid.uuid4().hex}"
    first, second = _counters(prefix), _counters(prefix)  # two workers sharing Redis
    served = {"first": 0, "second": 0}
    refused = set()
    for n in range(5000):  # interleaved until both are refused
        name, counters = ("first", first) if n % 3 else ("second", second)
        if name in refused:
            continue
        if counters.hit([(item, "sub:a")])[0].refused:
            refused.add(name)
        else:
            served[name] += 1
        if len(refused) == 2:
            break
    assert len(refused) == 2
    # every unit granted was spent, and none beyond the budget
    assert served["first"] + served["second"] == 1000
    assert served["first"] > served["second"] > 0


@needs_redis
def test_a_small_budget_is_counted_request_by_request():
    (item,) = parse_many("20/minute")  # under 100 per window: leases of one unit
    prefix = f"test-lease-{uuid.uuid4().hex}"
    first, second = _counters(prefix), _counters(prefix)
    calls = _counting_calls(first)
    answers = [(first if n % 2 else second).hit([(item, "sub:a")])[0] for n in range(22)]
    assert [a.refused for a in answers] == [False] * 20 + [True] * 2
    assert [a.remaining for a in answers[:20]] == list(range(19, -1, -1))
    assert len(calls) == 11


@needs_redis
def test_a_lease_ends_with_its_window():
    (item,) = parse_many("200/second")  # leases of 2 units, windows of one second
    counters = _counters(f"test-lease-{uuid.uuid4().hex}")
    calls = _counting_calls(counters)
    assert counters.hit([(item, "k")])[0].remaining == 199
    time.sleep(1.1)
    # the unit left over belongs to the window that ended: the count starts again
    assert counters.hit([(item, "k")])[0].remaining == 199
    assert len(calls) == 2


@needs_redis
def test_two_threads_refilling_one_lease_at_once_keep_both_grants():
    """Thread A finds the lease empty and asks Redis; while it waits, thread B does the same
    and stores its grant first. A's grant must join B's, not replace it: every unit granted is
    spent, so exactly the budget is served."""
    (item,) = parse_many("1000/minute")  # leases of 10 units
    counters = _counters(f"test-lease-{uuid.uuid4().hex}")
    script = counters.script
    raced: list[bool] = []

    def slow_first_call(**kw):
        answer = script(**kw)
        if not raced:
            raced.append(True)
            other = threading.Thread(target=counters.hit, args=([(item, "sub:a")],))
            other.start()  # thread B: the lease is still empty, so it asks Redis too
            other.join()
        return answer

    counters.script = slow_first_call
    answers = []
    while not (spent := counters.hit([(item, "sub:a")])[0]).refused:
        answers.append(spent)
    assert raced
    assert len(answers) + 1 == 1000  # thread B's one request, and every other unit to this one
    # the kept lease counts from the later grant: thread A's next answers go on from 2
    assert [a.remaining for a in answers[1:4]] == [997, 996, 995]


def test_the_counted_prefix_is_the_apis():
    from api import API_PREFIX, rate_limits

    assert API_PREFIX + "/" == rate_limits._COUNTED
    assert all(p.startswith(rate_limits._COUNTED) for p in rate_limits._NOT_COUNTED)


def test_token_identity_only_for_a_token_that_verifies(app, org, settings, runtime):
    import dataclasses

    from tenancy.auth import issue_token, token_identity

    token = issue_token(settings, sub="u-rate", org_id=str(org.id), scopes=[])
    with app.test_request_context("/api/v1/org"):
        assert token_identity(token) == (str(org.id), "u-rate")
        assert token_identity(token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]) is None
        assert token_identity("not-a-token") is None
    other = dataclasses.replace(settings, jwt_secret_key="another-secret-" + "z" * 40)
    from api import create_app

    # (the suite's runtime: another bootstrap would replace the process's engine and broker)
    with create_app(other, runtime).test_request_context("/api/v1/org"):
        assert token_identity(token) is None
