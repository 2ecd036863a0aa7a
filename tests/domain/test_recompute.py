"""Set-based recomputation: the SQL rules, status events, chunking, scoping, expiry refresh."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from certifications.assignments import recompute
from certifications.assignments.models import Assignment, StatusEvent
from certifications.assignments.recompute import recompute_statuses, refresh_expiries
from certifications.assignments.status import assignment_status
from certifications.catalog.models import Certification
from tests.conftest import BACKEND

TODAY = date(2026, 6, 15)
D = timedelta(days=1)
NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)


def add_cert(s: Any, **kw: Any) -> Certification:
    cert = Certification(name=kw.pop("name", f"Cert {uuid.uuid4().hex[:8]}"), type="employee", **kw)
    s.add(cert)
    s.flush()
    return cert


def add_assignment(s: Any, cert: Certification, **kw: Any) -> Assignment:
    a = Assignment(
        certification_id=cert.id,
        subject_type="employee",
        subject_id=uuid.uuid4(),
        status=kw.pop("status", "missing"),
        **kw,
    )
    s.add(a)
    s.flush()
    return a


def expected(a: Assignment, cert: Certification, today: date) -> str:
    return assignment_status(a, cert, today)


def _events(s: Any, assignment_id: uuid.UUID | None = None) -> list[StatusEvent]:
    stmt = select(StatusEvent).order_by(StatusEvent.created_at)
    if assignment_id is not None:
        stmt = stmt.where(StatusEvent.assignment_id == assignment_id)
    return list(s.scalars(stmt))


@pytest.fixture
def seeded(org, as_tenant):
    """One assignment per status (stored as 'missing'), over two certifications."""
    with as_tenant(org.id) as s:
        plain = add_cert(s, warning_days=30)
        forms = add_cert(s, warning_days=0, forms_required=True)
        rows = {
            "valid": add_assignment(s, plain, issued_on=TODAY - 10 * D, expires_on=TODAY + 31 * D),
            "soon": add_assignment(s, plain, issued_on=TODAY - 10 * D, expires_on=TODAY + 30 * D),
            "today": add_assignment(s, plain, issued_on=TODAY - 10 * D, expires_on=TODAY),
            "expired": add_assignment(s, plain, issued_on=TODAY - 10 * D, expires_on=TODAY - D),
            "upcoming": add_assignment(
                s, plain, issued_on=TODAY, effective_on=TODAY + D, expires_on=TODAY + 9 * D
            ),
            "missing": add_assignment(s, plain),
            "revoked": add_assignment(
                s, plain, issued_on=TODAY - 10 * D, revoked_at=NOW, revoked_reason="x"
            ),
            "no_form": add_assignment(s, forms, issued_on=TODAY - D),
            "form_ok": add_assignment(
                s, forms, issued_on=TODAY - D, form_accepted_at=NOW, expires_on=TODAY + D
            ),
        }
        s.commit()
        return {k: v.id for k, v in rows.items()}, plain.id, forms.id


def test_recompute_sets_every_status_and_writes_one_event_per_change(org, as_tenant, seeded):
    ids, _, _ = seeded
    with as_tenant(org.id) as s:
        changed = recompute_statuses(s, org.id, TODAY, now=NOW)
        s.commit()
    want = {
        "valid": "valid",
        "soon": "expires_soon",
        "today": "expires_soon",
        "expired": "expired",
        "upcoming": "upcoming",
        "missing": "missing",
        "revoked": "revoked",
        "no_form": "missing",
        "form_ok": "valid",
    }
    with as_tenant(org.id) as s:
        got = {k: s.get(Assignment, i).status for k, i in ids.items()}
        assert got == want
        events = _events(s)
        assert changed == len(events) == 7  # every row but the two that stay 'missing'
        ev = _events(s, ids["expired"])
        assert [(e.from_status, e.to_status, e.on_date) for e in ev] == [
            ("missing", "expired", TODAY)
        ]
        assert s.get(Assignment, ids["expired"]).status_changed_at == NOW
        assert _events(s, ids["missing"]) == []


def test_recompute_is_idempotent_and_follows_the_date(org, as_tenant, seeded):
    ids, _, _ = seeded
    with as_tenant(org.id) as s:
        assert recompute_statuses(s, org.id, TODAY) == 7
        assert recompute_statuses(s, org.id, TODAY) == 0
        s.commit()
    with as_tenant(org.id) as s:
        assert recompute_statuses(s, org.id, TODAY) == 0
        # Two days later: 'today' and 'form_ok' expire, 'soon' still soon, 'upcoming' starts
        # (inside its window), 'valid' enters the window.
        changed = recompute_statuses(s, org.id, TODAY + 2 * D)
        s.commit()
        got = {k: s.get(Assignment, i).status for k, i in ids.items()}
    assert changed == 4
    assert got["today"] == got["form_ok"] == "expired"
    assert got["upcoming"] == "expires_soon"
    assert got["valid"] == "expires_soon"
    with as_tenant(org.id) as s:
        assert len(_events(s)) == 11
        assert [e.to_status for e in _events(s, ids["upcoming"])] == ["upcoming", "expires_soon"]


@pytest.mark.parametrize("chunk_rows", [1, 2, 3, 100, 0])
@pytest.mark.parametrize("by_blocks", [False, True], ids=["id-ranges", "block-ranges"])
def test_chunking_gives_the_same_result(org, as_tenant, seeded, chunk_rows, by_blocks, monkeypatch):
    ids, _, _ = seeded
    if by_blocks:
        if not BACKEND.is_postgres:
            pytest.skip("heap block ranges are PostgreSQL's")
        heap_blocks = recompute._heap_blocks_if_dominant
        monkeypatch.setattr(
            recompute, "_heap_blocks_if_dominant", lambda s, n: heap_blocks(s, 10**12) or 1
        )
    else:
        monkeypatch.setattr(recompute, "_heap_blocks_if_dominant", lambda s, n: None)
    progress: list[tuple[int, int]] = []
    with as_tenant(org.id) as s:
        changed = recompute_statuses(
            s, org.id, TODAY, chunk_rows=chunk_rows, on_chunk=lambda d, t: progress.append((d, t))
        )
        s.commit()
        assert changed == 7
        assert len(_events(s)) == 7
        assert s.get(Assignment, ids["soon"]).status == "expires_soon"
    total = {1: 9, 2: 5, 3: 3, 100: 1, 0: 1}[chunk_rows]
    assert progress == [(i, total) for i in range(1, total + 1)]


def test_scope_by_assignment_ids_and_certification(org, as_tenant, seeded):
    ids, _plain, forms = seeded
    with as_tenant(org.id) as s:
        assert recompute_statuses(s, org.id, TODAY, assignment_ids=[ids["expired"]]) == 1
        assert recompute_statuses(s, org.id, TODAY, assignment_ids=[]) == 0
        assert s.get(Assignment, ids["soon"]).status == "missing"  # not in scope
        assert recompute_statuses(s, org.id, TODAY, certification_id=forms) == 1  # form_ok
        assert s.get(Assignment, ids["soon"]).status == "missing"
        assert s.get(Assignment, ids["form_ok"]).status == "valid"
        assert (
            recompute_statuses(
                s, org.id, TODAY, certification_id=forms, assignment_ids=[ids["soon"]]
            )
            == 0
        )
        s.commit()


def test_another_orgs_rows_are_never_touched(make_org, as_tenant, org, seeded):
    other = make_org()
    with as_tenant(other.id) as s:
        cert = add_cert(s)
        theirs = add_assignment(s, cert, issued_on=TODAY - D).id
        s.commit()
    with as_tenant(org.id) as s:
        assert recompute_statuses(s, org.id, TODAY) == 7
        # Naming the other org's assignment from this tenant changes nothing.
        assert recompute_statuses(s, org.id, TODAY, assignment_ids=[theirs]) == 0
        s.commit()
    with as_tenant(other.id) as s:
        assert s.get(Assignment, theirs).status == "missing"
        assert s.scalar(select(func.count()).select_from(StatusEvent)) == 0


@pytest.mark.parametrize(
    ("validity", "effective", "expected"),
    [
        ({"validity_months": 1}, date(2026, 1, 31), date(2026, 2, 28)),
        ({"validity_months": 1}, date(2028, 1, 31), date(2028, 2, 29)),
        ({"validity_months": 12}, date(2028, 2, 29), date(2029, 2, 28)),
        ({"validity_months": 13}, date(2026, 1, 15), date(2027, 2, 15)),
        ({"validity_months": 6}, date(2026, 8, 31), date(2027, 2, 28)),
        ({"validity_days": 90}, date(2026, 2, 1), date(2026, 5, 2)),
        ({"validity_days": 1}, date(2028, 2, 28), date(2028, 2, 29)),
        ({}, date(2026, 1, 31), None),
    ],
)
def test_refresh_expiries_recomputes_computed_ones_only(
    org, as_tenant, validity, effective, expected
):
    with as_tenant(org.id) as s:
        cert = add_cert(s, **validity)
        computed = add_assignment(
            s, cert, issued_on=effective, effective_on=effective, expires_on=date(2000, 1, 1)
        )
        issued_only = add_assignment(s, cert, issued_on=effective, expires_on=date(2000, 1, 1))
        explicit = add_assignment(
            s, cert, issued_on=effective, expires_on=date(2000, 1, 1), expires_explicit=True
        )
        unrecorded = add_assignment(s, cert)
        assert refresh_expiries(s, org.id, cert.id) == 2
        assert refresh_expiries(s, org.id, cert.id) == 0  # idempotent
        s.commit()
    with as_tenant(org.id) as s:
        assert s.get(Assignment, computed.id).expires_on == expected
        assert s.get(Assignment, issued_only.id).expires_on == expected
        assert s.get(Assignment, explicit.id).expires_on == date(2000, 1, 1)
        assert s.get(Assignment, unrecorded.id).expires_on is None


@pytest.mark.postgres
def test_concurrent_recomputes_record_each_change_once(org, as_tenant, seeded):
    """The second recompute waits on the first one's row locks, re-checks, and finds nothing."""
    import threading

    ids, _, _ = seeded
    result: dict[str, int] = {}
    with as_tenant(org.id) as first:
        assert recompute_statuses(first, org.id, TODAY) == 7  # rows locked, not committed

        def second() -> None:
            with as_tenant(org.id) as s:
                result["changed"] = recompute_statuses(s, org.id, TODAY)
                s.commit()

        thread = threading.Thread(target=second)
        thread.start()
        thread.join(timeout=1.0)
        assert thread.is_alive()  # blocked on the first transaction's locks
        first.commit()
    thread.join(timeout=30)
    assert result == {"changed": 0}
    with as_tenant(org.id) as s:
        assert len(_events(s)) == 7
        assert s.get(Assignment, ids["expired"]).status == "expired"
