"""Property: the set-based SQL and the pure `compute_status` agree on any rows and any date."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from certifications.assignments.models import Assignment, StatusEvent
from certifications.assignments.recompute import recompute_statuses
from certifications.assignments.status import compute_status
from certifications.catalog.models import Certification
from certifications.vocabulary import STATUSES

NOW = datetime(2026, 1, 1, tzinfo=UTC)
BASE = date(2026, 3, 1)
near = st.integers(min_value=-45, max_value=45)
edge = st.integers(min_value=-1, max_value=1)
# A date: none, anywhere near, or right at a boundary (today ± 1, today + warning_days ± 1).
maybe_date = st.one_of(
    st.none(),
    st.tuples(st.just("abs"), near),
    st.tuples(st.just("today"), edge),
    st.tuples(st.just("warn"), edge),
)

certs = st.lists(
    st.tuples(st.booleans(), st.integers(min_value=0, max_value=40)), min_size=1, max_size=3
)
rows = st.lists(
    st.fixed_dictionaries(
        {
            "cert": st.integers(min_value=0, max_value=2),
            "revoked": st.sampled_from([False, False, False, True]),
            "issued": maybe_date,
            "effective": maybe_date,
            "expires": st.one_of(maybe_date, st.tuples(st.just("warn"), edge)),
            "form_accepted": st.booleans(),
            "stored": st.sampled_from(STATUSES),
        }
    ),
    min_size=3,
    max_size=12,
)


def _d(spec: tuple[str, int] | None, today: date, warning_days: int) -> date | None:
    if spec is None:
        return None
    kind, offset = spec
    anchor = {"abs": BASE, "today": today, "warn": today + timedelta(days=warning_days)}[kind]
    return anchor + timedelta(days=offset)


# make_org/as_tenant are factories: every example creates its own fresh org, so sharing the
# function-scoped fixtures across examples is safe.
@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(certs=certs, rows=rows, today_offset=near, chunk_rows=st.sampled_from([0, 1, 5]))
def test_sql_matches_compute_status(make_org, as_tenant, certs, rows, today_offset, chunk_rows):
    org = make_org()
    today = BASE + timedelta(days=today_offset)
    expected: dict[uuid.UUID, tuple[str, str]] = {}
    with as_tenant(org.id) as s:
        defs = []
        for i, (forms_required, warning_days) in enumerate(certs):
            c = Certification(
                name=f"c{i}",
                type="employee",
                forms_required=forms_required,
                warning_days=warning_days,
            )
            s.add(c)
            defs.append(c)
        s.flush()
        for r in rows:
            cert = defs[r["cert"] % len(defs)]
            a = Assignment(
                certification_id=cert.id,
                subject_type="employee",
                subject_id=uuid.uuid4(),
                revoked_at=NOW if r["revoked"] else None,
                revoked_reason="r" if r["revoked"] else None,
                issued_on=_d(r["issued"], today, cert.warning_days),
                effective_on=_d(r["effective"], today, cert.warning_days),
                expires_on=_d(r["expires"], today, cert.warning_days),
                form_accepted_at=NOW if r["form_accepted"] else None,
                status=r["stored"],
            )
            s.add(a)
            s.flush()
            want = compute_status(
                revoked=r["revoked"],
                issued_on=a.issued_on,
                effective_on=a.effective_on,
                expires_on=a.expires_on,
                forms_required=cert.forms_required,
                form_accepted=r["form_accepted"],
                warning_days=cert.warning_days,
                today=today,
            )
            expected[a.id] = (r["stored"], want)
        s.commit()
    with as_tenant(org.id) as s:
        changed = recompute_statuses(s, org.id, today, chunk_rows=chunk_rows)
        s.commit()
    with as_tenant(org.id) as s:
        got = {i: st_ for i, st_ in s.execute(select(Assignment.id, Assignment.status))}
        events = s.execute(
            select(StatusEvent.assignment_id, StatusEvent.from_status, StatusEvent.to_status)
        ).all()
        assert s.scalar(select(func.count()).select_from(StatusEvent)) == changed
    assert got == {i: want for i, (_, want) in expected.items()}
    assert sorted(events) == sorted(
        (i, stored, want) for i, (stored, want) in expected.items() if stored != want
    )
