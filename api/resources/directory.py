"""Directory endpoints, one blueprint per kind (`roles.py`, `employees.py`, ...) built here.

Every kind has the same routes: list (filters, cursor pagination by name), create, get, patch,
soft delete, and `POST /{kind}/bulk` (JSON `{"items": [...]}` or a `text/csv` body).
"""

from __future__ import annotations

import uuid
from typing import Any

from flask import Response, jsonify, request
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, ValidationError
from werkzeug.exceptions import UnsupportedMediaType

from api.body import check_csv
from api.db import request_dialect_name, request_session, tenant_prebuilt_rows
from api.pagination import (
    Page,
    keyset_page,
    keyset_params,
    keyset_statement,
    page_schema,
    sorted_keys,
)
from api.rows import RowShape, json_response
from api.schemas.directory import (
    QUERY_SCHEMAS,
    SCHEMAS,
    BulkArgsSchema,
    BulkJsonSchema,
    BulkReportSchema,
    DirectoryQuerySchema,
    bulk_request_body,
    load_rows,
)
from certifications.directory import service as directory
from certifications.directory.bulk import bulk_upsert, parse_csv
from certifications.directory.service import KINDS
from infra.errors import Invalid
from jobs.outbox import started_jobs
from tenancy.auth import requires
from tenancy.scoping import prebuilt_tenant_statement


def directory_blueprint(plural: str) -> Blueprint:
    kind = KINDS[plural]
    schemas = SCHEMAS[plural]
    page = ListPage(plural, kind.model, schemas["out"])
    blp = Blueprint(plural, __name__, url_prefix=f"/{plural}", description=f"Directory: {plural}")

    @blp.route("")
    class Collection(MethodView):
        @requires("directory:read")
        @blp.arguments(QUERY_SCHEMAS.get(plural, DirectoryQuerySchema), location="query")
        @blp.response(200, page_schema(schemas["out"]))
        @blp.doc(summary=f"List {plural}, by name; filter and page with the query")
        def get(self, args: dict[str, Any]) -> Any:
            limit, cursor = args.pop("limit"), args.pop("cursor")
            keys, descending = sorted_keys(kind.model, args.pop("sort"))
            found = page.fetch(args, keys, descending, limit, cursor)
            return page.response(found)

        @requires("directory:write")
        @blp.arguments(schemas["create"])
        @blp.response(201, schemas["out"])
        @blp.doc(summary=f"Create a {kind.name}")
        def post(self, data: dict[str, Any]) -> Any:
            return with_started_job(directory.create(request_session(), kind, data))

    @blp.route("/<uuid:item_id>")
    class Item(MethodView):
        @requires("directory:read")
        @blp.response(200, schemas["out"])
        @blp.doc(summary=f"Get a {kind.name}")
        def get(self, item_id: uuid.UUID) -> Any:
            return directory.get(request_session(), kind, item_id)

        @requires("directory:write")
        @blp.arguments(schemas["patch"])
        @blp.response(200, schemas["out"])
        @blp.doc(summary=f"Change a {kind.name} (only the fields sent)")
        def patch(self, changes: dict[str, Any], item_id: uuid.UUID) -> Any:
            return with_started_job(directory.update(request_session(), kind, item_id, changes))

        @requires("directory:write")
        @blp.response(204)
        @blp.doc(summary=f"Deactivate a {kind.name} (soft delete: history is kept)")
        def delete(self, item_id: uuid.UUID) -> None:
            directory.delete(request_session(), kind, item_id)

    @blp.route("/bulk")
    class Bulk(MethodView):
        @requires("directory:write")
        @blp.arguments(BulkArgsSchema, location="query")
        @blp.response(200, BulkReportSchema)
        @blp.doc(
            summary=f"Create or update up to 10,000 {plural} by external_id (JSON or CSV)",
            requestBody=bulk_request_body(plural),
        )
        def post(self, args: dict[str, Any]) -> Any:
            items, lines = read_bulk_body(plural)
            valid, errors = load_rows(plural, items, csv=lines is not None)
            session = request_session()
            report = bulk_upsert(session, kind, valid, errors, atomic=args["atomic"], lines=lines)
            # Already plain JSON types: skip a 10,000-row marshmallow dump (the schema documents).
            return jsonify(report)

    return blp


