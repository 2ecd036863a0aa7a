"""The gate check: may this worker (or this piece of equipment) work at this site on this date?

The requirements are every certification required of the subject on the date by any source
(roles, memberships on that date, category, its own site) plus those the site imposes on
whoever works there (the site's `location_ids` requirements and, for employees, its client's
`client_ids` ones), whether or not the subject is on the roster yet. Each is judged by the
subject's record on that date: missing, expired, revoked or upcoming blocks; an exemption
covering the date does not. A certification with `satisfied_by` takes the best status among its
own record and the subject's records of its providers (`assignments.equivalence`, the rule the
assignments follow): `satisfied_via` names the providing record, `expires_on` is its expiry.

Today and ahead: one SQL statement (sources, certifications, records, providers and source
names together); each record's status is projected to the date (`assignments.status`).

A past day answers from history (`history.asof.as_of_rows`), as `/compliance/summary?on=` does:
a subject's own requirement is one its requirement period says was required that day (a manual
assignment counts only while a source applies, as it does today), each record's status is the
one it had with the cycle then in effect, an exemption counts if one covered the day. Two
statements: the day's history of the subject, then the sources of the live statement evaluated
on that day (memberships by their dates) for `sources` and the site's requirements. Read as they
are now: which certifications a site or client imposes, the equivalences, roles (for `sources`
only) and names.
"""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import (
    Date,
    String,
    Uuid,
    and_,
    bindparam,
    cast,
    false,
    func,
    null,
    select,
    true,
    union_all,
)
from sqlalchemy.orm import Session, aliased

from certifications.assignments.equivalence import effective_status
from certifications.assignments.models import Assignment
from certifications.assignments.requirements import (
    SOURCE_KINDS,
    Scope,
    constant,
    required_pairs,
)
from certifications.assignments.status import assignment_status, compute_status
from certifications.catalog.models import (
    Certification,
    CertificationClient,
    CertificationEquivalence,
    CertificationLocation,
)
from certifications.directory.models import Client, Location, Role
from certifications.history.asof import AsOf, as_of_rows
from certifications.vocabulary import EXPIRED, MISSING, REVOKED, UPCOMING

BLOCKING = (MISSING, EXPIRED, REVOKED, UPCOMING)
C, A, EQ = Certification, Assignment, CertificationEquivalence
PC = aliased(Certification, name="provider_certification")
PA = aliased(Assignment, name="provider")


@dataclass
class _Record:
    """One record of the subject as the gate judges it: its status on the day, its expiry."""

    id: uuid.UUID
    status: str
    expires_on: date | None
    exempt: bool = False


@dataclass
class _Requirement:
    certification_id: uuid.UUID
    name: str
    sources: list[dict[str, Any]] = field(default_factory=list)
    required: bool = False  # some source (or, for a past day, history) requires it
    sourced: bool = False  # a past day: one of the subject's own sources applies that day
    own: _Record | None = None
    # provider certification id → its name; and the subject's records of each
    providers: dict[uuid.UUID, str] = field(default_factory=dict)


def gate_check(
    session: Session,
    org_id: uuid.UUID,
    subject_type: str,
    subject_id: uuid.UUID,
    location_id: uuid.UUID | None,
    on: date,
    when: AsOf | None = None,
) -> dict[str, Any]:
    """`{"allowed", "on", "requirements", "blocking"}` for the subject at the site on `on`;
    from history when `when` (a past day) is given."""
    stmt = _statement(subject_type, location_id is not None)
    params = {"gate_org": org_id, "gate_subject": subject_id, "gate_on": on}
    if location_id is not None:
        params["gate_location"] = location_id
    history = None if when is None else _history(session, subject_type, subject_id, when)
    by_cert: dict[uuid.UUID, _Requirement] = {}
    live: dict[uuid.UUID, dict[uuid.UUID, Any]] = {}  # certification → its records (today on)
    providing: dict[uuid.UUID, _Record] = {}  # provider certification → the live record
    for row in session.execute(stmt, params):
        req = by_cert.setdefault(row.certification_id, _Requirement(row.certification_id, row.name))
        # Today and ahead every source row requires; on a past day history decides for the
        # subject's own sources, while what the site imposes applies to whoever is there.
        if when is None or row.imposed:
            req.required = True
        else:
            req.sourced = True
        source = {"kind": row.kind, "id": row.source_id, "name": row.source_name}
        if row.kind == "all":
            source["name"] = "all"
        if source not in req.sources:
            req.sources.append(source)
        if row.provider_certification_id is not None:
            req.providers[row.provider_certification_id] = row.provider_name
        if when is None:
            if row.id is not None:
                live.setdefault(row.certification_id, {})[row.id] = row
            if row.provider_id is not None:
                status = _provider_status(row, on)
                p = _Record(row.provider_id, status, row.provider_expires_on)
                providing[row.provider_certification_id] = p
    records: dict[uuid.UUID, _Record | None]
    if history is None:
        # A provider's own status (one level: never what it is itself satisfied by).
        records = {**providing, **{cid: _live_record(rows, on) for cid, rows in live.items()}}
    else:
        records = {cid: h.record for cid, h in history.items()}
        for cid, h in history.items():
            req = by_cert.setdefault(cid, _Requirement(cid, h.name))
            req.providers |= h.providers
            # A manual or a revoked record's `required` does not follow its sources (the fan-out
            # leaves them be): those count while a source applies that day, as they do today.
            if h.manual or h.record.status == REVOKED:
                req.required |= req.sourced
            else:
                req.required |= h.required
    requirements = [_judge(req, records) for req in by_cert.values() if req.required]
    requirements.sort(key=lambda r: (r["certification_name"].lower(), str(r["certification_id"])))
    blocking = [r for r in requirements if r["status"] in BLOCKING and not r["exempt"]]
    return {
        "allowed": not blocking,
        "on": on,
        "requirements": requirements,
        "blocking": blocking,
    }


