"""Property: the set-based SQL and the pure `compute_status` (with `effective_status` for
equivalences) agree on any rows and any date."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from certifications.assignments.equivalence import effective_status
from certifications.assignments.models import Assignment, StatusEvent
from certifications.assignments.recompute import recompute_statuses
from certifications.assignments.status import compute_status
from certifications.catalog.models import Certification, CertificationEquivalence
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


# --- equivalences (`satisfied_by`) -------------------------------------------------------------

# A record spec: revoked?, issued, effective, expires, form accepted, stored status.
record = st.fixed_dictionaries(
    {
        "revoked": st.sampled_from([False, False, False, True]),
        "issued": maybe_date,
        "effective": maybe_date,
        "expires": st.one_of(maybe_date, st.tuples(st.just("warn"), edge)),
        "form_accepted": st.booleans(),
        "stored": st.sampled_from(STATUSES),
        "via_stored": st.booleans(),  # a stale satisfied_via_id to be corrected
    }
)
# Links (dependent, provider) between three certifications; acyclic as the API requires.
links = st.sets(st.sampled_from([(1, 0), (2, 0), (2, 1)]), max_size=3)


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    certs=st.lists(
        st.tuples(st.booleans(), st.integers(min_value=0, max_value=40)), min_size=3, max_size=3
    ),
    links=links,
    # (certification, subject) -> a live record, plus maybe a revoked older one.
    held=st.dictionaries(
        st.tuples(st.integers(0, 2), st.integers(0, 2)),
        st.tuples(record, st.booleans()),
        max_size=9,
    ),
    today_offset=near,
    chunk_rows=st.sampled_from([0, 1, 5]),
)
def test_sql_matches_effective_status(
    make_org, as_tenant, certs, links, held, today_offset, chunk_rows
):
    """The SQL's status and `satisfied_via_id` are `effective_status` over `compute_status`."""
    org = make_org()
    today = BASE + timedelta(days=today_offset)
    subjects = [uuid.uuid4() for _ in range(3)]
    rows: list[tuple[Assignment, int, int, dict]] = []
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
        for dependent, provider in links:
            s.add(
                CertificationEquivalence(
                    certification_id=defs[dependent].id, provider_id=defs[provider].id
                )
            )
        for (ci, si), (r, with_revoked) in held.items():
            cert = defs[ci]
            specs = [r] + ([{**r, "revoked": True}] if with_revoked and not r["revoked"] else [])
            for spec in specs:
                a = Assignment(
                    certification_id=cert.id,
                    subject_type="employee",
                    subject_id=subjects[si],
                    revoked_at=NOW if spec["revoked"] else None,
                    revoked_reason="r" if spec["revoked"] else None,
                    issued_on=_d(spec["issued"], today, cert.warning_days),
                    effective_on=_d(spec["effective"], today, cert.warning_days),
                    expires_on=_d(spec["expires"], today, cert.warning_days),
                    form_accepted_at=NOW if spec["form_accepted"] else None,
                    status=spec["stored"],
                    # Stale providers exist only where links do (a job clears them when the
                    # last link of a certification goes).
                    satisfied_via_id=uuid.uuid4() if spec["via_stored"] and links else None,
                )
                s.add(a)
                s.flush()
                rows.append((a, ci, si, spec))
        own: dict[uuid.UUID, str] = {}
        for a, ci, _si, spec in rows:
            cert = defs[ci]
            own[a.id] = compute_status(
                revoked=spec["revoked"],
                issued_on=a.issued_on,
                effective_on=a.effective_on,
                expires_on=a.expires_on,
                forms_required=cert.forms_required,
                form_accepted=spec["form_accepted"],
                warning_days=cert.warning_days,
                today=today,
            )
        expected: dict[uuid.UUID, tuple[str, uuid.UUID | None]] = {}
        for a, ci, si, _spec in rows:
            providers = [
                (p.id, own[p.id])
                for p, pci, psi, pspec in rows
                if (ci, pci) in links and psi == si and not pspec["revoked"]
            ]
            expected[a.id] = effective_status(own[a.id], providers)
        stored = {a.id: (spec["stored"], a.satisfied_via_id) for a, _c, _s, spec in rows}
        s.commit()
    with as_tenant(org.id) as s:
        changed = recompute_statuses(s, org.id, today, chunk_rows=chunk_rows)
        s.commit()
    with as_tenant(org.id) as s:
        got = {
            i: (status, via)
            for i, status, via in s.execute(
                select(Assignment.id, Assignment.status, Assignment.satisfied_via_id)
            )
        }
        events = s.execute(
            select(StatusEvent.assignment_id, StatusEvent.from_status, StatusEvent.to_status)
        ).all()
    assert got == expected
    assert sorted(events) == sorted(
        (i, stored[i][0], want[0]) for i, want in expected.items() if stored[i][0] != want[0]
    )
    # Rows of linked certifications count once per change (status or provider); the others
    # once per status change, and once more when a stale provider is cleared.
    dependents = {defs_i for defs_i, _provider in links}
    counted = 0
    for a, ci, _si, _spec in rows:
        (old_status, old_via), want = stored[a.id], expected[a.id]
        if ci in dependents:
            counted += (old_status, old_via) != want
        else:
            counted += (old_status != want[0]) + (old_via is not None)
    assert changed == counted
