"""Certification definitions: the seed's Create/Edit Certification modal (SPEC §4, §9)."""

from __future__ import annotations

import uuid
from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from api.db import request_session
from api.pagination import Page, page_schema, paginate, sorted_keys
from api.schemas.certifications import (
    CertificationCreateSchema,
    CertificationListArgsSchema,
    CertificationPatchSchema,
    CertificationSchema,
)
from certifications.catalog import service as catalog
from certifications.catalog.models import Certification
from tenancy.auth import requires

blp = Blueprint(
    "certifications",
    __name__,
    url_prefix="/certifications",
    description="Certification definitions with their renewal, notification and task rules",
)


@blp.route("")
class Certifications(MethodView):
    @requires("certifications:read", module="hse")
    @blp.arguments(CertificationListArgsSchema, location="query")
    @blp.response(200, page_schema(CertificationSchema))
    def get(self, args: dict[str, Any]) -> Any:
        """List certifications by name; filter by group (optionally recursive), type, name."""
        session = request_session()
        limit, cursor = args.pop("limit"), args.pop("cursor")
        keys, descending = sorted_keys(Certification, args.pop("sort"))
        stmt = catalog.list_statement(**args)
        page = paginate(session, stmt, keys, limit, cursor, descending)
        return Page(items=catalog.describe(session, page.items), next_cursor=page.next_cursor)

    @requires("certifications:create", module="hse")
    @blp.arguments(CertificationCreateSchema)
    @blp.response(201, CertificationSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Create a certification; with role_ids, a role fan-out job starts (see `jobs`)."""
        return catalog.create_certification(request_session(), data)


@blp.route("/<uuid:certification_id>")
class CertificationItem(MethodView):
    if_match_required_by_org = True  # `require_if_match` applies here (`api.preconditions`)

    @requires("certifications:read", module="hse")
    @blp.response(200, CertificationSchema)
    def get(self, certification_id: uuid.UUID) -> Any:
        """A certification with all its rules."""
        session = request_session()
        return catalog.describe(session, [catalog.get_certification(session, certification_id)])[0]

    @requires("certifications:update", module="hse")
    @blp.arguments(CertificationPatchSchema)
    @blp.response(200, CertificationSchema)
    def patch(self, changes: dict[str, Any], certification_id: uuid.UUID) -> Any:
        """Change only the fields sent; role or renewal changes start jobs (see `jobs`).

        Changing `type` once any assignment exists answers 409.
        """
        return catalog.update_certification(request_session(), certification_id, changes)

    @requires("certifications:delete", module="hse")
    @blp.response(204)
    def delete(self, certification_id: uuid.UUID) -> None:
        """Delete a certification that was never assigned (409 otherwise: archive it)."""
        catalog.delete_certification(request_session(), certification_id)


@blp.route("/<uuid:certification_id>/archive")
class Archive(MethodView):
    @requires("certifications:update", module="hse")
    @blp.response(200, CertificationSchema)
    def post(self, certification_id: uuid.UUID) -> Any:
        """Archive: hidden from pickers and default lists; assignments and history stay."""
        return catalog.set_archived(request_session(), certification_id, True)


@blp.route("/<uuid:certification_id>/unarchive")
class Unarchive(MethodView):
    @requires("certifications:update", module="hse")
    @blp.response(200, CertificationSchema)
    def post(self, certification_id: uuid.UUID) -> Any:
        """Bring an archived certification back."""
        return catalog.set_archived(request_session(), certification_id, False)
