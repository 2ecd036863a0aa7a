"""The `on=YYYY-MM-DD` query argument: which past day a report answers for."""

from __future__ import annotations

from datetime import date

from certifications.history.asof import AsOf
from infra.database import utcnow
from infra.errors import Invalid
from tenancy.auth import current_organization
from tenancy.organizations import org_today


def as_of(on: date | None) -> AsOf | None:
    """None for no day or today (the live figures); the past day otherwise; 422 naming `on`
    for a day after today in the organization's time zone."""
    if on is None:
        return None
    timezone = current_organization().timezone
    today = org_today(timezone, utcnow())
    if on > today:
        raise Invalid({"on": [f"Must be today ({today.isoformat()}) or earlier."]})
    return None if on == today else AsOf.of(timezone, on)