class WithJob:
    """A created or changed item, plus the id of the job its change started (`job_id`)."""

    def __init__(self, item: Any, job_id: uuid.UUID | None) -> None:
        self._item = item
        self.job_id = job_id

    def __getattr__(self, name: str) -> Any:
        return getattr(self._item, name)


def with_started_job(item: Any) -> WithJob:
    started = started_jobs(request_session())
    return WithJob(item, started[-1] if started else None)


def read_bulk_body(
    plural: str, csv_schema: type[Schema] | None = None
) -> tuple[list[Any], dict[int, int] | None]:
    """The rows of a bulk request: JSON `{"items": [...]}`, or CSV rows with their line numbers
    (columns: the fields of `csv_schema`, by default the kind's CSV row schema)."""
    if request.mimetype == "text/csv":
        data = request.get_data()
        check_csv(data)
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise Invalid({"csv": ["The body must be UTF-8 text."]}) from exc
        row_fields = (csv_schema or SCHEMAS[plural]["csv"])().fields
        nullable = [name for name, f in row_fields.items() if f.allow_none]
        rows = parse_csv(text, row_fields, nullable)
        return rows, {index: row.pop("_line") for index, row in enumerate(rows)}
    if not request.is_json:
        raise UnsupportedMediaType('Send application/json ({"items": [...]}) or text/csv.')
    body = request.get_json(silent=True)
    try:
        return BulkJsonSchema().load(body if isinstance(body, dict) else {})["items"], None
    except ValidationError as exc:
        raise Invalid({"json": exc.messages}) from exc


# Statements kept per list page (shapes: filters used × sort × first page or not; a few in use).
_SHAPES_KEPT = 256


class ListPage:
    """A list page of one kind as JSON, from the columns its item schema shows (`api.rows`):
    `tests/api/test_list_pages.py` holds every kind's page equal to the schema's dump of the
    same rows."""

    def __init__(self, plural: str, model: Any, schema: type[Schema]) -> None:
        # role_ids from `directory.page_roles`; job_id null on GET
        self.kind = KINDS[plural]
        self.shape = RowShape(model, schema, computed={"role_ids", "job_id"})
        self.columns = self.shape.columns
        self.employees = "role_ids" in self.shape.names
        self._statements: dict[tuple[Any, ...], Any] = {}

    def fetch(
        self,
        filters: dict[str, Any],
        keys: list[Any],
        descending: list[bool],
        limit: int,
        cursor: str | None,
    ) -> Page:
        """One page of the filtered list. Its statement is built once per shape (dialect,
        filters used, `active`, sort, first page or not) and kept; the values are parameters
        (`directory.list_params`, `keyset_params`), the tenant is bound by the reader
        (`tenant_prebuilt_rows`: with no session open, a transaction of its own, one round trip
        on the driver's cursor)."""
        dialect = request_dialect_name()
        used, active = directory.list_filters(filters), filters.get("active")
        shape = (dialect, used, active, tuple(k.key for k in keys), tuple(descending), bool(cursor))
        stmt = self._statements.get(shape)
        if stmt is None:
            listed = directory.list_statement(self.kind, self.columns, dialect, used, active)
            stmt = keyset_statement(listed, keys, descending, after=bool(cursor))
            stmt = prebuilt_tenant_statement(stmt, self.kind.model)
            if len(self._statements) >= _SHAPES_KEPT:
                self._statements.clear()
            self._statements[shape] = stmt
        params = directory.list_params(filters, used) | keyset_params(keys, limit, cursor)
        return keyset_page(tenant_prebuilt_rows(stmt, params), keys, limit)

    def response(self, found: Page) -> Response:
        items = self.shape.items(found.items)
        if self.employees:
            ids = [item["id"] for item in items]
            roles = directory.page_roles(tenant_prebuilt_rows, request_dialect_name(), ids)
            for item in items:
                first = [item["role_id"]] if item["role_id"] is not None else []
                item["role_ids"] = roles.get(item["id"]) or first
                item["job_id"] = None
        return json_response({"items": items, "next_cursor": found.next_cursor})
