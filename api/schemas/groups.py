"""Certification group schemas (SPEC §4): create, rename, move, list (flat or tree), detail.

Shapes are validated here; rules needing the database (unknown parents, moves into a subtree,
deleting a group that is not empty) are checked by `certifications.catalog.groups`.
"""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from api.fields import EXAMPLE_ID, doc, name_field
from api.openapi import OPTIONAL
from api.pagination import PageArgs
from certifications.vocabulary import CERTIFICATION_TYPES


class GroupCreateSchema(Schema):
    name = name_field(required=True, metadata=doc("The group's name.", "Safety"))
    parent_id = fields.UUID(
        allow_none=True,
        metadata=doc("The group to nest this one under; null or absent = top level.", None),
    )


class GroupPatchSchema(Schema):
    """Only the fields sent change (an empty object changes nothing)."""

    name = name_field(metadata=doc("New name (use /move to re-parent).", "HSE"))


class GroupMoveSchema(Schema):
    parent_id = fields.UUID(
        required=True,
        allow_none=True,
        metadata=doc("The new parent group; null moves the group to the top level.", EXAMPLE_ID),
    )


class GroupListArgsSchema(PageArgs):
    view = fields.String(
        load_default="flat",
        validate=validate.OneOf(("flat", "tree")),
        metadata=doc(
            "`flat`: every group with its `parent_id`, paged by name. `tree`: the top-level "
            "groups with their subgroups nested in `children`, all in one page.",
            "tree",
        ),
    )


class GroupSchema(Schema):
    id = fields.UUID(metadata=doc("The group's id.", EXAMPLE_ID))
    name = fields.String(metadata=doc("The group's name.", "Safety"))
    parent_id = fields.UUID(
        allow_none=True, metadata=doc("The parent group; null at the top level.", None)
    )
    certification_count = fields.Integer(
        metadata=doc("Live (not archived) certifications directly in this group (lists).", 4)
        | {OPTIONAL: True}
    )
    children = fields.List(
        fields.Dict(),
        metadata=doc(
            "Tree view only: the subgroups, each of this same shape (id, name, parent_id, "
            "certification_count, children), by name.",
            [],
        )
        | {OPTIONAL: True},
    )
    created_at = fields.DateTime(
        metadata=doc("Creation time (flat view).", "2026-03-01T10:00:00Z") | {OPTIONAL: True}
    )
    updated_at = fields.DateTime(
        metadata=doc("Last change (flat view).", "2026-03-01T10:00:00Z") | {OPTIONAL: True}
    )


class CertificationRefSchema(Schema):
    id = fields.UUID(metadata=doc("Certification id.", EXAMPLE_ID))
    name = fields.String(metadata=doc("Certification name.", "OSHA 10-Hour Safety"))
    type = fields.String(
        metadata=doc("Certification type.", "employee") | {"enum": list(CERTIFICATION_TYPES)}
    )
    archived = fields.Boolean(metadata=doc("Archived (hidden from pickers).", False))


class SubgroupSchema(Schema):
    id = fields.UUID(metadata=doc("Subgroup id.", EXAMPLE_ID))
    name = fields.String(metadata=doc("Subgroup name.", "Cranes"))


class GroupDetailSchema(GroupSchema):
    certifications = fields.List(
        fields.Nested(CertificationRefSchema),
        metadata=doc("Certifications in this group (not in its subgroups), by name.", []),
    )
    subgroups = fields.List(
        fields.Nested(SubgroupSchema), metadata=doc("Direct subgroups, by name.", [])
    )
