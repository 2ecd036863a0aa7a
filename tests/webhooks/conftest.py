"""Each test's endpoints are disabled when it ends: its receiver is gone, and a round retrying
it would hold up the next test's `jobs.drain()`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import update

from certifications.webhooks.models import WebhookEndpoint
from infra import context
from infra import database as db


@pytest.fixture(autouse=True)
def _endpoints_go_quiet() -> Iterator[None]:
    yield
    with context.platform(), db.new_session() as s:
        s.execute(
            update(WebhookEndpoint)
            .where(WebhookEndpoint.disabled_at.is_(None))
            .values(disabled_at=db.utcnow(), disabled_reason="test over")
            .execution_options(all_tenants=True)
        )
        s.commit()
