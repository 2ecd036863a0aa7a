"""Delivery throughput to a local aiosmtpd sink (`make soak` runs it; figures in benchmarks.md)."""

from __future__ import annotations

import dataclasses
import os
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from certifications.automation.models import Notification
from certifications.automation.notifications import evaluate_rules
from infra import context
from infra import database as db
from tests.automation.conftest import TODAY
from tests.support.suite import SMTP_PORT
from workers.delivery import deliver

N = int(os.environ.get("BENCH_NOTIFICATIONS", "1000"))


@pytest.mark.slow
@pytest.mark.parametrize("threads", [1, 4])
def test_delivery_throughput(make_org, smtp, settings, as_tenant, threads, make_certification):
    org = make_org()
    rule = {"trigger": "before_expiry", "days": 30, "recipients": ["holder"], "channels": ["email"]}
    cert = make_certification(org, notification_rules=[rule])
    from certifications.assignments.models import Assignment
    from certifications.directory.models import Employee

    with as_tenant(org.id) as s:  # arrange N holders in one go
        emps = [Employee(name=f"E{i}", email=f"e{i}@example.test") for i in range(N)]
        s.add_all(emps)
        s.flush()
        s.add_all(
            Assignment(
                certification_id=cert.id,
                subject_type="employee",
                subject_id=e.id,
                issued_on=TODAY - timedelta(days=300),
                expires_on=TODAY + timedelta(days=10),
                status="expires_soon",
            )
            for e in emps
        )
        s.commit()
    t0 = time.perf_counter()
    with as_tenant(org.id) as s:
        assert evaluate_rules(s, org.id, TODAY)["created"] == N
        s.commit()
        ids = list(s.scalars(select(Notification.id)))
    t_eval = time.perf_counter() - t0
    smtp_settings = dataclasses.replace(settings, smtp_host="127.0.0.1", smtp_port=SMTP_PORT)

    def run(nid):
        with context.tenant(org.id):
            return deliver(org.id, nid, settings=smtp_settings).state

    t0 = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        states = list(pool.map(run, ids))
    elapsed = time.perf_counter() - t0
    assert set(states) == {"sent"}
    assert len(smtp.messages) == N
    with as_tenant(org.id) as s:
        sent = s.scalar(select(func.count()).where(Notification.status == "sent"))
    assert sent == N
    print(
        f"\n[bench] backend={db.get_engine().dialect.name} N={N} threads={threads} "
        f"evaluate={t_eval:.3f}s ({N / t_eval:.0f} rows/s) "
        f"deliver={elapsed:.2f}s ({N / elapsed:.0f} messages/s)"
    )
