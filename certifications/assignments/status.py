"""The status rules of SPEC §4, as one pure function, and the date arithmetic they rely on.

Time is passed in (`today`), never read here. The same rules as set-based SQL live beside the
recomputation (`assignments.recompute`), and a property test keeps the two in agreement.
"""

from __future__ import annotations

import calendar
from datetime import date, timedelta
from typing import Any

from certifications.vocabulary import EXPIRED, EXPIRES_SOON, MISSING, REVOKED, UPCOMING, VALID


def add_months(start: date, months: int) -> date:
    """Calendar months, clamped to the end of a shorter month (Jan 31 + 1 month = Feb 28/29)."""
    month_index = start.month - 1 + months
    year, month = start.year + month_index // 12, month_index % 12 + 1
    day = min(start.day, calendar.monthrange(year, month)[1])
    return date(year, month, day)


def compute_expiry(
    effective_on: date | None, validity_months: int | None, validity_days: int | None
) -> date | None:
    """`effective_on + validity`; None without a record or when it never expires."""
    if effective_on is None:
        return None
    if validity_months:
        return add_months(effective_on, validity_months)
    if validity_days:
        return effective_on + timedelta(days=validity_days)
    return None


def validity_days(months: int | None, days: int | None) -> int | None:
    """The shortest cycle a validity gives, in days (12 months: 365; 1 month: 28); None =
    never expires. A warning window this long or longer is "expires soon" from day one."""
    if months:
        # Every combination of month lengths occurs within four years from a leap year's start.
        starts = (date(2000, 1, 1) + timedelta(days=i) for i in range(4 * 366))
        return min((add_months(d, months) - d).days for d in starts)
    return days or None


def compute_status(
    *,
    revoked: bool,
    issued_on: date | None,
    effective_on: date | None,
    expires_on: date | None,
    forms_required: bool,
    form_accepted: bool,
    warning_days: int,
    today: date,
) -> str:
    """First match wins: revoked, missing, upcoming, expired, expires soon, valid."""
    if revoked:
        return REVOKED
    if issued_on is None or (forms_required and not form_accepted):
        return MISSING
    if (effective_on or issued_on) > today:
        return UPCOMING
    if expires_on is not None:
        if expires_on < today:
            return EXPIRED
        if (expires_on - today).days <= warning_days:
            return EXPIRES_SOON
    return VALID


def assignment_status(assignment: Any, certification: Any, today: date) -> str:
    """`compute_status` for an assignment row and its certification (ORM objects or rows)."""
    return compute_status(
        revoked=assignment.revoked_at is not None,
        issued_on=assignment.issued_on,
        effective_on=assignment.effective_on,
        expires_on=assignment.expires_on,
        forms_required=certification.forms_required,
        form_accepted=assignment.form_accepted_at is not None,
        warning_days=certification.warning_days,
        today=today,
    )
