"""The harness itself: the stack answers, and parallel requests really overlap."""

from __future__ import annotations

import pytest

from tests.concurrency.live import parallel

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


def test_stack_serves_parallel_requests(live, make_org, token_for):
    org = make_org()
    token = token_for(org)
    statuses = parallel(40, lambda i: live.request("GET", "/org", token).status)
    assert statuses == [200] * 40
