"""Bulk upsert of directory rows by `external_id`, and CSV import into it (SPEC §4).

A request of up to `MAX_ROWS` rows costs a few statements whatever its size: one SELECT of the
referenced roles/clients, one of the rows already stored under these external ids (plus one of
clashing names for roles), then one `INSERT … ON CONFLICT (org_id, external_id) DO UPDATE` for
every created or changed row. Rows are plain dicts and tuples, never ORM objects.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterable
from typing import Any, NamedTuple

from sqlalchemy import Select, bindparam, delete, func, insert, literal, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from certifications.audit import trail as audit
from certifications.directory.models import EmployeeRole
from certifications.directory.service import (
    ROLE_INPUTS,
    Kind,
    active_holders,
    activity_changed,
    fanout_state,
    held_message,
    lookup_roles,
    request_fanout,
    roles_given,
)
from infra.context import require_org_id
from infra.database import utcnow
from infra.dialect import upsert_insert
from infra.errors import Invalid

MAX_ROWS = 10_000
# Rows per IN (...) list: far below SQLite's and PostgreSQL's bound-parameter limits.
IN_CHUNK = 5_000

RowErrors = dict[str, list[str]]


class _Plan(NamedTuple):
    """What one valid row will do: `old` is the stored row (None: created)."""

    row_index: int  # `index` would shadow tuple.index
    status: str
    old: dict[str, Any] | None
    new: dict[str, Any]
    item_id: uuid.UUID


def bulk_upsert(
    session: Session,
    kind: Kind,
    rows: list[tuple[int, dict[str, Any]]],
    row_errors: dict[int, RowErrors],
    *,
    atomic: bool = False,
    lines: dict[int, int] | None = None,
) -> dict[str, Any]:
    """Create or update `rows` (index, validated fields) by external id; report every index.

    `row_errors` are rows that already failed validation. Valid rows are written even when
    others failed, unless `atomic`: then any error raises `Invalid` carrying the report and
    nothing is written.
    """
    errors = dict(row_errors)
    rows = _drop_duplicates(rows, errors)
    existing = _existing(session, kind, [data["external_id"] for _, data in rows])
    if kind.name == "employee":
        rows = _resolve_roles(session, rows, errors, existing)
    rows = _check_references(session, kind, rows, errors, existing)
    if kind.name == "role":
        rows = _check_role_names(session, kind, rows, errors)
    if kind.name == "employee":
        rows = _check_unique_values(session, kind, "user_sub", rows, errors)

    planned: list[_Plan] = []
    for index, data in rows:
        old = existing.get(data["external_id"])
        if old is None:
            blank: dict[str, Any] = {f: None for f in kind.fields} | {"active": True}
            if kind.name == "employee":
                blank["role_ids"] = [data["role_id"]] if data.get("role_id") else []
            new = blank | data
            status, item_id = "created", uuid.uuid4()
        else:
            new = old | data
            item_id = new.pop("id")
            old = {k: v for k, v in old.items() if k != "id"}
            status = "unchanged" if new == old else "updated"
        planned.append(_Plan(index, status, old, new, item_id))
    if kind.name == "role":
        planned = _refuse_held_roles(session, planned, errors)

    results: dict[int, dict[str, Any]] = {}
    writes: list[dict[str, Any]] = []
    fanout: list[str] = []
    roles_changed: list[str] = []
    leavers: list[str] = []  # subjects this request deactivates
    activity = False
    for index, status, old, new, item_id in planned:
        external_id = new["external_id"]
        results[index] = {"index": index, "external_id": external_id, "status": status}
        results[index]["id"] = item_id
        if status != "unchanged":
            writes.append({f: new[f] for f in kind.fields} | {"id": item_id})
            if kind.name == "employee" and (old is None or old["role_ids"] != new["role_ids"]):
                roles_changed.append(external_id)
            if _affects_requirements(kind.name, old, new):
                fanout.append(external_id)
            if kind.name != "role" and old is not None and old["active"] != new["active"]:
                activity = True
                if not new["active"]:
                    leavers.append(external_id)

    for index, errs in errors.items():
        results[index] = _error_row(index, errs)
    if atomic and errors:
        raise _atomic_error(_report(results, lines, job_id=None), errors)

    # The ids the database kept: a row created concurrently since our SELECT keeps its own.
    # Written in external-id order, so two overlapping imports lock their common rows in the
    # same order and queue behind each other instead of deadlocking.
    writes.sort(key=lambda write: write["external_id"])
    ids = _upsert(session, kind, writes)
    for result in results.values():
        if result["status"] in ("created", "updated"):
            result["id"] = ids[result["external_id"]]
    if roles_changed:
        by_external = {p.new["external_id"]: p.new["role_ids"] for p in planned}
        _replace_roles(session, {ids[e]: by_external[e] for e in roles_changed})
    job = request_fanout(session, [ids[e] for e in fanout], kind.name)
    if activity:
        activity_changed(session, [ids[e] for e in leavers])
    _audit(session, kind.name, results.values())
    return _report(results, lines, job_id=job.id if job else None)


def _audit(session: Session, kind: str, results: Iterable[dict[str, Any]]) -> None:
    """One audit event per bulk request (no flush sees set-based writes): what changed, by id."""
    changed: dict[str, list[str]] = {"created": [], "updated": []}
    for result in results:
        if result["status"] in changed:
            changed[result["status"]].append(str(result["id"]))
    if changed["created"] or changed["updated"]:
        audit.record(session, "bulk_upsert", kind, after=changed)


def parse_csv(text: str, allowed: Iterable[str], nullable: Iterable[str]) -> list[dict[str, Any]]:
    """Rows of a CSV body with a header of field names; an empty cell clears a nullable field.

    An empty cell of any other field is left out, so it keeps its value (or its default). A row
    with more cells than the header gets a `_extra` key the row validation then refuses.
    """
    allowed, nullable = set(allowed), set(nullable)
    reader = csv.DictReader(io.StringIO(text, newline=""), restkey="_extra")
    header = reader.fieldnames or []
    problems = []
    if not header:
        problems.append("The body needs a header row naming the columns.")
    unknown = [c for c in header if c not in allowed]
    if unknown:
        problems.append(f"Unknown column(s): {', '.join(unknown)}. Allowed: {sorted(allowed)}.")
    if len(set(header)) != len(header):
        problems.append("A column appears twice in the header.")
    if problems:
        raise Invalid({"csv": {"header": problems}}, "The CSV header is not usable.")
    rows: list[dict[str, Any]] = []
    try:
        for raw in reader:
            if len(rows) >= MAX_ROWS:
                raise Invalid({"csv": [f"At most {MAX_ROWS} rows per request."]})
            row: dict[str, Any] = {"_line": reader.line_num}
            for key, value in raw.items():
                if key == "_extra":
                    row["_extra"] = value
                elif value is None or value == "":
                    if key in nullable:
                        row[key] = None
                else:
                    row[key] = value
            rows.append(row)
    except csv.Error as exc:
        raise Invalid({"csv": [f"Line {reader.line_num}: {exc}"]}) from exc
    return rows


def _drop_duplicates(
    rows: list[tuple[int, dict[str, Any]]], errors: dict[int, RowErrors]
) -> list[tuple[int, dict[str, Any]]]:
    first: dict[str, int] = {}
    kept = []
    for index, data in rows:
        seen = first.setdefault(data["external_id"], index)
        if seen != index:
            errors[index] = {"external_id": [f"Duplicate of row {seen} in this request."]}
        else:
            kept.append((index, data))
    return kept


def _check_references(
    session: Session,
    kind: Kind,
    rows: list[tuple[int, dict[str, Any]]],
    errors: dict[int, Any],
    existing: dict[str, dict[str, Any]],
) -> list[tuple[int, dict[str, Any]]]:
    """Refuse rows naming a client, location or employee unknown here (another org's), or
    inactive unless kept (an employee's roles are checked by `_resolve_roles`)."""
    for ref in kind.references:
        if kind.name == "employee" and ref.field == "role_id":
            continue
        wanted = {data[ref.field] for _, data in rows if data.get(ref.field) is not None}
        known: dict[uuid.UUID, bool] = {}
        for chunk in _chunks(sorted(wanted)):
            stmt = _among(session, select(ref.model.id, ref.model.active), ref.model.id, chunk)
            known.update(session.execute(stmt).all())
        kept = []
        for index, data in rows:
            target = data.get(ref.field)
            if target is not None and target not in known:
                errors[index] = {ref.field: [f"Unknown {ref.entity}."]}
            elif (
                target is not None and not known[target] and target != _stored(existing, data, ref)
            ):
                errors[index] = {ref.field: [f"The {ref.entity} is inactive."]}
            else:
                kept.append((index, data))
        rows = kept
    return rows


def _resolve_roles(
    session: Session,
    rows: list[tuple[int, dict[str, Any]]],
    errors: dict[int, Any],
    existing: dict[str, dict[str, Any]],
) -> list[tuple[int, dict[str, Any]]]:
    """Each row's roles, from whichever of `ROLE_INPUTS` it gives, as `role_ids` (and `role_id`,
    the first): one lookup per way of naming roles for the whole request."""
    wanted: dict[str, set[Any]] = {field: set() for field in ROLE_INPUTS}
    for _, data in rows:
        for field in ROLE_INPUTS:
            value = data.get(field)
            wanted[field].update(value if isinstance(value, list) else [value] if value else [])
    found = {
        field: lookup_roles(session, field, sorted(values, key=str))
        for field, values in wanted.items()
        if values
    }
    kept = []
    for index, data in rows:
        given = roles_given(data)
        if not given:
            kept.append((index, data))
            continue
        for f in ROLE_INPUTS:  # empty siblings of the one kept
            if f in data and f not in given:
                del data[f]
        if len(given) > 1:
            errors[index] = {given[1]: [f"Give the roles one way: {' or '.join(ROLE_INPUTS)}."]}
            continue
        field = given[0]
        value = data.pop(field)
        values = [] if value is None else value if isinstance(value, list) else [value]
        known = found.get(field, {})
        stored = set(existing.get(data["external_id"], {}).get("role_ids") or [])
        unknown = [v for v in values if v not in known]
        inactive = [v for v in values if v in known and not known[v][1]]
        inactive = [v for v in inactive if known[v][0] not in stored]
        if unknown:
            single = field == "role_id"
            errors[index] = {
                field: ["Unknown role."] if single else [f"Unknown role: {v}" for v in unknown]
            }
        elif inactive:
            errors[index] = {field: [f"The role is inactive: {v}" for v in inactive]}
        else:
            roles = list(dict.fromkeys(known[v][0] for v in values))
            data["role_ids"] = roles
            data["role_id"] = roles[0] if roles else None
            kept.append((index, data))
    return kept


def _replace_roles(session: Session, roles: dict[uuid.UUID, list[uuid.UUID]]) -> None:
    """Set these employees' roles: one DELETE and one INSERT per chunk."""
    org_id = require_org_id()
    employees = sorted(roles)
    for chunk in _chunks(employees):
        session.execute(delete(EmployeeRole).where(EmployeeRole.employee_id.in_(chunk)))
        links = [
            {"org_id": org_id, "employee_id": e, "role_id": r, "position": i}
            for e in chunk
            for i, r in enumerate(roles[e])
        ]
        if links:
            session.execute(insert(EmployeeRole), links)


def _stored(existing: dict[str, dict[str, Any]], data: dict[str, Any], ref: Any) -> Any:
    return existing.get(data["external_id"], {}).get(ref.field)


def _check_role_names(
    session: Session, kind: Kind, rows: list[tuple[int, dict[str, Any]]], errors: dict[int, Any]
) -> list[tuple[int, dict[str, Any]]]:
    """Role names are unique per org: refuse a name another role (or an earlier row) holds."""
    model = kind.model
    holders: dict[str, str | None] = {}
    for chunk in _chunks(sorted({data["name"] for _, data in rows})):
        stmt = _among(session, select(model.name, model.external_id), model.name, chunk)
        holders.update(session.execute(stmt).all())
    first: dict[str, int] = {}
    kept = []
    for index, data in rows:
        name = data["name"]
        seen = first.setdefault(name, index)
        if name in holders and holders[name] != data["external_id"]:
            errors[index] = {"name": ["Already used by another role."]}
        elif seen != index:
            errors[index] = {"name": [f"Same name as row {seen} in this request."]}
        else:
            kept.append((index, data))
    return kept


def _check_unique_values(
    session: Session,
    kind: Kind,
    field: str,
    rows: list[tuple[int, dict[str, Any]]],
    errors: dict[int, Any],
) -> list[tuple[int, dict[str, Any]]]:
    """An optional per-org unique value (an employee's `user_sub`): refuse one another row
    holds (in the database or earlier in this request) instead of failing the whole upsert."""
    model = kind.model
    column = getattr(model, field)
    values = sorted({data[field] for _, data in rows if data.get(field) is not None})
    holders: dict[str, str | None] = {}
    for chunk in _chunks(values):
        stmt = _among(session, select(column, model.external_id), column, chunk)
        holders.update(session.execute(stmt).all())
    first: dict[str, int] = {}
    kept = []
    for index, data in rows:
        value = data.get(field)
        if value is None:
            kept.append((index, data))
            continue
        seen = first.setdefault(value, index)
        if value in holders and holders[value] != data["external_id"]:
            errors[index] = {field: [f"Already used by another {kind.name}."]}
        elif seen != index:
            errors[index] = {field: [f"Same {field} as row {seen} in this request."]}
        else:
            kept.append((index, data))
    return kept


def _refuse_held_roles(
    session: Session, planned: list[_Plan], errors: dict[int, Any]
) -> list[_Plan]:
    """Deactivating a role that active employees hold is refused, as `DELETE /roles/{id}` is."""
    leaving = [p.item_id for p in planned if p.old and p.old["active"] and not p.new["active"]]
    held = active_holders(session, leaving)
    kept = []
    for plan in planned:
        count = held.get(plan.item_id) if not plan.new["active"] else None
        if count:
            errors[plan.row_index] = {"active": [held_message(count)]}
        else:
            kept.append(plan)
    return kept


def _existing(session: Session, kind: Kind, external_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Stored rows under these external ids, as plain dicts of the writable fields and `id`."""
    model = kind.model
    columns = [model.id, *(getattr(model, f) for f in kind.fields)]
    found: dict[str, dict[str, Any]] = {}
    for chunk in _chunks(external_ids):
        stmt = _among(session, select(*columns), model.external_id, chunk)
        result = session.execute(stmt)
        for row in result.mappings():
            found[row["external_id"]] = dict(row)
    if kind.name == "employee" and found:
        _attach_roles(session, found)
    return found


def _attach_roles(session: Session, found: dict[str, dict[str, Any]]) -> None:
    """`role_ids` of stored employees (their `role_id` alone when written without links)."""
    by_id = {row["id"]: row for row in found.values()}
    links: dict[uuid.UUID, list[uuid.UUID]] = {}
    for chunk in _chunks(sorted(by_id)):
        stmt = _among(
            session,
            select(EmployeeRole.employee_id, EmployeeRole.role_id).order_by(
                EmployeeRole.employee_id, EmployeeRole.position
            ),
            EmployeeRole.employee_id,
            chunk,
        )
        for employee_id, role_id in session.execute(stmt):
            links.setdefault(employee_id, []).append(role_id)
    for employee_id, row in by_id.items():
        row["role_ids"] = links.get(employee_id) or ([row["role_id"]] if row["role_id"] else [])


def _upsert(session: Session, kind: Kind, writes: list[dict[str, Any]]) -> dict[str, uuid.UUID]:
    """One INSERT … ON CONFLICT (org_id, external_id) DO UPDATE; answers external id → id."""
    if not writes:
        return {}
    table = kind.table
    now = utcnow()
    org_id = require_org_id()
    columns = ["id", *kind.fields]
    if session.get_bind().dialect.name == "postgresql":
        # The rows travel as one array per column and unnest into the INSERT: one short
        # statement for 10,000 rows instead of pages of 10,000 × 6 bound parameters.
        rows = (
            func.unnest(
                *(
                    bindparam(f"u_{c}", [w[c] for w in writes], type_=ARRAY(table.c[c].type))
                    for c in columns
                )
            )
            .table_valued(*columns)
            .render_derived(name="rows")
        )
        source = select(
            literal(org_id, table.c.org_id.type),
            *(rows.c[c] for c in columns),
            literal(now, table.c.created_at.type),
            literal(now, table.c.updated_at.type),
        )
        stmt: postgresql.Insert | sqlite.Insert = upsert_insert("postgresql", table).from_select(
            ["org_id", *columns, "created_at", "updated_at"], source
        )
        params: list[dict[str, Any]] | None = None
    else:
        stmt = upsert_insert("sqlite", table)
        params = [w | {"org_id": org_id, "created_at": now, "updated_at": now} for w in writes]
    changed = {f: stmt.excluded[f] for f in kind.fields if f != "external_id"}
    upsert = stmt.on_conflict_do_update(
        index_elements=[table.c.org_id, table.c.external_id],
        set_=changed | {"updated_at": stmt.excluded.updated_at},
    ).returning(table.c.external_id, table.c.id)
    return dict(session.execute(upsert, params).all())


def _affects_requirements(kind: str, old: dict[str, Any] | None, new: dict[str, Any]) -> bool:
    """The row's change can change what it must hold (a created one: when it has a source)."""
    after = fanout_state(kind, new)
    if after is None:
        return False
    if old is None:
        if not new["active"]:
            return False
        # A new client or location may fall under an `applies_to_all` certification.
        return kind in ("client", "location") or any(v for v in after[:-1])
    return fanout_state(kind, old) != after


def _error_row(index: int, errs: RowErrors) -> dict[str, Any]:
    message = "; ".join(f"{field}: {' '.join(map(str, msgs))}" for field, msgs in errs.items())
    return {"index": index, "status": "error", "errors": errs, "message": message}


def _report(
    results: dict[int, dict[str, Any]], lines: dict[int, int] | None, job_id: uuid.UUID | None
) -> dict[str, Any]:
    counts = {"created": 0, "updated": 0, "unchanged": 0, "error": 0}
    ordered = []
    for index in sorted(results):
        row = results[index]
        counts[row["status"]] += 1
        if lines is not None and index in lines:
            row["line"] = lines[index]
        ordered.append(row)
    return {"counts": counts, "job_id": job_id, "rows": ordered}


def _atomic_error(report: dict[str, Any], errors: dict[int, RowErrors]) -> Invalid:
    for row in report["rows"]:
        row.pop("id", None)  # nothing was written: no ids to hand out
    return Invalid(
        {"items": {str(i): errs for i, errs in sorted(errors.items())}, "report": report},
        f"{len(errors)} row(s) are invalid; nothing was written (atomic=true).",
    )


def _among(
    session: Session, stmt: Select[*tuple[Any, ...]], column: Any, values: list[Any]
) -> Select[*tuple[Any, ...]]:
    """`stmt` restricted to `column IN (values)`.

    On PostgreSQL the values are one array joined as `unnest(...)`: one parameter instead of
    thousands, and a plan that probes the unique index per value even when the table's
    statistics are stale after a large import (`= ANY(array)` was then a filter costing
    rows × values comparisons: minutes for 100k × 10k).
    """
    if session.get_bind().dialect.name != "postgresql":
        return stmt.where(column.in_(values))
    wanted = (
        func.unnest(bindparam(None, values, type_=ARRAY(column.type)))
        .table_valued("value")
        .render_derived(name="wanted")
    )
    return stmt.join(wanted, column == wanted.c.value)


def _chunks(values: list[Any]) -> Iterable[list[Any]]:
    for start in range(0, len(values), IN_CHUNK):
        yield values[start : start + IN_CHUNK]
