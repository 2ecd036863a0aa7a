"""Fixtures of the concurrency suite: one live stack per session, PostgreSQL + Redis only.

Every organization a concurrency test creates is remembered; when the session ends, the
invariants of `consistency.py` and `consistency_links.py` are checked over all of them at once
(0 drifted statuses, 0 duplicate cycles, 0 repeated revocations, 0 stale or missing role
requirements, 0 failed jobs, 0 wrong compliance counts) and the totals are printed in the
terminal summary. A test that forgot to check what it broke still fails the run there. (Link
sets are checked by the tests that sent them: only they know which sets were sent.) The
compliance counts are also verified after every test, for the organizations it created.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from certifications.assignments.models import Assignment
from infra import context
from infra import database as db
from tenancy.models import Organization
from tests.concurrency import consistency, consistency_links
from tests.concurrency.live import Live, stack
from tests.support.factories import wrong_counts
from tests.support.suite import BACKEND

# Organizations created during the concurrency tests of this session.
CREATED: set[uuid.UUID] = set()
# What the final check found, for the terminal summary (None: it did not run).
REPORT: dict[str, int] | None = None


def _org_ids() -> set[uuid.UUID]:
    with context.platform(), db.new_session() as s:
        return set(s.scalars(select(Organization.id)))


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    if not BACKEND.is_postgres:
        pytest.skip("the concurrency suite runs on PostgreSQL with real processes")
    yield from stack(tmp_path_factory.mktemp("live"))


@pytest.fixture(autouse=True)
def _remember_orgs(request: pytest.FixtureRequest) -> Iterator[None]:
    if not BACKEND.is_postgres:
        yield
        return
    before = _org_ids()
    yield
    made = _org_ids() - before
    CREATED.update(made)
    # After every scenario: the maintained compliance counts equal the assignments' figures
    # (read in one snapshot, so exact even while the stack's workers still write).
    wrong = {org_id: found for org_id in sorted(made) if (found := wrong_counts(org_id))}
    assert not wrong, f"compliance counts differ from the assignments: {wrong}"


def check_consistency(org_ids: set[uuid.UUID]) -> dict[str, list[object]]:
    """Every invariant over every organization: the findings per invariant (all empty when
    the run left the data consistent)."""
    found: dict[str, list[object]] = {
        "drifted statuses": [],
        "duplicate cycles": [],
        "repeated revocations": [],
        "stale role requirements": [],
        "missing role requirements": [],
        "failed jobs": [],
        "wrong compliance counts": [],
    }
    for org_id in sorted(org_ids):
        found["drifted statuses"] += consistency.drifted_statuses(org_id)
        found["duplicate cycles"] += consistency.duplicate_cycles(org_id)
        found["repeated revocations"] += consistency.repeated_revocations(org_id)
        found["stale role requirements"] += consistency_links.stale_role_requirements(org_id)
        found["missing role requirements"] += consistency_links.missing_role_requirements(org_id)
        found["failed jobs"] += consistency_links.failed_jobs(org_id)
        found["wrong compliance counts"] += wrong_counts(org_id)
    return found


def _assignments(org_ids: set[uuid.UUID]) -> int:
    total = 0
    for org_id in org_ids:
        with context.tenant(org_id), db.new_session() as s:
            total += s.scalar(select(func.count()).select_from(Assignment)) or 0
    return total


@pytest.fixture(scope="session", autouse=True)
def _consistent_at_the_end() -> Iterator[None]:
    global REPORT
    yield
    if not CREATED:
        return
    found = check_consistency(CREATED)
    REPORT = {
        "organizations": len(CREATED),
        "assignments": _assignments(CREATED),
        **{name: len(rows) for name, rows in found.items()},
    }
    broken = {name: rows[:5] for name, rows in found.items() if rows}
    assert not broken, f"after the concurrency suite: {broken}"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if REPORT is not None:
        terminalreporter.write_line(
            "consistency after the concurrency suite: "
            + ", ".join(f"{value:,} {name}" for name, value in REPORT.items())
        )
