"""Certification definitions: create, edit, archive, delete, list (SPEC §4).

Services take the request's session and only flush. Edits that change who must hold a
certification (`role_ids`, `valid_when_added`) or when it expires (`validity`, `warning_days`)
write the matching outbox request in the same transaction; the returned jobs can be polled.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import Select, delete, exists, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from certifications.assignments.models import Assignment
from certifications.assignments.schedule import request_tick
from certifications.assignments.status import validity_days
from certifications.automation.plans import effective_plan, plan_from_rules, rules_from_plan
from certifications.catalog import equivalences, groups
from certifications.catalog.models import (
    Certification,
    CertificationCategory,
    CertificationClient,
    CertificationEquivalence,
    CertificationGroup,
    CertificationGroupMember,
    CertificationLocation,
    CertificationRole,
)
from certifications.directory.models import Client, Employee, Location, Role
from infra.context import require_org_id
from infra.database import get_or_not_found, utcnow
from infra.errors import Conflict, Invalid, NotFound
from jobs.models import Job
from jobs.outbox import request_job

FANOUT_ACTOR, FANOUT_JOB_KIND = "fanout_certification", "role_fanout"
RECOMPUTE_ACTOR, RECOMPUTE_JOB_KIND = "recompute_certification", "recompute"

# Plain columns a client writes directly (the rest are mapped below).
_COLUMNS = (
    "name",
    "type",
    "issuer",
    "description",
    "cost",
    "warning_days",
    "valid_when_added",
    "forms_required",
    "review_required",
    "form",
    "notification_rules",
    "reminder_plan",
    "task_rules",
    "task_assignee_id",
    "applies_to_all",
)
# Link field -> (association model, its column, referenced model, entity name).
_LINKS: dict[str, tuple[Any, str, Any, str]] = {
    "group_ids": (CertificationGroupMember, "group_id", CertificationGroup, "certification group"),
    "role_ids": (CertificationRole, "role_id", Role, "role"),
    "client_ids": (CertificationClient, "client_id", Client, "client"),
    # Certifications whose records satisfy this one (same type, no cycles).
    "satisfied_by": (CertificationEquivalence, "provider_id", Certification, "certification"),
    "location_ids": (CertificationLocation, "location_id", Location, "location"),
}
# The requirement sources each certification type may have (issue 15).
SOURCES: dict[str, tuple[str, ...]] = {
    "employee": ("role_ids", "client_ids", "location_ids"),
    "asset": ("asset_categories", "location_ids"),
    "client": ("client_ids", "applies_to_all"),
    "location": ("location_ids", "client_ids", "applies_to_all"),
}
_SOURCE_FIELDS = ("role_ids", "client_ids", "location_ids", "asset_categories", "applies_to_all")
DEFAULTS: dict[str, Any] = {
    "issuer": None,
    "description": None,
    "cost": None,
    "validity": None,
    "warning_days": 30,
    "valid_when_added": False,
    "forms_required": False,
    "review_required": False,
    "form": None,
    "notification_rules": [],
    "reminder_plan": None,
    "task_rules": [],
    "task_assignee_id": None,
    "group_ids": [],
    "role_ids": [],
    "client_ids": [],
    "satisfied_by": [],
    "location_ids": [],
    "asset_categories": [],
    "applies_to_all": False,
}


def list_statement(
    *,
    group_id: uuid.UUID | None = None,
    recursive: bool = False,
    ungrouped: bool = False,
    type: str | None = None,  # noqa: A002 - the API's filter name
    q: str | None = None,
    archived: bool | None = False,
    updated_since: datetime | None = None,
) -> Select[Any]:
    """The filtered list query; the caller paginates it (by name and id unless sorted)."""
    stmt = select(Certification)
    if updated_since is not None:
        stmt = stmt.where(Certification.updated_at >= updated_since)
    if group_id is not None:
        member = CertificationGroupMember.group_id
        in_group = member.in_(groups.subtree_ids(group_id)) if recursive else member == group_id
        stmt = stmt.where(
            exists().where(CertificationGroupMember.certification_id == Certification.id, in_group)
        )
    if ungrouped:
        stmt = stmt.where(
            ~exists().where(CertificationGroupMember.certification_id == Certification.id)
        )
    if type is not None:
        stmt = stmt.where(Certification.type == type)
    if q:
        stmt = stmt.where(func.lower(Certification.name).contains(q.lower(), autoescape=True))
    if archived is not None:
        stmt = stmt.where(Certification.archived_at.is_not(None) if archived else _live())
    return stmt


def get_certification(session: Session, certification_id: uuid.UUID) -> Certification:
    return get_or_not_found(session, Certification, certification_id, "certification")


def create_certification(session: Session, data: dict[str, Any]) -> dict[str, Any]:
    """Create a definition; with `role_ids`, also ask for the role fan-out."""
    values = {**DEFAULTS, **_plan_and_rules(data)}
    _validate(session, values, values)
    _check_name_free(session, values["name"], None)
    cert = Certification(**{k: values[k] for k in _COLUMNS}, **_validity_columns(values))
    with _named(session, values["name"], None):
        session.add(cert)
    for field in _LINKS:
        _replace_links(session, cert.id, field, values[field])
    _replace_categories(session, cert.id, values["asset_categories"])
    jobs = [_fanout(session, cert)] if any(values[f] for f in _SOURCE_FIELDS) else []
    return describe(session, [cert], jobs)[0]


def update_certification(
    session: Session, certification_id: uuid.UUID, changes: dict[str, Any]
) -> dict[str, Any]:
    """Partial update with the create rules applied to the resulting definition.

    A new `validity` applies to cycles recorded from now on; with `apply_to_current` the
    recompute job also moves the computed expiries of current cycles (its result counts them).
    """
    changes = _plan_and_rules(changes)
    apply_to_current = bool(changes.pop("apply_to_current", False))
    cert = _lock(session, certification_id)
    before = describe(session, [cert])[0]
    after = {**before, **changes}
    _validate(session, after, changes)
    if after["type"] != before["type"] and _has_assignments(session, cert.id, lock=True):
        raise Conflict(
            f"The type of certification {cert.id} cannot change from {before['type']} to "
            f"{after['type']}: it already has assignments, which are {before['type']} records.",
            {"type": ["Cannot change once any assignment exists."]},
        )
    _check_equivalences(session, cert.id, before, after, changes)
    if "name" in changes:
        _check_name_free(session, changes["name"], cert.id)
    with _named(session, after["name"], certification_id):
        for key in _COLUMNS:
            if key in changes:
                setattr(cert, key, changes[key])
        if "validity" in changes:
            for key, value in _validity_columns(after).items():
                setattr(cert, key, value)
    for field in _LINKS:
        if field in changes and set(changes[field]) != set(before[field]):
            _replace_links(session, cert.id, field, changes[field])
    if "asset_categories" in changes:
        _replace_categories(session, cert.id, changes["asset_categories"])
    jobs = []
    if _sources_changed(before, after) or after["valid_when_added"] != before["valid_when_added"]:
        jobs.append(_fanout(session, cert))
    renewal_changed = any(after[k] != before[k] for k in ("validity", "warning_days"))
    if renewal_changed or set(after["satisfied_by"]) != set(before["satisfied_by"]):
        # Also when only `satisfied_by` changed: its holders' statuses follow the new links.
        jobs.append(_recompute(session, cert, apply_to_current))  # requests the tick when done
    elif apply_to_current:
        jobs.append(_recompute(session, cert, True))  # apply the unchanged validity to current
    elif any(after[k] != before[k] for k in ("reminder_plan", "task_rules")):
        request_tick(session)
    return describe(session, [cert], jobs)[0]


def set_archived(
    session: Session, certification_id: uuid.UUID, archived: bool, now: datetime | None = None
) -> dict[str, Any]:
    """Archive (hidden from pickers and default lists, history kept) or bring back."""
    cert = get_certification(session, certification_id)
    if archived and cert.archived_at is None:
        cert.archived_at = now or utcnow()
    elif not archived:
        cert.archived_at = None
    session.flush()
    return describe(session, [cert])[0]


def delete_certification(session: Session, certification_id: uuid.UUID) -> None:
    """Delete a definition that was never assigned; otherwise 409 (archive it instead)."""
    cert = get_certification(session, certification_id)
    count = session.scalar(
        select(func.count()).select_from(Assignment).where(Assignment.certification_id == cert.id)
    )
    if count:
        noun = "assignment" if count == 1 else "assignments"
        raise Conflict(
            f"Certification {cert.id} has {count} {noun} and cannot be deleted; archive it "
            "instead to hide it while keeping its history.",
            {"assignments": [f"{count} {noun} exist."]},
        )
    session.delete(cert)
    session.flush()


def describe(
    session: Session, certs: list[Certification], jobs: Iterable[Job | None] = ()
) -> list[dict[str, Any]]:
    """API-shaped dicts for a page of certifications: links loaded with one query per kind."""
    ids = [c.id for c in certs]
    links: dict[str, dict[uuid.UUID, list[uuid.UUID]]] = {}
    for field, (model, column, _target, _entity) in _LINKS.items():
        by_cert: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
        if ids:
            rows = session.execute(
                select(model.certification_id, getattr(model, column))
                .where(model.certification_id.in_(ids))
                .order_by(getattr(model, column))
            )
            for cert_id, linked in rows:
                by_cert[cert_id].append(linked)
        links[field] = by_cert
    categories: dict[uuid.UUID, list[str]] = defaultdict(list)
    if ids:
        rows = session.execute(
            select(CertificationCategory.certification_id, CertificationCategory.category)
            .where(CertificationCategory.certification_id.in_(ids))
            .order_by(CertificationCategory.category)
        )
        for cert_id, category in rows:
            categories[cert_id].append(category)
    job_refs = [{"id": j.id, "kind": j.kind} for j in jobs if j is not None]
    out = []
    for c in certs:
        item = {k: getattr(c, k) for k in _COLUMNS}
        item |= {
            "reminder_plan": effective_plan(c),
            "id": c.id,
            "validity": _validity_of(c),
            "archived_at": c.archived_at,
            "archived": c.archived_at is not None,
            "created_at": c.created_at,
            "updated_at": c.updated_at,
            "jobs": job_refs,
        }
        item |= {field: links[field].get(c.id, []) for field in _LINKS}
        item["asset_categories"] = categories.get(c.id, [])
        out.append(item)
    return out


def _plan_and_rules(data: dict[str, Any]) -> dict[str, Any]:
    """The plan and its compatible form, `notification_rules`, written together: either one
    given sets both (the rules as the plan's one stage per rule, or the plan's rule-shaped
    stages as rules), so old clients and new ones read what the other wrote."""
    data = dict(data)
    if "reminder_plan" in data and "notification_rules" in data:
        raise Invalid(
            {"notification_rules": ["Give either reminder_plan or notification_rules, not both."]}
        )
    if "notification_rules" in data:
        data["reminder_plan"] = plan_from_rules(data["notification_rules"])
    elif "reminder_plan" in data:
        data["notification_rules"] = rules_from_plan(data["reminder_plan"])
    return data


# --- validation needing the database or several fields --------------------------------------


def _validate(session: Session, values: dict[str, Any], given: dict[str, Any]) -> None:
    """`values` is the resulting definition, `given` what the client sent (errors name it)."""
    errors: dict[str, Any] = {}
    allowed = SOURCES.get(values["type"], ())
    for field in _SOURCE_FIELDS:
        if values[field] and field not in allowed:
            owners = ", ".join(t for t, fs in SOURCES.items() if field in fs)
            errors[field] = [
                f"Only {owners} certifications have {field}; this one is {values['type']}."
            ]
    if values["forms_required"] and not values["form"]:
        errors["form"] = ["Required when forms_required is true."]
    if ("warning_days" in given or "validity" in given) and values["validity"]:
        shortest = validity_days(values["validity"].get("months"), values["validity"].get("days"))
        if values["warning_days"] >= shortest:
            field = "warning_days" if "warning_days" in given else "validity"
            errors[field] = [
                f"warning_days ({values['warning_days']}) must be shorter than the validity "
                f"({shortest} days at the shortest), or every record would always expire soon."
            ]
    for field, (_model, _column, target, entity) in _LINKS.items():
        if field in given and field not in errors:
            unknown = _unknown_ids(session, target, given[field])
            if unknown:
                errors[field] = [f"Unknown {entity} id: {i}" for i in unknown]
    if ("satisfied_by" in given or "type" in given) and "satisfied_by" not in errors:
        mismatched = equivalences.type_errors(session, values["type"], values["satisfied_by"])
        if mismatched:
            errors["satisfied_by" if "satisfied_by" in given else "type"] = mismatched
    if given.get("task_assignee_id") is not None:
        if _unknown_ids(session, Employee, [given["task_assignee_id"]]):
            errors["task_assignee_id"] = ["Unknown employee id."]
    if "task_rules" in given:
        rule_errors = _task_rule_errors(session, given["task_rules"])
        if rule_errors:
            errors["task_rules"] = rule_errors
    if errors:
        raise Invalid(errors)


def _check_equivalences(
    session: Session,
    certification_id: uuid.UUID,
    before: dict[str, Any],
    after: dict[str, Any],
    changes: dict[str, Any],
) -> None:
    """A new type must suit the certifications it satisfies (422 naming `type`); new
    `satisfied_by` links must not close a cycle (409), checked under the org's link lock."""
    if after["type"] != before["type"]:
        broken = equivalences.dependents_of_other_type(session, certification_id, after["type"])
        if broken:
            raise Invalid(
                {
                    "type": [
                        f"Certification {i} lists this one in satisfied_by and is a "
                        f"{before['type']} certification (same type only)."
                        for i in broken
                    ]
                }
            )
    if "satisfied_by" in changes and set(after["satisfied_by"]) != set(before["satisfied_by"]):
        equivalences.lock_equivalences(session, require_org_id())
        equivalences.refuse_cycle(session, certification_id, list(after["satisfied_by"]))


