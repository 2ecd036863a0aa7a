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


def test_rounds_alternate_and_print_the_load_average(capsys):
    """`bench._support.alternate`: a b, a b, a b (never a a a, b b b), medians by name, each
    figure printed with the load average."""
    from bench._support import alternate

    order: list[str] = []
    figures = {"project": iter([3.0, 1.0, 2.0]), "floor": iter([10.0, 30.0, 20.0])}

    def run(name: str) -> float:
        order.append(name)
        return next(figures[name])

    medians = alternate(
        "demo",
        {"project": lambda: run("project"), "floor": lambda: run("floor")},
        before=lambda: order.append("reset"),
    )
    assert order == ["reset", "project", "reset", "floor"] * 3
    assert medians == {"project": 2.0, "floor": 20.0}
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 6
    assert all("load " in line for line in lines)
    assert lines[0].startswith("demo: round 1/3 project 3.0000 s")


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("CERTS_TEST_BACKEND") != "postgres",
    reason="bench api runs gunicorn against PostgreSQL and Redis (the PostgreSQL leg)",
)
def test_bench_api_prints_the_ratios_as_its_last_json_line():
    """`python -m bench api` at a tiny size: both servers answer byte-equal bodies (checked by
    the bench itself before it measures), and the last line has a figure per endpoint."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "BENCH_API_SECONDS": "0.3", "PYTHONPATH": str(root)}
    done = subprocess.run(
        [sys.executable, "-m", "bench", "api", "--size", "60"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    result = json.loads(lines[-1])
    paths = ["GET /org", "GET /employees?limit=50", "GET /views/employees?limit=50"]
    assert result["scenario"] == "api"
    assert result["size"] == 60
    assert list(result["endpoints"]) == paths
    assert list(result["ratios"]) == paths
    for path in paths:
        figure = result["endpoints"][path]
        assert {"scenario", "size", "seconds", "floor_seconds"} <= set(figure)
        assert figure["seconds"] > 0
        assert figure["floor_seconds"] > 0
        assert result["ratios"][path] == figure["ratio"] > 0
    rounds = [line for line in lines if ": round " in line]
    assert len(rounds) == 3 * 2 * 3  # 3 endpoints, project and baseline, 3 rounds each
    assert all("load " in line for line in rounds)
    sides = [line.split(" round ")[1].split()[1] for line in rounds]
    assert sides[:6] == ["project", "baseline"] * 3  # alternating


@pytest.mark.skipif(
    os.environ.get("CERTS_TEST_BACKEND") != "postgres",
    reason="bench views replays the page's SQL on PostgreSQL (the PostgreSQL leg)",
)
def test_bench_views_runs_and_replays_the_pages_sql():
    """`python -m bench views` at a tiny size (~15 s). It broke unseen once: its replay looked for
    the tenant's `set_config` among the recorded statements after that moved into BEGIN."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-m", "bench", "views", "--size", "100"],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["scenario"] == "views"
    assert result["size"] == 100
    for case in ("first_page", "expired_page", "last_page"):
        assert result[case]["floor_p95_ms"] > 0, case