def _judge(req: _Requirement, records: dict[uuid.UUID, _Record | None]) -> dict[str, Any]:
    """The requirement's answer: its own record's status, or a provider's when better."""
    own = records.get(req.certification_id)
    offered = [
        (p.id, p.status, pid)
        for pid in req.providers
        if (p := records.get(pid)) is not None and p.status != REVOKED
    ]
    status, via_id = effective_status(
        own.status if own is not None else MISSING, [(i, s) for i, s, _ in offered]
    )
    via = None
    expires_on = own.expires_on if own is not None else None
    if via_id is not None:
        provider_cert = next(pid for i, _, pid in offered if i == via_id)
        via = {
            "certification_id": provider_cert,
            "certification_name": req.providers[provider_cert],
            "assignment_id": via_id,
        }
        expires_on = records[provider_cert].expires_on  # type: ignore[union-attr]
    req.sources.sort(key=lambda s: (SOURCE_KINDS.index(s["kind"]), s["name"] or ""))
    return {
        "certification_id": req.certification_id,
        "certification_name": req.name,
        "sources": req.sources,
        "status": status,
        "expires_on": expires_on,
        "assignment_id": own.id if own is not None else None,
        "exempt": own.exempt if own is not None else False,
        "satisfied_via": via,
    }


def _live_record(rows: dict[uuid.UUID, Any], on: date) -> _Record | None:
    """The live record, else the latest revoked one (a revocation is the subject's record),
    with its status projected to `on`."""
    if not rows:
        return None
    values = list(rows.values())
    live = [r for r in values if r.revoked_at is None]
    row = live[0] if live else max(values, key=lambda r: r.revoked_at)
    exempt = row.exempt_at is not None and (row.exempt_until is None or row.exempt_until >= on)
    return _Record(row.id, assignment_status(row, row, on), row.expires_on, exempt)


def _provider_status(row: Any, on: date) -> str:
    """A provider record's own status on `on` (the row's `provider_*` columns; live)."""
    return compute_status(
        revoked=False,
        issued_on=row.provider_issued_on,
        effective_on=row.provider_effective_on,
        expires_on=row.provider_expires_on,
        forms_required=row.provider_forms_required,
        form_accepted=row.provider_form_accepted_at is not None,
        warning_days=row.provider_warning_days,
        today=on,
    )


# --- a past day ------------------------------------------------------------------------------


@dataclass
class _Then:
    """The subject's record of one certification on a past day, from history."""

    name: str
    required: bool
    manual: bool
    record: _Record
    providers: dict[uuid.UUID, str] = field(default_factory=dict)


def _history(
    session: Session, subject_type: str, subject_id: uuid.UUID, when: AsOf
) -> dict[uuid.UUID, _Then]:
    """certification → the subject's record of it as it stood on `when.on` (one statement)."""
    params = {"gate_subject": subject_id, **when.params("gate_on", "gate_cutoff")}
    out: dict[uuid.UUID, _Then] = {}
    for row in session.execute(_history_statement(subject_type), params):
        then = out.get(row.certification_id)
        if then is None:
            record = _Record(row.assignment_id, row.status, row.expires_on, bool(row.exempt))
            then = _Then(row.name, bool(row.required), row.source == "manual", record)
            out[row.certification_id] = then
        if row.provider_id is not None:
            then.providers[row.provider_id] = row.provider_name
    return out


@functools.cache
def _history_statement(subject_type: str) -> Any:
    """The subject's rows of the day from history, with their certifications' names and
    providers: built once per subject type on bound parameters (building `as_of_rows` costs
    ten times more than running it for one subject)."""
    subject = bindparam("gate_subject", type_=Uuid())
    when = AsOf.bound("gate_on", "gate_cutoff")
    h = as_of_rows(when, include_inactive=True, subject_ids=[subject])
    pc = aliased(Certification, name="provider_certification")
    return (
        select(
            h.c.assignment_id,
            h.c.certification_id,
            h.c.required,
            h.c.status,
            h.c.expires_on,
            h.c.exempt,
            C.name,
            A.source,
            EQ.provider_id,
            pc.name.label("provider_name"),
        )
        .select_from(h)
        .join(C, C.id == h.c.certification_id)
        .outerjoin(A, A.id == h.c.assignment_id)
        .outerjoin(EQ, EQ.certification_id == h.c.certification_id)
        .outerjoin(pc, pc.id == EQ.provider_id)
        .where(h.c.subject_type == constant(subject_type))
    )


