"""The pure status rules (SPEC §4), table-driven: every branch and every boundary."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from certifications.assignments.status import add_months, compute_expiry, compute_status
from certifications.vocabulary import EXPIRED, EXPIRES_SOON, MISSING, REVOKED, UPCOMING, VALID
from tenancy.organizations import org_today

TODAY = date(2026, 6, 15)
D = timedelta(days=1)


def _status(**kw: object) -> str:
    base: dict[str, object] = {
        "revoked": False,
        "issued_on": date(2026, 1, 1),
        "effective_on": None,
        "expires_on": None,
        "forms_required": False,
        "form_accepted": False,
        "warning_days": 30,
        "today": TODAY,
    }
    base.update(kw)
    return compute_status(**base)


STATUS_CASES = [
    # (id, overrides, expected)
    ("no record", {"issued_on": None}, MISSING),
    ("no record, even with an expiry", {"issued_on": None, "expires_on": TODAY}, MISSING),
    ("revoked wins over missing", {"revoked": True, "issued_on": None}, REVOKED),
    ("revoked wins over valid", {"revoked": True}, REVOKED),
    ("revoked wins over expired", {"revoked": True, "expires_on": TODAY - D}, REVOKED),
    (
        "forms required, none accepted",
        {"forms_required": True, "form_accepted": False},
        MISSING,
    ),
    (
        "forms required, accepted",
        {"forms_required": True, "form_accepted": True},
        VALID,
    ),
    ("accepted form without requirement", {"form_accepted": True}, VALID),
    ("upcoming tomorrow", {"issued_on": TODAY, "effective_on": TODAY + D}, UPCOMING),
    ("effective today is not upcoming", {"issued_on": TODAY, "effective_on": TODAY}, VALID),
    ("issued in the future, no effective date", {"issued_on": TODAY + D}, UPCOMING),
    (
        "upcoming wins over a past expiry",
        {"effective_on": TODAY + D, "expires_on": TODAY - D},
        UPCOMING,
    ),
    ("missing wins over upcoming", {"issued_on": None, "effective_on": TODAY + D}, MISSING),
    ("expired yesterday", {"expires_on": TODAY - D}, EXPIRED),
    ("expired long ago", {"expires_on": date(2020, 1, 1)}, EXPIRED),
    ("expires today (valid through it)", {"expires_on": TODAY}, EXPIRES_SOON),
    ("expires today, warning 0", {"expires_on": TODAY, "warning_days": 0}, EXPIRES_SOON),
    ("tomorrow, warning 0", {"expires_on": TODAY + D, "warning_days": 0}, VALID),
    ("exactly warning_days away", {"expires_on": TODAY + 30 * D}, EXPIRES_SOON),
    ("warning_days + 1 away", {"expires_on": TODAY + 31 * D}, VALID),
    ("inside the window", {"expires_on": TODAY + 5 * D}, EXPIRES_SOON),
    ("big window", {"expires_on": TODAY + 300 * D, "warning_days": 365}, EXPIRES_SOON),
    ("no expiry", {"expires_on": None}, VALID),
    ("far expiry", {"expires_on": date(2099, 12, 31)}, VALID),
]


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [pytest.param(o, e, id=i) for i, o, e in STATUS_CASES],
)
def test_compute_status(overrides: dict[str, object], expected: str) -> None:
    assert _status(**overrides) == expected


@pytest.mark.parametrize(
    ("start", "months", "expected"),
    [
        (date(2026, 1, 15), 1, date(2026, 2, 15)),
        (date(2026, 1, 31), 1, date(2026, 2, 28)),  # clamped
        (date(2028, 1, 31), 1, date(2028, 2, 29)),  # leap year
        (date(2028, 2, 29), 12, date(2029, 2, 28)),  # leap day + a year
        (date(2028, 2, 29), 48, date(2032, 2, 29)),  # leap day + four years
        (date(2026, 3, 31), 1, date(2026, 4, 30)),
        (date(2026, 8, 31), 6, date(2027, 2, 28)),
        (date(2026, 12, 31), 2, date(2027, 2, 28)),
        (date(2026, 11, 30), 1, date(2026, 12, 30)),
        (date(2026, 12, 15), 1, date(2027, 1, 15)),  # year rollover
        (date(2026, 5, 31), 0, date(2026, 5, 31)),
        (date(2026, 1, 31), 25, date(2028, 2, 29)),
        (date(2000, 2, 29), 1200, date(2100, 2, 28)),  # 2100 is not a leap year
    ],
)
def test_add_months_clamps_to_month_end(start: date, months: int, expected: date) -> None:
    assert add_months(start, months) == expected


@pytest.mark.parametrize(
    ("effective", "months", "days", "expected"),
    [
        (None, 12, None, None),
        (date(2026, 1, 31), None, None, None),  # never expires
        (date(2026, 1, 31), 1, None, date(2026, 2, 28)),
        (date(2027, 2, 28), 12, None, date(2028, 2, 28)),
        (date(2028, 2, 29), 12, None, date(2029, 2, 28)),
        (date(2026, 2, 1), None, 90, date(2026, 5, 2)),
        (date(2028, 2, 28), None, 1, date(2028, 2, 29)),  # leap day counted
        (date(2027, 2, 28), None, 1, date(2027, 3, 1)),
        (date(2026, 12, 31), None, 1, date(2027, 1, 1)),
    ],
)
def test_compute_expiry(
    effective: date | None, months: int | None, days: int | None, expected: date | None
) -> None:
    assert compute_expiry(effective, months, days) == expected


@pytest.mark.parametrize(
    ("timezone", "now", "expected"),
    [
        ("UTC", datetime(2026, 11, 29, 23, 30, tzinfo=UTC), date(2026, 11, 29)),
        # Auckland (UTC+13 in November): already tomorrow.
        ("Pacific/Auckland", datetime(2026, 11, 29, 11, 0, tzinfo=UTC), date(2026, 11, 30)),
        ("Pacific/Auckland", datetime(2026, 11, 29, 10, 59, tzinfo=UTC), date(2026, 11, 29)),
        # Los Angeles (UTC-8 in November): still yesterday.
        ("America/Los_Angeles", datetime(2026, 11, 29, 7, 59, tzinfo=UTC), date(2026, 11, 28)),
        ("America/Los_Angeles", datetime(2026, 11, 29, 8, 0, tzinfo=UTC), date(2026, 11, 29)),
        # Summer time in Los Angeles (UTC-7).
        ("America/Los_Angeles", datetime(2026, 7, 1, 6, 59, tzinfo=UTC), date(2026, 6, 30)),
        ("Asia/Kolkata", datetime(2026, 12, 31, 18, 30, tzinfo=UTC), date(2027, 1, 1)),
    ],
)
def test_org_today(timezone: str, now: datetime, expected: date) -> None:
    assert org_today(timezone, now) == expected


def test_status_depends_on_the_org_date() -> None:
    """An assignment expiring on the 29th is expired in Auckland while still soon in LA."""
    now = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    kw = {"issued_on": date(2026, 1, 1), "expires_on": date(2026, 11, 29)}
    assert _status(today=org_today("Pacific/Auckland", now), **kw) == EXPIRED
    assert _status(today=org_today("America/Los_Angeles", now), **kw) == EXPIRES_SOON
