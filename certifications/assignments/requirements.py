"""Who must hold what: the requirement sources of certifications, as one SQL union.

A subject is required to hold a certification while ANY of its sources applies (issue 15):

* employee certifications: the employee holds one of its roles (`employee_roles`), or is a
  member, on the date, of one of its clients or locations (`memberships`, dates inclusive);
* asset certifications: the active asset's category (ignoring case) or its location;
* client certifications: the client is linked, or `applies_to_all`;
* location certifications: the location is linked, belongs to a linked client, or
  `applies_to_all`.

`required_pairs` is that rule as one `UNION ALL` of selects on the mapped classes (the session's
tenant criteria scopes every branch; each also filters `org_id` so a Core use stays scoped), one
row per (certification, subject, source). The fan-out inserts and retires from it, the
assignment `sources`, the gate check and the site views read it. Only active subjects count.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Date,
    String,
    Uuid,
    and_,
    cast,
    func,
    literal,
    literal_column,
    null,
    or_,
    select,
    union_all,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import BindParameter

from certifications.catalog.models import (
    Certification,
    CertificationCategory,
    CertificationClient,
    CertificationLocation,
    CertificationRole,
)
from certifications.directory.models import (
    Asset,
    Client,
    Employee,
    EmployeeRole,
    Location,
    Membership,
    Role,
)
from infra.context import require_org_id
from infra.database import utcnow
from tenancy.organizations import org_today_for

SOURCE_KINDS = ("role", "client", "location", "category", "all", "manual")

CR, CC, CL, CCat = (
    CertificationRole,
    CertificationClient,
    CertificationLocation,
    CertificationCategory,
)
E, ER, M = Employee, EmployeeRole, Membership


@dataclass
class Scope:
    """Which live certifications (by type) a query covers, optionally only some subjects."""

    # type → certification ids; None: every unarchived certification of the type (joined in
    # SQL, so a caller needs no query first: the gate check).
    by_type: dict[str, list[uuid.UUID] | None] = field(default_factory=dict)
    subject_ids: Sequence[uuid.UUID] | None = None


def live_certifications(
    session: Session,
    certification_ids: Sequence[uuid.UUID] | None = None,
    *,
    archived: bool = False,
) -> list[Certification]:
    """Certifications that have any requirement source (or only these ones); archived ones
    only when asked (they keep their requirements but create none)."""
    stmt = select(Certification)
    if not archived:
        stmt = stmt.where(Certification.archived_at.is_(None))
    if certification_ids is not None:
        stmt = stmt.where(Certification.id.in_(list(certification_ids)))
    else:
        linked = [
            select(model.certification_id) for model in (CR, CC, CL, CCat)
        ]  # a few rows per certification
        stmt = stmt.where(
            or_(Certification.applies_to_all, Certification.id.in_(union_all(*linked)))
        )
    return list(session.scalars(stmt))


def scope_of(certs: Sequence[Certification], subject_ids: Sequence[uuid.UUID] | None) -> Scope:
    by_type: dict[str, list[uuid.UUID] | None] = {}
    for cert in certs:
        ids = by_type.setdefault(cert.type, [])
        assert ids is not None  # noqa: S101 - only lists are built here
        ids.append(cert.id)
    return Scope(by_type, subject_ids)


def on_date(m: Any, today: date | BindParameter[date]) -> ColumnElement[bool]:
    """The membership counts on `today` (both dates inclusive, either open)."""
    t = today if isinstance(today, BindParameter) else literal(today, Date())
    return and_(
        or_(m.starts_on.is_(None), m.starts_on <= t), or_(m.ends_on.is_(None), m.ends_on >= t)
    )


def required_pairs(org_id: Any, scope: Scope, today: date | BindParameter[date]) -> Any:
    """(certification_id, subject_type, subject_id, kind, source_id, source_name) per source
    that applies on `today`, as a UNION ALL subquery named `required`; None when nothing can.

    `org_id`, `today` and the scope's subject ids may be bound parameters (`bindparam`): a
    statement built once then serves every call (the gate check)."""
    branches = []
    section = ""  # the certification type whose branches `add` is adding
    subjects = list(scope.subject_ids) if scope.subject_ids is not None else None

    def add(
        stmt: Any, cert_col: Any, ids: list[uuid.UUID] | None, subject_col: Any, *where: Any
    ) -> None:
        conditions = list(where)
        if ids is not None:
            conditions.append(cert_col.in_(ids))
        else:
            if cert_col is not Certification.id:
                on = and_(Certification.org_id == org_id, Certification.id == cert_col)
                stmt = stmt.join(Certification, on)
            conditions += [Certification.type == section, Certification.archived_at.is_(None)]
        if subjects is not None:
            conditions.append(subject_col.in_(subjects))
        branches.append(stmt.where(*conditions))

    employee = scope.by_type.get("employee", [])
    if employee is None or employee:
        section = "employee"
        active = E.active.is_(True)
        role = _select(CR.certification_id, "employee", ER.employee_id, "role", CR.role_id)
        add(
            role.select_from(ER)
            .join(CR, and_(CR.org_id == ER.org_id, CR.role_id == ER.role_id))
            .join(E, and_(E.org_id == ER.org_id, E.id == ER.employee_id)),
            CR.certification_id,
            employee,
            ER.employee_id,
            ER.org_id == org_id,
            active,
        )
        # `employees.role_id` (the first role) counts too: writers that know only the one role
        # (older clients, set-based loads) stay correct; DISTINCT downstream drops the repeat.
        first = _select(CR.certification_id, "employee", E.id, "role", CR.role_id)
        add(
            first.select_from(E).join(CR, and_(CR.org_id == E.org_id, CR.role_id == E.role_id)),
            CR.certification_id,
            employee,
            E.id,
            E.org_id == org_id,
            active,
        )
        client = _select(CC.certification_id, "employee", M.employee_id, "client", M.client_id)
        add(
            client.select_from(M)
            .join(CC, and_(CC.org_id == M.org_id, CC.client_id == M.client_id))
            .join(E, and_(E.org_id == M.org_id, E.id == M.employee_id)),
            CC.certification_id,
            employee,
            M.employee_id,
            M.org_id == org_id,
            active,
            on_date(M, today),
        )
        site = _select(CL.certification_id, "employee", M.employee_id, "location", M.location_id)
        add(
            site.select_from(M)
            .join(CL, and_(CL.org_id == M.org_id, CL.location_id == M.location_id))
            .join(E, and_(E.org_id == M.org_id, E.id == M.employee_id)),
            CL.certification_id,
            employee,
            M.employee_id,
            M.org_id == org_id,
            active,
            on_date(M, today),
        )

    def of_subjects(
        model: Any,
        ids: list[uuid.UUID] | None,
        cert_col: Any,
        link: Any,
        on: Any,
        kind: str,
        source_id: Any,
        *where: Any,
        source_name: Any = None,
    ) -> None:
        """A branch over active subjects of `model` (assets, clients, locations) joined to the
        source linking them to a certification."""
        stmt = _select(cert_col, section, model.id, kind, source_id, source_name)
        stmt = stmt.select_from(model).join(link, on)
        add(stmt, cert_col, ids, model.id, model.org_id == org_id, model.active.is_(True), *where)

    everything = Certification.applies_to_all.is_(True)
    asset = scope.by_type.get("asset", [])
    if asset is None or asset:
        section = "asset"
        A_ = Asset
        of_subjects(
            A_, asset, CCat.certification_id, CCat,
            and_(CCat.org_id == A_.org_id, CCat.category == func.lower(A_.category)),
            "category", None, source_name=A_.category,
        )  # fmt: skip
        of_subjects(
            A_, asset, CL.certification_id, CL,
            and_(CL.org_id == A_.org_id, CL.location_id == A_.location_id),
            "location", A_.location_id,
        )  # fmt: skip
    client_certs = scope.by_type.get("client", [])
    if client_certs is None or client_certs:
        section = "client"
        K = Client
        of_subjects(
            K, client_certs, CC.certification_id, CC,
            and_(CC.org_id == K.org_id, CC.client_id == K.id), "client", K.id,
        )  # fmt: skip
        of_subjects(
            K, client_certs, Certification.id, Certification,
            Certification.org_id == K.org_id, "all", None, everything,
        )  # fmt: skip
    location_certs = scope.by_type.get("location", [])
    if location_certs is None or location_certs:
        section = "location"
        L = Location
        of_subjects(
            L, location_certs, CL.certification_id, CL,
            and_(CL.org_id == L.org_id, CL.location_id == L.id), "location", L.id,
        )  # fmt: skip
        of_subjects(
            L, location_certs, CC.certification_id, CC,
            and_(CC.org_id == L.org_id, CC.client_id == L.client_id), "client", L.client_id,
        )  # fmt: skip
        of_subjects(
            L, location_certs, Certification.id, Certification,
            Certification.org_id == L.org_id, "all", None, everything,
        )  # fmt: skip
    if not branches:
        return None
    if len(branches) == 1:
        return branches[0].subquery("required")
    return union_all(*branches).subquery("required")


def _select(
    cert_col: Any,
    subject_type: str,
    subject_col: Any,
    kind: str,
    source_id: Any,
    source_name: Any = None,
) -> Any:
    return select(
        cert_col.label("certification_id"),
        constant(subject_type).label("subject_type"),
        subject_col.label("subject_id"),
        constant(kind).label("kind"),
        # Typed NULLs: the union takes its column types from the first branch.
        (source_id if source_id is not None else cast(null(), Uuid())).label("source_id"),
        (source_name if source_name is not None else cast(null(), String())).label("source_name"),
    )


def constant(word: str) -> Any:
    """A vocabulary word (a subject type, a source kind) as SQL text, not a bound parameter: the
    union carries a dozen of them, and each parameter costs every execution."""
    if not word.isidentifier():
        raise ValueError(f"not a vocabulary word: {word!r}")
    return literal_column(f"'{word}'", String())


def source_names(session: Session, ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    """Names of the roles, clients and locations named by sources: one query."""
    if not ids:
        return {}
    wanted = list(ids)
    stmt = union_all(
        *[select(m.id, m.name).where(m.id.in_(wanted)) for m in (Role, Client, Location)]
    )
    return {row[0]: row[1] for row in session.execute(stmt)}


def sources_for(
    session: Session,
    org_id: uuid.UUID,
    pairs: Sequence[tuple[uuid.UUID, uuid.UUID]],
    certs: Sequence[Certification],
    today: date,
) -> dict[tuple[uuid.UUID, uuid.UUID], list[dict[str, Any]]]:
    """(certification, subject) → its applying sources `{kind, id, name}` on `today`."""
    wanted = set(pairs)
    if not wanted:
        return {}
    scope = scope_of(certs, sorted({s for _, s in wanted}))
    required = required_pairs(org_id, scope, today)
    found: dict[tuple[uuid.UUID, uuid.UUID], list[dict[str, Any]]] = {}
    if required is None:
        return found
    rows = session.execute(
        select(
            required.c.certification_id,
            required.c.subject_id,
            required.c.kind,
            required.c.source_id,
            required.c.source_name,
        )
    ).all()
    names = source_names(session, {r.source_id for r in rows if r.source_id is not None})
    for row in rows:
        key = (row.certification_id, row.subject_id)
        if key not in wanted:
            continue
        name = row.source_name if row.source_id is None else names.get(row.source_id)
        if row.kind == "all":
            name = "all"
        entry = {"kind": row.kind, "id": row.source_id, "name": name}
        if entry not in found.setdefault(key, []):
            found[key].append(entry)
    for key in found:
        found[key].sort(key=lambda s: (SOURCE_KINDS.index(s["kind"]), s["name"] or ""))
    return found


def attach_sources(session: Session, assignments: Sequence[Any]) -> None:
    """Set `sources` on each assignment: why it is required today (manual ones say so too)."""
    if not assignments:
        return
    org_id = require_org_id()
    today = org_today_for(session, org_id, utcnow())
    cert_ids = sorted({a.certification_id for a in assignments})
    certs = live_certifications(session, cert_ids, archived=True)
    pairs = [(a.certification_id, a.subject_id) for a in assignments]
    found = sources_for(session, org_id, pairs, certs, today)
    for a in assignments:
        sources = list(found.get((a.certification_id, a.subject_id), []))
        if a.source == "manual":
            sources.insert(0, {"kind": "manual", "id": None, "name": a.created_by})
        a.sources = sources
