"""Cron of scheduled reports in the org's time zone: occurrences across daylight-saving
changes, the missed-runs rule, and the expressions refused (table-driven)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from certifications.reporting.cron import CronInvalid, latest_due, next_run, normalize


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def occurrences(expression: str, zone: str, after: datetime, n: int) -> list[datetime]:
    out, current = [], after
    for _ in range(n):
        found = next_run(expression, zone, current)
        assert found is not None
        out.append(found)
        current = found
    return out


@pytest.mark.parametrize(
    ("expression", "zone", "after", "expected"),
    [
        # Monday 07:00 in Paris: 06:00 UTC in winter, 05:00 UTC in summer.
        ("0 7 * * 1", "Europe/Paris", utc(2026, 11, 30, 10), [utc(2026, 12, 7, 6)]),
        ("0 7 * * 1", "Europe/Paris", utc(2027, 6, 1), [utc(2027, 6, 7, 5)]),
        # Across the spring change (Paris, 28 March 2027): the same 07:00 wall clock.
        (
            "0 7 * * *",
            "Europe/Paris",
            utc(2027, 3, 27),
            [utc(2027, 3, 27, 6), utc(2027, 3, 28, 5), utc(2027, 3, 29, 5)],
        ),
        # 02:30 does not exist on 28 March 2027 in Paris: that night runs at 03:00 (01:00 UTC).
        (
            "30 2 * * *",
            "Europe/Paris",
            utc(2027, 3, 27),
            [utc(2027, 3, 27, 1, 30), utc(2027, 3, 28, 1), utc(2027, 3, 29, 0, 30)],
        ),
        # 02:30 happens twice on 25 October 2026 in Paris: it runs once, the first time.
        (
            "30 2 * * *",
            "Europe/Paris",
            utc(2026, 10, 24),
            [utc(2026, 10, 24, 0, 30), utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)],
        ),
        # Hourly through the fall-back: the repeated 02:00 hour is not a second run.
        (
            "0 * * * *",
            "Europe/Paris",
            utc(2026, 10, 24, 22, 30),
            [utc(2026, 10, 24, 23), utc(2026, 10, 25, 0), utc(2026, 10, 25, 2)],
        ),
        # New York changes on other days than Paris (1 November 2026).
        (
            "0 9 * * *",
            "America/New_York",
            utc(2026, 10, 31),
            [utc(2026, 10, 31, 13), utc(2026, 11, 1, 14)],
        ),
        # Monthly on the 31st skips the months without one.
        ("0 8 31 * *", "UTC", utc(2026, 3, 31, 9), [utc(2026, 5, 31, 8)]),
    ],
)
def test_occurrences_in_the_org_time_zone(expression, zone, after, expected):
    assert occurrences(expression, zone, after, len(expected)) == expected


def test_latest_due_is_the_last_occurrence_missed_not_the_first():
    first = utc(2026, 12, 7, 6)  # a Monday 07:00 in Paris
    now = utc(2026, 12, 29, 9)
    assert latest_due("0 7 * * 1", "Europe/Paris", first, now) == utc(2026, 12, 28, 6)
    assert latest_due("0 7 * * 1", "Europe/Paris", first, first) == first


@pytest.mark.parametrize(
    ("expression", "stored"),
    [
        ("0 7 * * 1", "0 7 * * 1"),
        ("  0   7 * *  MON-FRI ", "0 7 * * MON-FRI"),
        ("@weekly", "0 0 * * 0"),
        ("@DAILY", "0 0 * * *"),
        ("15 */2 1,15 * *", "15 */2 1,15 * *"),
    ],
)
def test_accepted_expressions_are_stored_normalized(expression, stored):
    assert normalize(expression) == stored


@pytest.mark.parametrize(
    "expression",
    [
        "",
        "0 7 * *",
        "0 7 * * 1 2026",
        "* * * * *",
        "*/15 * * * *",
        "0,30 * * * *",
        "61 7 * * *",
        "0 24 * * *",
        "0 7 32 * *",
        "0 7 * 13 *",
        "0 7 * * 8",
        "0 0 30 2 *",
        "@reboot",
        "a b c d e",
    ],
)
def test_refused_expressions(expression):
    with pytest.raises(CronInvalid):
        normalize(expression)
