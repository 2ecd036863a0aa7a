"""The view switcher (SPEC §6): the group tree and subjects with their certifications, as pages
of JSON or as one streamed CSV file.

CSV is a representation of its own: `GET /views/{kind}/export` documents only `text/csv` (a
generated client gets bytes), and `GET /views/{kind}` answers CSV too when asked with
`Accept: text/csv` or `format=csv`."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
from flask import Response, request, stream_with_context
from flask.views import MethodView
from flask_smorest import Blueprint

from api.asof import as_of
from api.db import request_session
from api.pagination import (
    Page,
    cursor_after,
    keyset_page,
    keyset_params,
    keyset_statement,
    paginate,
)
from api.rows import json_response
from api.schemas.views import (
    AsOfArgs,
    ClientViewArgs,
    EmployeeViewArgs,
    GroupTreeSchema,
    LocationViewArgs,
    MembersViewArgs,
    MembersViewPageSchema,
    SubjectViewArgs,
    SubjectViewPageSchema,
)
from certifications.directory.memberships import TARGETS, get_target
from certifications.directory.models import SUBJECT_MODELS, Employee
from certifications.history.asof import AsOf
from certifications.reporting import rosters
from certifications.reporting.asof_views import attach_certifications_as_of, subject_query_as_of
from certifications.reporting.compliance import group_tree
from certifications.reporting.export import CSV_COLUMNS, csv_chunks
from certifications.reporting.subjects import (
    MAX_PAGE_ENTRIES,
    ViewFilters,
    attach_certifications,
    filters_shape,
    subject_page_statement,
    view_params,
)
from infra import context
from infra import database as db
from infra.database import utcnow
from infra.errors import Invalid
from tenancy.auth import current_organization, requires
from tenancy.organizations import org_today
from tenancy.scoping import run_prebuilt

blp = Blueprint("views", __name__, url_prefix="/views", description="Compliance views")


@blp.route("/groups")
class GroupTreeView(MethodView):
    @requires("certifications:read", module="hse")
    @blp.arguments(AsOfArgs, location="query")
    @blp.response(200, GroupTreeSchema)
    def get(self, args: dict[str, Any]) -> Any:
        """The group tree: each group with its certifications and a count per status (`on`:
        as of a past day)."""
        # Already JSON-shaped (GroupTreeSchema documents it; a test holds them equal).
        tree = group_tree(request_session(), args["include_inactive"], as_of(args["on"]))
        return json_response(tree)


def _filters(args: dict[str, Any]) -> ViewFilters:
    return ViewFilters(
        status=tuple(args.get("status") or ()),
        certification_id=args["certification_id"],
        group_id=args["group_id"],
        role_id=args.get("role_id"),
        client_id=args.get("client_id"),
        q=args["q"],
        active=args["active"],
        include_inactive=args["include_inactive"],
        exempt=args["exempt"],
    )


CSV = "text/csv"


def wants_csv(args: dict[str, Any]) -> bool:
    """`format=csv`, or an `Accept` header preferring `text/csv` to JSON."""
    if args.get("format") == "csv":
        return True
    return request.accept_mimetypes.best_match(["application/json", CSV]) == CSV


def _page(kind: str, args: dict[str, Any]) -> Any:
    f = _filters(args)
    when = as_of(args["on"])
    if wants_csv(args):
        if when is not None:
            raise Invalid({"on": ["Not available with format=csv: use the JSON pages."]})
        return _csv_response(kind, f)
    session = request_session()
    db.without_jit(session)
    if when is not None:
        return _page_as_of(session, kind, f, when, args)
    model = SUBJECT_MODELS[kind]
    keys = [model.name, model.id]
    page = _subjects(session, kind, f, keys, args["limit"], args["cursor"])
    rows = attach_certifications(session, kind, page.items, f, max_entries=MAX_PAGE_ENTRIES)
    next_cursor = page.next_cursor
    if len(rows) < len(page.items):  # the page reached its certification entries' limit
        next_cursor = cursor_after(page.items[len(rows) - 1], keys)
    if kind in ("client", "location"):
        today = org_today(current_organization().timezone, utcnow())
        target = TARGETS[f"{kind}s"]
        staff = rosters.workforce(session, target, [r.id for r in rows], today)
        for r in rows:
            r.extra["workforce"] = staff[r.id]
    body = {"items": [r.to_dict() for r in rows], "next_cursor": next_cursor}
    # Already JSON-shaped (the documented SubjectViewPageSchema, checked by the tests): a page
    # holds ~1,000 nested entries; marshmallow's dump was half of the request's time, orjson
    # (native UUIDs and dates) takes about a millisecond.
    return Response(orjson.dumps(body), mimetype="application/json")


# The subjects' page statements, built once per shape (`subjects.subject_page_statement`,
# paged as `keyset_statement` pages): the filters used, and first page or not.
_PAGES: dict[tuple[Any, ...], Any] = {}
_PAGES_KEPT = 1_000


def _subjects(
    session: Any, kind: str, f: ViewFilters, keys: list[Any], limit: int, cursor: str | None
) -> Page:
    """A page of the view's subjects: plain rows of the columns a `SubjectRow` shows."""
    dialect = session.get_bind().dialect.name
    shape = (dialect, kind, filters_shape(f), bool(cursor))
    stmt = _PAGES.get(shape)
    if stmt is None:
        subjects = subject_page_statement(dialect, kind, f)
        stmt = keyset_statement(subjects, keys, [False] * len(keys), after=bool(cursor))
        if len(_PAGES) >= _PAGES_KEPT:
            _PAGES.clear()
        _PAGES[shape] = stmt
    params = view_params(f) | keyset_params(keys, limit, cursor)
    return keyset_page(run_prebuilt(session, stmt, params).all(), keys, limit)


