"""Rosters: `/locations/{id}/members` and `/clients/{id}/members` (issue 15).

A membership puts an employee on a site's roster or a client's workforce between two dates;
a site or client can require certifications of its members. Every change starts one
requirement fan-out (its `job_id` is in the answer).
"""

from __future__ import annotations

import uuid
from typing import Any

from flask import jsonify
from flask.views import MethodView
from flask_smorest import Blueprint

from api.db import request_session
from api.pagination import page_schema, paginate
from api.resources.directory import read_bulk_body
from api.schemas.directory import BulkArgsSchema
from api.schemas.memberships import (
    MembershipBulkReportSchema,
    MembershipBulkRowSchema,
    MembershipCreateSchema,
    MembershipPatchSchema,
    MembershipQuerySchema,
    MembershipSchema,
    load_membership_rows,
    membership_bulk_body,
)
from certifications.directory import memberships
from certifications.directory.models import Membership
from tenancy.auth import requires


def _named(session: Any, items: list[Any]) -> list[Any]:
    names = memberships.employee_names(session, (m.employee_id for m in items))
    for m in items:
        m.employee_name = names.get(m.employee_id)
    return items


def members_blueprint(plural: str) -> Blueprint:
    target = memberships.TARGETS[plural]
    blp = Blueprint(
        f"{plural}_members",
        __name__,
        url_prefix=f"/{plural}",
        description=f"Rosters: the employees of {plural}, with dates",
    )
    key = [Membership.created_at, Membership.id]

    @blp.route("/<uuid:target_id>/members")
    class Members(MethodView):
        @requires("directory:read")
        @blp.arguments(MembershipQuerySchema, location="query")
        @blp.response(200, page_schema(MembershipSchema))
        @blp.doc(summary=f"List the {target.entity}'s members (on a date with `on`)")
        def get(self, args: dict[str, Any], target_id: uuid.UUID) -> Any:
            session = request_session()
            memberships.get_target(session, target, target_id)
            stmt = memberships.list_statement(target, target_id, args.get("on"))
            page = paginate(session, stmt, key, args["limit"], args.get("cursor"))
            _named(session, page.items)
            return page

        @requires("directory:write")
        @blp.arguments(MembershipCreateSchema)
        @blp.response(201, MembershipSchema)
        @blp.doc(summary=f"Put an employee on the {target.entity}'s roster")
        def post(self, data: dict[str, Any], target_id: uuid.UUID) -> Any:
            session = request_session()
            return _named(session, [memberships.create(session, target, target_id, data)])[0]

    @blp.route("/<uuid:target_id>/members/<uuid:membership_id>")
    class Member(MethodView):
        @requires("directory:write")
        @blp.arguments(MembershipPatchSchema)
        @blp.response(200, MembershipSchema)
        @blp.doc(summary="Change a membership's dates")
        def patch(
            self, changes: dict[str, Any], target_id: uuid.UUID, membership_id: uuid.UUID
        ) -> Any:
            session = request_session()
            m = memberships.update_membership(session, target, target_id, membership_id, changes)
            return _named(session, [m])[0]

        @requires("directory:write")
        @blp.response(204)
        @blp.doc(summary="Take the employee off the roster (assignment history is kept)")
        def delete(self, target_id: uuid.UUID, membership_id: uuid.UUID) -> None:
            memberships.delete_membership(request_session(), target, target_id, membership_id)

    @blp.route("/<uuid:target_id>/members/bulk")
    class Bulk(MethodView):
        @requires("directory:write")
        @blp.arguments(BulkArgsSchema, location="query")
        @blp.response(200, MembershipBulkReportSchema)
        @blp.doc(
            summary="Load up to 10,000 members (JSON or CSV), upserted by (employee, starts_on)",
            requestBody=membership_bulk_body(),
        )
        def post(self, args: dict[str, Any], target_id: uuid.UUID) -> Any:
            items, lines = read_bulk_body(plural, MembershipBulkRowSchema)
            valid, errors = load_membership_rows(items)
            report = memberships.bulk_memberships(
                request_session(),
                target,
                target_id,
                valid,
                errors,
                atomic=args["atomic"],
                lines=lines,
            )
            return jsonify(report)

    return blp


location_members = members_blueprint("locations")
client_members = members_blueprint("clients")
