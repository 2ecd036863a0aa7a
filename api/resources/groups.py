"""Certification groups: the seed's left panel as an API (SPEC §4, §9)."""

from __future__ import annotations

import uuid
from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from api.db import request_session
from api.pagination import Page, page_schema, paginate
from api.schemas.groups import (
    GroupCreateSchema,
    GroupDetailSchema,
    GroupListArgsSchema,
    GroupMoveSchema,
    GroupPatchSchema,
    GroupSchema,
)
from certifications.catalog import groups
from certifications.catalog.models import CertificationGroup
from tenancy.auth import requires

blp = Blueprint(
    "certification-groups",
    __name__,
    url_prefix="/certification-groups",
    description="Certification groups: a tree that organizes certifications",
)


@blp.route("")
class Groups(MethodView):
    @requires("certifications:read", module="hse")
    @blp.arguments(GroupListArgsSchema, location="query")
    @blp.response(200, page_schema(GroupSchema))
    def get(self, args: dict[str, Any]) -> Any:
        """List groups: flat by name (with parent_id), or `?view=tree` as one nested tree."""
        session = request_session()
        if args["view"] == "tree":
            return Page(items=groups.tree(session), next_cursor=None)
        key = [CertificationGroup.name, CertificationGroup.id]
        return paginate(session, groups.list_statement(), key, args["limit"], args["cursor"])

    @requires("certifications:create", module="hse")
    @blp.arguments(GroupCreateSchema)
    @blp.response(201, GroupSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Create a group, at the top level or inside `parent_id`."""
        return groups.create_group(request_session(), data["name"], data.get("parent_id"))


@blp.route("/<uuid:group_id>")
class Group(MethodView):
    if_match_required_by_org = True  # `require_if_match` applies here (`api.preconditions`)

    @requires("certifications:read", module="hse")
    @blp.response(200, GroupDetailSchema)
    def get(self, group_id: uuid.UUID) -> Any:
        """A group with its certifications and direct subgroups."""
        session = request_session()
        return groups.describe(session, groups.get_group(session, group_id))

    @requires("certifications:update", module="hse")
    @blp.arguments(GroupPatchSchema)
    @blp.response(200, GroupSchema)
    def patch(self, data: dict[str, Any], group_id: uuid.UUID) -> Any:
        """Rename a group (an empty object changes nothing; /move re-parents)."""
        session = request_session()
        if "name" not in data:
            return groups.get_group(session, group_id)
        return groups.rename_group(session, group_id, data["name"])

    @requires("certifications:delete", module="hse")
    @blp.response(204)
    def delete(self, group_id: uuid.UUID) -> None:
        """Delete an empty group (409 naming what it still holds)."""
        groups.delete_group(request_session(), group_id)


@blp.route("/<uuid:group_id>/move")
class MoveGroup(MethodView):
    @requires("certifications:update", module="hse")
    @blp.arguments(GroupMoveSchema)
    @blp.response(200, GroupSchema)
    def post(self, data: dict[str, Any], group_id: uuid.UUID) -> Any:
        """Move a group (with its certifications and subgroups) under `parent_id`, or to the top.

        Moving a group into itself or one of its own subgroups answers 409.
        """
        return groups.move_group(request_session(), group_id, data["parent_id"])