def _page_as_of(
    session: Any, kind: str, f: ViewFilters, when: AsOf, args: dict[str, Any]
) -> Response:
    """A page as of a past day: the day's rows from history (`reporting.asof_views`)."""
    stmt, keys, history = subject_query_as_of(kind, f, when)
    page = paginate(session, stmt, keys, args["limit"], args["cursor"])
    rows = attach_certifications_as_of(session, kind, page.items, f, history)
    if kind in ("client", "location"):
        target = TARGETS[f"{kind}s"]
        staff = rosters.workforce(session, target, [r.id for r in rows], when.on, when)
        for r in rows:
            r.extra["workforce"] = staff[r.id]
    body = {"items": [r.to_dict() for r in rows], "next_cursor": page.next_cursor}
    return Response(orjson.dumps(body), mimetype="application/json")


def _csv_response(kind: str, f: ViewFilters) -> Response:
    """Stream the whole filtered view in pages of bounded size (`reporting.export`); the
    request's session is gone by then, so the generator opens its own, as the same tenant."""
    org_id = context.require_org_id()

    def generate() -> Iterator[str]:
        with context.tenant(org_id), db.new_session() as session:
            db.without_jit(session)
            yield from csv_chunks(session, kind, f)

    stamp = datetime.now(UTC).strftime("%Y%m%d")
    resp = Response(stream_with_context(generate()), mimetype="text/csv")
    resp.headers["Content-Type"] = "text/csv; charset=utf-8"
    resp.headers["Content-Disposition"] = f'attachment; filename="{kind}s-{stamp}.csv"'
    return resp


_CSV_CONTENT = {
    CSV: {
        "schema": {"type": "string", "format": "binary"},
        "example": ",".join(CSV_COLUMNS) + "\n",
    }
}
_CSV_DOC = {"responses": {200: {"content": _CSV_CONTENT}}}
_EXPORT_DOC = {"responses": {200: {"description": "The CSV file", "content": _CSV_CONTENT}}}
# The export streams the whole filtered view: no page, no format.
_EXPORT_EXCLUDES = ("limit", "cursor", "format")


