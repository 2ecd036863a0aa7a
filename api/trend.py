"""`GET /compliance/trend`: the query's days and scope, then the snapshots or history."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.schemas.history import MAX_TREND_DAYS
from certifications.catalog.groups import subtree_ids
from certifications.catalog.models import CertificationGroupMember
from certifications.directory.models import Location
from certifications.history.asof import AsOf
from certifications.history.scope import resolve_scope
from certifications.history.snapshots import trend, trend_from_history
from infra.database import utcnow
from infra.errors import Invalid
from tenancy.auth import current_organization
from tenancy.organizations import org_today


def compliance_trend(session: Session, args: dict[str, Any]) -> dict[str, Any]:
    timezone = current_organization().timezone
    today = org_today(timezone, utcnow())
    end = args["to"] or today
    start = args["from_"] or end - timedelta(days=29)
    if end > today:
        raise Invalid({"to": [f"Must be today ({today.isoformat()}) or earlier."]})
    if start > end:
        raise Invalid({"from": ["Must not be after `to`."]})
    if (end - start).days >= MAX_TREND_DAYS:
        raise Invalid({"from": [f"At most {MAX_TREND_DAYS} days from `from` to `to`."]})
    certs = _certifications(session, args)
    if args["location_id"] is not None:
        # Like every list's filters, an id of no location of this org matches nothing.
        found = session.get(Location, args["location_id"]) is not None
        if not found:
            return {"from": start, "to": end, "series": []}
        scope = resolve_scope(session, AsOf.of(timezone, end), location_id=args["location_id"])
        assert scope.subject_ids is not None
        series = trend_from_history(session, timezone, start, end, scope.subject_ids, certs)
    else:
        series = trend(session, start, end, certs)
    return {"from": start, "to": end, "series": series}


def _certifications(session: Session, args: dict[str, Any]) -> list[Any] | None:
    """The certification ids asked for (`certification_id`, `group_id`: both narrow), or None
    for all; like every list's filters, an id of another org matches nothing."""
    certs: set[Any] | None = None
    if args["certification_id"] is not None:
        certs = {args["certification_id"]}
    if args["group_id"] is not None:
        members = set(
            session.scalars(
                select(CertificationGroupMember.certification_id).where(
                    CertificationGroupMember.group_id.in_(subtree_ids(args["group_id"]))
                )
            )
        )
        certs = members if certs is None else certs & members
    return None if certs is None else sorted(certs)
