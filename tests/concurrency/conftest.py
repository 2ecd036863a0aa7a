"""Fixtures of the concurrency suite: one live stack per session, PostgreSQL + Redis only."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.concurrency.live import Live, stack
from tests.support.suite import BACKEND


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    if not BACKEND.is_postgres:
        pytest.skip("the concurrency suite runs on PostgreSQL with real processes")
    yield from stack(tmp_path_factory.mktemp("live"))