def _subject_view(path: str, kind: str, args_schema: type[SubjectViewArgs]) -> None:
    class SubjectView(MethodView):
        @requires("certifications:read", module="hse")
        @blp.arguments(args_schema, location="query")
        @blp.response(200, SubjectViewPageSchema)
        @blp.doc(**_CSV_DOC)
        def get(self, args: dict[str, Any]) -> Any:
            return _page(kind, args)

    SubjectView.get.__doc__ = (
        f"The {path} view: each subject with its certifications and a count per status.\n\n"
        "Keyset-paginated: `limit` subjects, but a page ends early once its subjects' "
        f"certifications would pass {MAX_PAGE_ENTRIES:,} (at least one whole subject); follow "
        "`next_cursor` until it is null. `format=csv` streams the whole filtered view instead "
        "(one line per subject per certification), as does `Accept: text/csv`; "
        f"`GET /views/{path}/export` is the same CSV as an operation of its own."
    )
    SubjectView.__name__ = f"{kind.title()}View"
    blp.route(f"/{path}", endpoint=path)(SubjectView)

    class SubjectExport(MethodView):
        @requires("certifications:read", module="hse")
        @blp.arguments(args_schema(exclude=_EXPORT_EXCLUDES), location="query")
        @blp.doc(**_EXPORT_DOC)
        def get(self, args: dict[str, Any]) -> Any:
            return _csv_response(kind, _filters(args))

    SubjectExport.get.__doc__ = (
        f"The {path} view as one CSV file: one line per subject per certification, every "
        "page of the filtered view (streamed)."
    )
    SubjectExport.__name__ = f"{kind.title()}Export"
    blp.route(f"/{path}/export", endpoint=f"{path}-export")(SubjectExport)


_subject_view("employees", "employee", EmployeeViewArgs)
_subject_view("assets", "asset", SubjectViewArgs)
_subject_view("clients", "client", ClientViewArgs)
_subject_view("locations", "location", LocationViewArgs)


def _members_view(plural: str) -> None:
    target = TARGETS[plural]

    class MembersView(MethodView):
        @requires("certifications:read", module="hse")
        @blp.arguments(MembersViewArgs, location="query")
        @blp.response(200, MembersViewPageSchema)
        @blp.doc(**_CSV_DOC)
        def get(self, args: dict[str, Any], target_id: Any) -> Any:
            session = request_session()
            get_target(session, target, target_id)
            timezone = current_organization().timezone
            today = org_today(timezone, utcnow())
            on = args.get("on") or today
            # A past day: the statuses as they stood, from history; today on: projected.
            when = AsOf.of(timezone, on) if on < today else None
            statuses = tuple(args.get("status") or ())
            if args["format"] == "csv":
                return _members_csv(target, target_id, on, statuses, when)
            stmt = rosters.members_statement(target, target_id, on, statuses, when)
            keys = [Employee.name, Employee.id]
            page = paginate(session, stmt, keys, args["limit"], args.get("cursor"))
            rows = rosters.member_rows(session, target, target_id, page.items, on, statuses, when)
            body = {"items": rows, "next_cursor": page.next_cursor}
            return Response(orjson.dumps(body), mimetype="application/json")

    MembersView.get.__doc__ = (
        f"The members of a {target.entity} on a date, each with the certifications the "
        f"{target.entity} requires of its members and their status then.\n\n"
        "Keyset-paginated by member name; `status=` keeps members with an entry in those "
        "statuses (and those entries); `format=csv` streams every line instead. A "
        "certification with `satisfied_by` takes the member's record of an equivalent when "
        "better (`satisfied_via`). `on` before today: the roster of that day with the "
        "statuses as they stood, from history; today or later: today's records projected."
    )
    MembersView.__name__ = f"{target.entity.title()}MembersView"
    blp.route(f"/{plural}/<uuid:target_id>/members", endpoint=f"{plural}_members")(MembersView)


def _members_csv(
    target: Any, target_id: Any, on: Any, statuses: tuple[str, ...], when: AsOf | None
) -> Response:
    import csv
    import io

    org_id = context.require_org_id()

    def generate() -> Iterator[str]:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\r\n")
        writer.writerow(rosters.CSV_COLUMNS)
        with context.tenant(org_id), db.new_session() as session:
            lines = rosters.csv_lines(session, target, target_id, on, statuses, when)
            for n, line in enumerate(lines):
                writer.writerow([_cell(v) for v in line])
                if n % 1000 == 999:
                    yield buf.getvalue()
                    buf.seek(0)
                    buf.truncate()
        yield buf.getvalue()

    resp = Response(stream_with_context(generate()), mimetype="text/csv")
    resp.headers["Content-Type"] = "text/csv; charset=utf-8"
    resp.headers["Content-Disposition"] = f'attachment; filename="{target.entity}-members.csv"'
    return resp


def _cell(value: Any) -> str:
    """Text a spreadsheet would run as a formula gets a leading `'` (as the views' CSV)."""
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


_members_view("locations")
_members_view("clients")