def _unknown_ids(session: Session, model: Any, ids: list[uuid.UUID]) -> list[uuid.UUID]:
    if not ids:
        return []
    found = set(session.scalars(select(model.id).where(model.id.in_(ids))))
    return [i for i in dict.fromkeys(ids) if i not in found]


def _task_rule_errors(session: Session, rules: list[dict[str, Any]]) -> dict[int, Any]:
    wanted = {r["assignee"] for r in rules if r["assignee"] != "holder"}
    unknown = {str(i) for i in _unknown_ids(session, Employee, [uuid.UUID(a) for a in wanted])}
    return {
        index: {"assignee": [f"Unknown employee id: {rule['assignee']}"]}
        for index, rule in enumerate(rules)
        if rule["assignee"] in unknown
    }


def _lock(session: Session, certification_id: uuid.UUID) -> Certification:
    """The certification, re-read with its row locked until the transaction ends.

    Edits of one certification then run one after another, and each reads the links (`before`)
    only once the previous edit committed: replacing them is then really a replacement. Without
    it, two PATCHes of `role_ids` each deleted the links they saw and inserted their own, and
    the certification kept the union (which its fan-out then assigned).
    FOR NO KEY UPDATE (PostgreSQL; SQLite has one writer): it excludes other edits just as well
    but not the KEY SHARE locks of assignment inserts, so an edit neither waits for a running
    fan-out nor holds one up.
    """
    cert = session.scalars(
        select(Certification)
        .where(Certification.id == certification_id)
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    ).one_or_none()
    if cert is None:
        raise NotFound("certification", certification_id)
    return cert


