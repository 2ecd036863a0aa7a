"""Which subjects and certifications a report covers: a location, a client, or a group.

The one place a report's scope is resolved (the audit pack, the trend's `location_id`).
Until location and client memberships exist, a location covers itself (its location
certifications), a client itself and its job locations; a group covers its certifications (its
subgroups' too) and the subjects holding one of them on the report's day. Extending a scope
(employees and assets working at a site) is a change here only.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from certifications.catalog.groups import subtree_ids
from certifications.catalog.models import CertificationGroup, CertificationGroupMember
from certifications.directory.models import Client, Location
from certifications.history.asof import AsOf, as_of_rows
from infra.errors import Invalid, NotFound


@dataclass
class ReportScope:
    """`kind` and `id` as asked; `name` for the cover; the subjects (None: every subject of
    the certifications) and certifications (None: all) the report covers."""

    kind: str
    id: uuid.UUID
    name: str
    subject_ids: list[uuid.UUID] | None = None
    certification_ids: list[uuid.UUID] | None = None
    notes: list[str] = field(default_factory=list)


def resolve_scope(
    session: Session,
    when: AsOf,
    *,
    location_id: uuid.UUID | None = None,
    client_id: uuid.UUID | None = None,
    group_id: uuid.UUID | None = None,
) -> ReportScope:
    """Exactly one of the three ids; 422 naming them otherwise, 404 for an id not of this org
    (the message does not repeat the id: it is a query argument, echoed nowhere)."""
    given = {k: v for k, v in (("location_id", location_id), ("client_id", client_id),
                                ("group_id", group_id)) if v is not None}  # fmt: skip
    if len(given) != 1:
        message = "Give exactly one of location_id, client_id, group_id."
        raise Invalid({k: [message] for k in ("location_id", "client_id", "group_id")})
    if location_id is not None:
        location = session.get(Location, location_id)
        if location is None:
            raise NotFound("location")
        return ReportScope("location", location.id, location.name, [location.id])
    if client_id is not None:
        client = session.get(Client, client_id)
        if client is None:
            raise NotFound("client")
        sites = session.scalars(select(Location.id).where(Location.client_id == client.id))
        return ReportScope("client", client.id, client.name, [client.id, *sites])
    assert group_id is not None
    group = session.get(CertificationGroup, group_id)
    if group is None:
        raise NotFound("certification group")
    certs = list(
        session.scalars(
            select(CertificationGroupMember.certification_id)
            .where(CertificationGroupMember.group_id.in_(subtree_ids(group.id)))
            .distinct()
        )
    )
    rows = as_of_rows(when)
    holders = session.scalars(
        select(rows.c.subject_id).where(rows.c.certification_id.in_(certs)).distinct()
    )
    return ReportScope("group", group.id, group.name, list(holders), certs)
