"""Safe retries and rate limits on the live stack (gunicorn workers on PostgreSQL and Redis).

* Duplicates of one `Idempotency-Key` sent at once run once: the others wait on the key's row
  and replay its answer.
* Writers holding the same ETag sent at once: one wins, the others get 412 (the If-Match
  check locks the rows it renders).
* The rate limit is one budget across gunicorn workers: counted in Redis, not per process.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from contextlib import contextmanager

import pytest
from sqlalchemy import func, select

from certifications.directory.models import Employee
from infra import context
from infra import database as db
from tests.concurrency.live import parallel, stack
from tests.support.suite import SETTINGS

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


def test_concurrent_duplicates_of_one_key_create_one_employee(live, make_org, token_for):
    org = make_org()
    token = token_for(org)
    key = {"Idempotency-Key": str(uuid.uuid4())}
    body = {"name": "Racing Ria"}
    answers = parallel(
        8, lambda _i: live.request("POST", "/employees", token, body, headers=key), threads=8
    )
    assert [a.status for a in answers] == [201] * 8
    assert len({a.body for a in answers}) == 1
    assert sum(a.headers.get("idempotent-replayed") == "true" for a in answers) == 7
    with context.tenant(org.id), db.new_session() as s:
        count = s.scalar(
            select(func.count()).select_from(Employee).where(Employee.name == "Racing Ria")
        )
    assert count == 1


def test_concurrent_writers_with_one_etag_only_one_wins(live, make_org, token_for):
    org = make_org()
    token = token_for(org)
    made = live.request("POST", "/roles", token, {"name": "Rigger"}).json()
    etag = live.request("GET", f"/roles/{made['id']}", token).headers["etag"]
    answers = parallel(
        6,
        lambda i: live.request(
            "PATCH",
            f"/roles/{made['id']}",
            token,
            {"name": f"Rigger {i}"},
            headers={"If-Match": etag},
        ),
        threads=6,
    )
    assert Counter(a.status for a in answers) == {200: 1, 412: 5}
    winner = next(a for a in answers if a.status == 200).json()["name"]
    assert live.request("GET", f"/roles/{made['id']}", token).json()["name"] == winner


LIMIT = 20


def test_the_rate_limit_holds_across_two_gunicorn_workers(make_org, token_for, tmp_path):
    org = make_org()
    token = token_for(org)
    env = {
        "RATE_LIMIT_PER_SUBJECT": f"{LIMIT}/minute",
        "RATE_LIMIT_STORAGE_URL": SETTINGS.redis_url or "",
        "REDIS_NAMESPACE": f"certs-limits-{uuid.uuid4().hex[:8]}",
        # One connection per worker at a time: concurrent requests must spread over both
        # workers (otherwise the first worker to wake up may accept them all).
        "GUNICORN_CMD_ARGS": "--worker-connections 1",
    }
    with contextmanager(stack)(tmp_path, api_workers=2, env=env) as live:
        # A fresh connection per request, so each is accepted by whichever worker is free.
        answers = parallel(
            3 * LIMIT,
            lambda _i: live.request("GET", "/roles", token, headers={"Connection": "close"}),
            threads=8,
        )
        statuses = Counter(a.status for a in answers)
        assert statuses == {200: LIMIT, 429: 2 * LIMIT}, statuses
        pids = _serving_pids(tmp_path / "api.out")
        # Fast answers on a busy machine can leave one worker serving the whole burst: keep
        # asking until the other one answers too; with the budget spent, it must refuse.
        for _ in range(20):
            if len(pids) == 2:
                break
            more = parallel(
                16,
                lambda _i: live.request("GET", "/roles", token, headers={"Connection": "close"}),
                threads=8,
            )
            assert {a.status for a in more} == {429}, Counter(a.status for a in more)
            answers += more
            pids = _serving_pids(tmp_path / "api.out")
    assert len(pids) == 2, f"one worker served every request ({pids}): nothing was shared"
    for refused in (a for a in answers if a.status == 429):
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert refused.headers["ratelimit-limit"] == str(LIMIT)
        assert refused.headers["ratelimit-remaining"] == "0"
        assert refused.json()["code"] == 429


def _serving_pids(access_log) -> set[int]:
    """The gunicorn worker processes that wrote an access line for /api/v1/roles."""
    pids = set()
    for line in access_log.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("event") == "request" and entry.get("path") == "/api/v1/roles":
            pids.add(entry.get("pid"))
    return pids