def _has_assignments(session: Session, certification_id: uuid.UUID, lock: bool = False) -> bool:
    """Any assignment, revoked ones included. With `lock`, first take the certification row
    FOR UPDATE (PostgreSQL): an assignment insert in flight holds KEY SHARE on it through its
    foreign key, so the check waits for that insert to commit and then sees it."""
    if lock:
        session.execute(
            select(Certification.id).where(Certification.id == certification_id).with_for_update()
        )
    return bool(
        session.scalar(
            select(Assignment.id).where(Assignment.certification_id == certification_id).limit(1)
        )
    )


def _find_by_name(session: Session, name: str, exclude: uuid.UUID | None) -> uuid.UUID | None:
    stmt = select(Certification.id).where(func.lower(Certification.name) == func.lower(name))
    if exclude is not None:
        stmt = stmt.where(Certification.id != exclude)
    return session.scalar(stmt.limit(1))


def _check_name_free(session: Session, name: str, exclude: uuid.UUID | None) -> None:
    existing = _find_by_name(session, name, exclude)
    if existing is not None:
        raise _name_taken(name, existing)


@contextmanager
def _named(session: Session, name: str, exclude: uuid.UUID | None) -> Iterator[None]:
    """Make the block's changes in a savepoint and flush them; a concurrent insert of the same
    name (the unique index) becomes the same 409. Only the savepoint rolls back, never the
    caller's transaction (its owner commits or rolls it back)."""
    try:
        with session.begin_nested():
            yield
            session.flush()
    except IntegrityError:
        existing = _find_by_name(session, name, exclude)
        if existing is None:
            raise
        raise _name_taken(name, existing) from None


