"""Cron expressions of scheduled reports, evaluated in the organization's time zone (croniter).

Five fields (minute hour day-of-month month day-of-week, Sunday = 0 or 7) or one of `@hourly`,
`@daily`, `@weekly`, `@monthly`, `@yearly`. At most hourly: the minute field is one number.
Across daylight-saving changes a wall-clock time that does not exist runs at the first instant
after it (02:30 on a spring-forward night runs at 03:00), and one that occurs twice runs once
(the first time), like Vixie cron.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import CroniterError, croniter

ALIASES = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
_MINUTE = re.compile(r"[0-5]?[0-9]", re.ASCII)
# How far ahead an expression must match (`0 0 30 2 *` never does: refused).
_HORIZON = timedelta(days=366 * 5)


class CronInvalid(ValueError):
    """The expression is not one a schedule accepts (the message says why)."""


def normalize(expression: str) -> str:
    """The expression as stored (aliases expanded, single spaces); CronInvalid otherwise."""
    text = " ".join(expression.split())
    text = ALIASES.get(text.lower(), text)
    parts = text.split(" ")
    if len(parts) != 5:
        raise CronInvalid("Five fields: minute hour day-of-month month day-of-week.")
    if not _MINUTE.fullmatch(parts[0]):
        raise CronInvalid("At most hourly: the minute field must be one number, 0 to 59.")
    try:
        croniter(text)
    except (CroniterError, ValueError, KeyError) as exc:
        raise CronInvalid(f"Not a valid cron expression: {exc}".rstrip(".") + ".") from exc
    if next_run(text, "UTC", datetime(2000, 1, 1, tzinfo=UTC)) is None:
        raise CronInvalid("The expression never matches a date.")
    return text


def next_run(expression: str, timezone: str, after: datetime) -> datetime | None:
    """The first occurrence strictly after `after` (UTC), evaluated in `timezone`; None when
    there is none within five years."""
    zone = ZoneInfo(timezone)
    start = after.astimezone(zone)
    try:
        it = croniter(expression, start)
        candidate: datetime = it.get_next(datetime)
        # A wall-clock time repeated by a fall-back change: the second one is not a new run.
        while _repeats_wall_clock(candidate, zone):
            candidate = it.get_next(datetime)
    except (CroniterError, ValueError):
        return None
    if candidate - start > _HORIZON:
        return None
    return candidate.astimezone(UTC)


def latest_due(expression: str, timezone: str, since: datetime, now: datetime) -> datetime:
    """The last occurrence in [`since` .. `now`], given `since` is one (a worker that was down
    for several periods makes one run, for the most recent of them)."""
    zone = ZoneInfo(timezone)
    try:
        it = croniter(expression, (now + timedelta(seconds=1)).astimezone(zone))
        candidate: datetime = it.get_prev(datetime)
        while _repeats_wall_clock(candidate, zone):
            candidate = it.get_prev(datetime)
    except (CroniterError, ValueError):
        return since
    return max(since, candidate.astimezone(UTC))


def _repeats_wall_clock(moment: datetime, zone: ZoneInfo) -> bool:
    """True for the second of two instants with the same local wall-clock time."""
    local = moment.astimezone(UTC).astimezone(zone)  # `fold` set by the conversion from UTC
    return local.fold == 1 and local.replace(fold=0).utcoffset() != local.utcoffset()