# --- the statement ---------------------------------------------------------------------------


@functools.cache
def _statement(subject_type: str, at_site: bool) -> Any:
    """The gate's one SELECT, built once per (subject type, with a site) on bound parameters:
    building this union costs far more than running it (~0.1 ms), and a reused statement
    also reuses its compiled SQL. One row per (requirement, source, record, provider record)."""
    org = bindparam("gate_org", type_=Uuid())
    subject = bindparam("gate_subject", type_=Uuid())
    required = _requirements(org, subject_type, subject, at_site)
    role, client, site = aliased(Role), aliased(Client), aliased(Location)
    return (
        select(
            required.c.certification_id,
            required.c.kind,
            required.c.source_id,
            func.coalesce(required.c.source_name, role.name, client.name, site.name).label(
                "source_name"
            ),
            required.c.imposed,
            C.name,
            C.forms_required,
            C.warning_days,
            A.id,
            A.revoked_at,
            A.issued_on,
            A.effective_on,
            A.expires_on,
            A.form_accepted_at,
            A.exempt_at,
            A.exempt_until,
            EQ.provider_id.label("provider_certification_id"),
            PC.name.label("provider_name"),
            PC.forms_required.label("provider_forms_required"),
            PC.warning_days.label("provider_warning_days"),
            PA.id.label("provider_id"),
            PA.issued_on.label("provider_issued_on"),
            PA.effective_on.label("provider_effective_on"),
            PA.expires_on.label("provider_expires_on"),
            PA.form_accepted_at.label("provider_form_accepted_at"),
        )
        .select_from(required)
        .join(C, and_(C.org_id == org, C.id == required.c.certification_id))
        .outerjoin(
            A,
            and_(
                A.org_id == org,
                A.subject_type == subject_type,  # probes ix_assignments_subject's whole key
                A.subject_id == subject,
                A.certification_id == required.c.certification_id,
            ),
        )
        .outerjoin(role, and_(required.c.kind == "role", role.id == required.c.source_id))
        .outerjoin(client, and_(required.c.kind == "client", client.id == required.c.source_id))
        .outerjoin(site, and_(required.c.kind == "location", site.id == required.c.source_id))
        # Equivalences: the providers of each requirement and the subject's live records of them.
        .outerjoin(EQ, and_(EQ.org_id == org, EQ.certification_id == required.c.certification_id))
        .outerjoin(PC, and_(PC.org_id == org, PC.id == EQ.provider_id))
        .outerjoin(
            PA,
            and_(
                PA.org_id == org,
                PA.subject_type == subject_type,
                PA.subject_id == subject,
                PA.certification_id == EQ.provider_id,
                PA.revoked_at.is_(None),
            ),
        )
    )


def _requirements(org: Any, subject_type: str, subject: Any, at_site: bool) -> Any:
    """The subject's own sources on the date, and what the site imposes on whoever works there
    (`imposed`)."""
    on = bindparam("gate_on", type_=Date())
    own = required_pairs(org, Scope({subject_type: None}, [subject]), on)
    branches = [select(*own.c, _flag(False))]
    if at_site:
        location = bindparam("gate_location", type_=Uuid())
        cl = CertificationLocation
        branches.append(
            _imposed(cl.certification_id, subject_type, subject, "location", cl.location_id)
            .join(C, and_(C.org_id == cl.org_id, C.id == cl.certification_id))
            .where(cl.org_id == org, cl.location_id == location)
            .where(C.type == subject_type, C.archived_at.is_(None))
        )
        if subject_type == "employee":
            cc, site = CertificationClient, Location
            branches.append(
                _imposed(cc.certification_id, subject_type, subject, "client", cc.client_id)
                .join(site, and_(site.org_id == cc.org_id, site.client_id == cc.client_id))
                .join(C, and_(C.org_id == cc.org_id, C.id == cc.certification_id))
                .where(cc.org_id == org, site.id == location)
                .where(C.type == subject_type, C.archived_at.is_(None))
            )
    return union_all(*branches).subquery("gate")


def _flag(value: bool) -> Any:
    """A boolean constant as SQL text (not a bound parameter)."""
    return (true() if value else false()).label("imposed")


def _imposed(cert_col: Any, subject_type: str, subject: Any, kind: str, source: Any) -> Any:
    return select(
        cert_col.label("certification_id"),
        constant(subject_type).label("subject_type"),
        cast(subject, Uuid()).label("subject_id"),
        constant(kind).label("kind"),
        source.label("source_id"),
        cast(null(), String()).label("source_name"),
        _flag(True),
    )