def _name_taken(name: str, existing: uuid.UUID) -> Conflict:
    return Conflict(
        f"A certification named {name!r} already exists: {existing}.",
        {"name": [f"Already used by certification {existing} (names are case-insensitive)."]},
    )


# --- writes ----------------------------------------------------------------------------------


def _replace_links(
    session: Session, certification_id: uuid.UUID, field: str, linked: list[uuid.UUID]
) -> None:
    model, column, _target, _entity = _LINKS[field]
    session.execute(delete(model).where(model.certification_id == certification_id))
    rows = [
        {"org_id": require_org_id(), "certification_id": certification_id, column: i}
        for i in dict.fromkeys(linked)
    ]
    if rows:
        session.execute(insert(model), rows)


def _replace_categories(
    session: Session, certification_id: uuid.UUID, categories: list[str]
) -> None:
    """Stored lower-case: asset categories match ignoring case."""
    model = CertificationCategory
    session.execute(delete(model).where(model.certification_id == certification_id))
    rows = [
        {"org_id": require_org_id(), "certification_id": certification_id, "category": c}
        for c in dict.fromkeys(c.strip().lower() for c in categories)
        if c
    ]
    if rows:
        session.execute(insert(model), rows)


def _sources_changed(before: dict[str, Any], after: dict[str, Any]) -> bool:
    def norm(field: str, value: Any) -> Any:
        if field == "asset_categories":
            return {c.strip().lower() for c in value}
        return set(value) if isinstance(value, list) else value

    return any(norm(f, before[f]) != norm(f, after[f]) for f in _SOURCE_FIELDS)


def _fanout(session: Session, cert: Certification) -> Job | None:
    return request_job(session, FANOUT_ACTOR, job_kind=FANOUT_JOB_KIND, certification_id=cert.id)


def _recompute(session: Session, cert: Certification, apply_to_current: bool) -> Job | None:
    extra: dict[str, Any] = {"apply_to_current": True} if apply_to_current else {}
    return request_job(
        session, RECOMPUTE_ACTOR, job_kind=RECOMPUTE_JOB_KIND, certification_id=cert.id, **extra
    )


def _live() -> Any:
    return Certification.archived_at.is_(None)


def _validity_of(cert: Certification) -> dict[str, int] | None:
    if cert.validity_months is not None:
        return {"months": cert.validity_months}
    if cert.validity_days is not None:
        return {"days": cert.validity_days}
    return None


def _validity_columns(values: dict[str, Any]) -> dict[str, int | None]:
    validity = values.get("validity") or {}
    return {"validity_months": validity.get("months"), "validity_days": validity.get("days")}
