"""Renewal forecast: per calendar month from the org's today, what falls due and what it costs."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from certifications.assignments.models import Assignment
from certifications.assignments.scope import not_exempt, subject_active
from certifications.assignments.status import add_months
from certifications.catalog.models import Certification
from infra.context import require_org_id
from infra.database import without_jit
from tenancy.keys import tenant_join

CENTS = Decimal("0.01")


def _money(value: Decimal) -> str:
    return f"{value.quantize(CENTS)}"


def renewal_forecast(
    session: Session, today: date, months: int, include_inactive: bool = False
) -> dict[str, Any]:
    """Live, required, not exempt assignments of active certifications expiring from `today` to
    the end of the `months`-th calendar month (the current month first), with the sum of their
    costs; assignments of inactive subjects only with `include_inactive`.

    One statement grouped by (expiry date, cost): the months are bucketed here, exact in Decimal.
    """
    without_jit(session)
    first = today.replace(day=1)
    end = add_months(first, months) - timedelta(days=1)
    stmt = (
        select(Assignment.expires_on, Certification.cost, func.count().label("n"))
        .join(Certification, tenant_join(Certification, Assignment, "certification_id"))
        .where(
            Assignment.revoked_at.is_(None),
            Assignment.required.is_(True),
            Certification.archived_at.is_(None),
            Assignment.expires_on >= today,
            Assignment.expires_on <= end,
            not_exempt(Assignment),
        )
        .group_by(Assignment.expires_on, Certification.cost)
    )
    if not include_inactive:
        stmt = stmt.where(subject_active(require_org_id(), Assignment))
    # (renewals, cost) per month
    buckets = {add_months(first, i).strftime("%Y-%m"): (0, Decimal(0)) for i in range(months)}
    for r in session.execute(stmt):
        key = r.expires_on.strftime("%Y-%m")
        n, cost = buckets[key]
        buckets[key] = (n + r.n, cost + Decimal(r.cost or 0) * r.n)
    return {
        "today": today,
        "from": today,
        "to": end,
        "months": [
            {"month": month, "renewals": n, "cost": _money(cost)}
            for month, (n, cost) in buckets.items()
        ],
        "total": {
            "renewals": sum(b[0] for b in buckets.values()),
            "cost": _money(sum((b[1] for b in buckets.values()), Decimal(0))),
        },
    }
