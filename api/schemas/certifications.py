"""Certification definition schemas (SPEC §4): validity, form, notification and task rules.

Every field carries a description and an example, so `/api/v1/docs` reads like the seed's
Details and Renewing tabs. Shapes are validated here; rules needing the database (unknown ids,
unique names, type changes) are checked by `certifications.catalog.service`.
"""

from __future__ import annotations

import uuid
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from api.fields import EXAMPLE_ID, Email, Money, StrictBoolean, Text, doc, name_field, updated_since
from api.pagination import PageArgs, sort_field
from certifications.automation.plans import DEFAULT_STOP_WHEN, MAX_REPEATS, stage_key
from certifications.vocabulary import (
    BEFORE_EXPIRY,
    CERTIFICATION_TYPES,
    CHANNELS,
    HOLDER,
    MAX_DAYS,
    RECIPIENT_WORDS,
    STAGE_EVENTS,
    STAGE_RECIPIENT_WORDS,
    STOP_WHEN,
    TRIGGERS,
)

MAX_LINKS = 500
MAX_RULES = 50
FORM_FIELD_TYPES = ("text", "number", "date", "boolean", "choice")


def _ids(description: str, **kw: Any) -> fields.List[uuid.UUID]:
    return fields.List(
        fields.UUID(),
        validate=validate.Length(max=MAX_LINKS),
        metadata=doc(description, [EXAMPLE_ID]),
        **kw,
    )


def _unique(values: list[Any], what: str) -> None:
    if len(values) != len(set(values)):
        raise ValidationError(f"{what} must not repeat.")


# --- certification parts ---------------------------------------------------------------------


class ValiditySchema(Schema):
    """Renewal frequency: exactly one of `months` or `days`."""

    months = fields.Integer(
        strict=True,
        validate=validate.Range(min=1, max=1200),
        metadata=doc("Valid for this many calendar months after taking effect.", 12),
    )
    days = fields.Integer(
        strict=True,
        validate=validate.Range(min=1, max=36500),
        metadata=doc("Valid for this many days after taking effect.", 90),
    )

    @validates_schema
    def _exactly_one(self, data: dict[str, Any], **_kw: Any) -> None:
        if len(data) != 1:
            raise ValidationError('Give exactly one of "months" or "days".', "_schema")


class FormFieldSchema(Schema):
    name = Text(
        required=True,
        validate=[
            validate.Length(min=1, max=100),
            validate.Regexp(r"^[A-Za-z_][A-Za-z0-9_]*$", error="Letters, digits and _ only."),
        ],
        metadata=doc("Key of the answer in a submission.", "card_number"),
    )
    label = name_field(required=True, metadata=doc("Question shown to the user.", "Card number"))
    type = fields.String(
        required=True,
        validate=validate.OneOf(FORM_FIELD_TYPES),
        metadata=doc("Answer type: " + ", ".join(FORM_FIELD_TYPES) + ".", "text"),
    )
    required = StrictBoolean(load_default=False, metadata=doc("An answer must be given.", True))
    choices = fields.List(
        name_field(),
        validate=validate.Length(min=1, max=100),
        metadata=doc("The allowed answers; required for (and only for) type choice.", ["A", "B"]),
    )

    @validates_schema
    def _choices_for_choice(self, data: dict[str, Any], **_kw: Any) -> None:
        if data.get("type") == "choice":
            if not data.get("choices"):
                raise ValidationError("Required for a choice field.", "choices")
            _unique_field(data["choices"], "Choices", "choices")
        elif "choices" in data:
            raise ValidationError("Only choice fields have choices.", "choices")


class FormSchema(Schema):
    fields_ = fields.List(
        fields.Nested(FormFieldSchema),
        required=True,
        data_key="fields",
        attribute="fields",
        validate=validate.Length(min=1, max=100),
        metadata=doc(
            "The questions of the form, in order.",
            [{"name": "card_number", "label": "Card number", "type": "text", "required": True}],
        ),
    )

    @validates_schema
    def _unique_names(self, data: dict[str, Any], **_kw: Any) -> None:
        _unique_field([f["name"] for f in data.get("fields", [])], "Field names", "fields")


def _unique_field(values: list[Any], what: str, field: str) -> None:
    try:
        _unique(values, what)
    except ValidationError as exc:
        raise ValidationError(exc.messages, field) from None


class Recipient(Text):
    """`holder`, `admins`, or an email address."""

    default_error_messages = {"recipient": 'Must be "holder", "admins" or an email address.'}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        result = super()._deserialize(value, attr, data, **kwargs)
        if result in RECIPIENT_WORDS:
            return result
        try:
            return Email()._deserialize(result, attr, data, **kwargs)
        except ValidationError as exc:
            raise self.make_error("recipient") from exc


class NotificationRuleSchema(Schema):
    trigger = fields.String(
        required=True,
        validate=validate.OneOf(TRIGGERS),
        metadata=doc(
            "When to notify: `before_expiry` (needs `days`), `expired`, `revoked`, `missing`.",
            "before_expiry",
        ),
    )
    days = fields.Integer(
        strict=True,
        validate=validate.Range(min=0, max=MAX_DAYS),
        metadata=doc("before_expiry only: how many days before the expiry date.", 30),
    )
    recipients = fields.List(
        Recipient(validate=validate.Length(max=320)),
        required=True,
        validate=validate.Length(min=1, max=50),
        metadata=doc(
            '"holder" (the employee, or the client\'s contact), "admins" (the org\'s admin '
            "emails), or email addresses.",
            ["holder", "admins", "safety@example.com"],
        ),
    )
    channels = fields.List(
        fields.String(validate=validate.OneOf(CHANNELS)),
        required=True,
        validate=validate.Length(min=1, max=len(CHANNELS)),
        metadata=doc("How to deliver: email and/or the org's signed webhook.", ["email"]),
    )

    @validates_schema
    def _days_for_before_expiry(self, data: dict[str, Any], **_kw: Any) -> None:
        if data.get("trigger") == BEFORE_EXPIRY and "days" not in data:
            raise ValidationError("Required for the before_expiry trigger.", "days")
        if data.get("trigger") not in (None, BEFORE_EXPIRY) and "days" in data:
            raise ValidationError("Only the before_expiry trigger takes days.", "days")
        _unique_field(data.get("channels", []), "Channels", "channels")
        _unique_field(data.get("recipients", []), "Recipients", "recipients")


class StageRecipient(Text):
    """`holder`, `manager`, `location_managers`, `custodian`, `admins`, or an email address."""

    default_error_messages = {
        "recipient": "Must be one of " + ", ".join(STAGE_RECIPIENT_WORDS) + " or an email address."
    }

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        result = super()._deserialize(value, attr, data, **kwargs)
        if result in STAGE_RECIPIENT_WORDS:
            return result
        try:
            return Email()._deserialize(result, attr, data, **kwargs)
        except ValidationError as exc:
            raise self.make_error("recipient") from exc


class ReminderStageSchema(Schema):
    offset_days = fields.Integer(
        strict=True,
        validate=validate.Range(min=-MAX_DAYS, max=MAX_DAYS),
        metadata=doc(
            "Days relative to the expiry date: negative before it, 0 on the day, positive after "
            "it (while the record stays expired). Required unless `event` is a status.",
            -30,
        ),
    )
    event = fields.String(
        validate=validate.OneOf(STAGE_EVENTS),
        metadata=doc(
            "What the stage counts from: `expiry` (default, with offset_days), or while the "
            "record is `expired`, `revoked` or `missing` (no offset, no repeats).",
            "expiry",
        ),
    )
    recipients = fields.List(
        StageRecipient(validate=validate.Length(max=320)),
        required=True,
        validate=validate.Length(min=1, max=50),
        metadata=doc(
            '"holder" (the employee, or the client\'s contact), "manager" (the employee\'s '
            'manager_id), "location_managers" (a location\'s manager_ids), "custodian" (an '
            "asset's custodian), \"admins\" (the org's admin emails), or email addresses.",
            ["holder", "manager"],
        ),
    )
    channels = fields.List(
        fields.String(validate=validate.OneOf(CHANNELS)),
        required=True,
        validate=validate.Length(min=1, max=len(CHANNELS)),
        metadata=doc("How to deliver: email and/or the org's signed webhook.", ["email"]),
    )
    repeat_every_days = fields.Integer(
        strict=True,
        allow_none=True,
        validate=validate.Range(min=1, max=365),
        metadata=doc("Repeat the reminder every N days (null: once).", 7),
    )
    max_repeats = fields.Integer(
        strict=True,
        validate=validate.Range(min=0, max=MAX_REPEATS),
        metadata=doc("How many times it repeats after the first (with repeat_every_days).", 3),
    )

    @validates_schema
    def _consistent(self, data: dict[str, Any], **_kw: Any) -> None:
        event = data.get("event", "expiry")
        if event == "expiry" and "offset_days" not in data:
            raise ValidationError("Required for a stage counting from the expiry.", "offset_days")
        if event != "expiry":
            if data.get("offset_days"):
                raise ValidationError("Only expiry stages take an offset.", "offset_days")
            if data.get("repeat_every_days"):
                raise ValidationError("Only expiry stages repeat.", "repeat_every_days")
        if data.get("repeat_every_days") and "max_repeats" not in data:
            raise ValidationError("Required with repeat_every_days.", "max_repeats")
        if data.get("max_repeats") and not data.get("repeat_every_days"):
            raise ValidationError("Needs repeat_every_days.", "max_repeats")
        _unique_field(data.get("channels", []), "Channels", "channels")
        _unique_field(data.get("recipients", []), "Recipients", "recipients")


class ReminderPlanSchema(Schema):
    stages = fields.List(
        fields.Nested(ReminderStageSchema),
        required=True,
        validate=validate.Length(max=MAX_RULES),
        metadata=doc(
            "The reminders, each on its day (the order does not matter).",
            [
                {"offset_days": -60, "recipients": ["holder"], "channels": ["email"]},
                {
                    "offset_days": -30,
                    "recipients": ["holder", "manager"],
                    "channels": ["email"],
                    "repeat_every_days": 7,
                    "max_repeats": 3,
                },
                {"offset_days": 0, "recipients": ["admins"], "channels": ["email"]},
            ],
        ),
    )
    stop_when = fields.String(
        load_default=DEFAULT_STOP_WHEN,
        validate=validate.OneOf(STOP_WHEN),
        metadata=doc(
            "`renewed` (default): reminders stop at the renewal; `submission_pending`: also "
            "while a submission of the record waits for review.",
            "renewed",
        ),
    )

    @validates_schema
    def _one_stage_per_moment(self, data: dict[str, Any], **_kw: Any) -> None:
        keys = [stage_key(stage) for stage in data.get("stages", [])]
        if len(keys) != len(set(keys)):
            raise ValidationError("Two stages have the same day or event.", "stages")


class Assignee(Text):
    """`holder` or an employee id (normalized to the canonical UUID string)."""

    default_error_messages = {"assignee": 'Must be "holder" or an employee id.'}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        result = super()._deserialize(value, attr, data, **kwargs)
        if result == HOLDER:
            return result
        try:
            return str(uuid.UUID(result))
        except ValueError as exc:
            raise self.make_error("assignee") from exc


class TaskRuleSchema(Schema):
    days_before_expiry = fields.Integer(
        required=True,
        strict=True,
        validate=validate.Range(min=0, max=MAX_DAYS),
        metadata=doc("Create the renewal task this many days before the expiry date.", 30),
    )
    assignee = Assignee(
        required=True,
        validate=validate.Length(max=64),
        metadata=doc('"holder" (the certified employee) or an employee id.', "holder"),
    )


# --- certifications --------------------------------------------------------------------------


def _certification_fields() -> dict[str, fields.Field[Any]]:
    """The writable fields; fresh objects per schema (create marks name and type required)."""
    return {
        "name": name_field(
            metadata=doc(
                "Clear, descriptive name, unique in the organization (case-insensitive).",
                "OSHA 10-Hour Safety",
            )
        ),
        "type": fields.String(
            validate=validate.OneOf(CERTIFICATION_TYPES),
            metadata=doc(
                "What it applies to: employee, asset, client or location. Cannot change once "
                "any assignment exists.",
                "employee",
            ),
        ),
        "issuer": Text(
            allow_none=True,
            validate=validate.Length(max=200),
            metadata=doc("The issuing organization or body.", "OSHA"),
        ),
        "description": Text(
            allow_none=True,
            validate=validate.Length(max=10000),
            metadata=doc("Additional context.", "Entry-level safety awareness training."),
        ),
        "cost": Money(
            allow_none=True,
            metadata={"description": "Cost as a decimal string, >= 0, at most 2 places."},
        ),
        "group_ids": _ids("Groups it belongs to (creating inside a group = passing it)."),
        "role_ids": _ids(
            "Employee type only: every active employee holding one of these roles must hold it."
        ),
        "client_ids": _ids(
            "Employee type: the members of these clients (between their dates) must hold it; "
            "client type: these clients; location type: these clients' locations."
        ),
        "location_ids": _ids(
            "Employee type: the members of these sites' rosters (between their dates); asset "
            "type: the assets located there; location type: these locations."
        ),
        "asset_categories": fields.List(
            Text(validate=validate.Length(min=1, max=200)),
            validate=validate.Length(max=MAX_LINKS),
            metadata=doc(
                "Asset type only: active assets of these categories (ignoring case) must hold it.",
                ["Crane"],
            ),
        ),
        "applies_to_all": StrictBoolean(
            metadata=doc(
                "Client or location type only: every active client (location) must hold it.",
                False,
            )
        ),
        "satisfied_by": _ids(
            "Certifications whose records satisfy this one for the same subject (OSHA 10 is "
            "satisfied by OSHA 30): same type only, no cycles (409), one level (not "
            "transitive). A holder's assignment takes the best status among its own record "
            "and these (`satisfied_via` says which); a change starts a `recompute` job."
        ),
        "validity": fields.Nested(
            ValiditySchema,
            allow_none=True,
            metadata=doc(
                'Renewal frequency, {"months": n} or {"days": n}; null = never expires.',
                {"months": 12},
            ),
        ),
        "warning_days": fields.Integer(
            strict=True,
            validate=validate.Range(min=0, max=MAX_DAYS),
            metadata=doc("The Expires Soon window in days (default 30).", 30),
        ),
        "valid_when_added": StrictBoolean(
            metadata=doc("A new assignment without a record counts as issued today.", False)
        ),
        "forms_required": StrictBoolean(
            metadata=doc("Valid only once a form submission is accepted (needs `form`).", False)
        ),
        "review_required": StrictBoolean(
            metadata=doc(
                "Submissions (self-service or by an admin) wait for a reviewer's approval; "
                "implied by forms_required.",
                False,
            )
        ),
        "form": fields.Nested(
            FormSchema,
            allow_none=True,
            metadata=doc(
                "The form to fill in when forms_required.",
                {"fields": [{"name": "card_number", "label": "Card number", "type": "text"}]},
            ),
        ),
        "notification_rules": fields.List(
            fields.Nested(NotificationRuleSchema),
            validate=validate.Length(max=MAX_RULES),
            metadata=doc(
                "Who to notify when (compatible form of `reminder_plan`: writing it replaces the "
                "plan with one stage per rule; reading it shows the stages a rule can express).",
                [
                    {
                        "trigger": "before_expiry",
                        "days": 30,
                        "recipients": ["holder"],
                        "channels": ["email"],
                    }
                ],
            ),
        ),
        "reminder_plan": fields.Nested(
            ReminderPlanSchema,
            metadata=doc(
                "Who to remind when, in stages (replaces the plan). `notification_rules` is the "
                "older form of the same thing: give one or the other.",
                {
                    "stages": [
                        {"offset_days": -30, "recipients": ["holder"], "channels": ["email"]}
                    ],
                    "stop_when": "renewed",
                },
            ),
        ),
        "task_rules": fields.List(
            fields.Nested(TaskRuleSchema),
            validate=validate.Length(max=MAX_RULES),
            metadata=doc(
                "Renewal tasks to create before expiry.",
                [{"days_before_expiry": 30, "assignee": "holder"}],
            ),
        ),
        "task_assignee_id": fields.UUID(
            allow_none=True,
            metadata=doc(
                "An employee who gets the renewal tasks of this certification's assets, clients "
                "and locations; null: the organization's default_task_assignee_id.",
                None,
            ),
        ),
    }


def _create_fields() -> dict[str, fields.Field[Any]]:
    spec = _certification_fields()
    spec["name"].required = True
    spec["type"].required = True
    return spec


CertificationCreateSchema = Schema.from_dict(_create_fields(), name="CertificationCreateSchema")


def _patch_fields() -> dict[str, fields.Field[Any]]:
    spec = _certification_fields()
    spec["apply_to_current"] = StrictBoolean(
        load_only=True,
        metadata=doc(
            "With `validity`: also move the computed expiry of every current cycle (the "
            "`recompute` job's result counts them in `expiries`). Default false: a new "
            "validity applies to cycles recorded from now on.",
            True,
        ),
    )
    return spec


CertificationPatchSchema = Schema.from_dict(_patch_fields(), name="CertificationPatchSchema")


class JobRefSchema(Schema):
    id = fields.UUID(metadata=doc("Poll it at GET /jobs/{id}.", EXAMPLE_ID))
    kind = fields.String(metadata=doc("role_fanout or recompute.", "role_fanout"))


def _output_fields() -> dict[str, fields.Field[Any]]:
    spec = _certification_fields()
    spec |= {
        "id": fields.UUID(metadata=doc("The certification's id.", EXAMPLE_ID)),
        "warning_days": fields.Integer(metadata=doc("The Expires Soon window in days.", 30)),
        "archived": fields.Boolean(metadata=doc("Archived: hidden from pickers.", False)),
        "archived_at": fields.DateTime(
            allow_none=True, metadata=doc("When it was archived.", None)
        ),
        "created_at": fields.DateTime(metadata=doc("Creation time.", "2026-03-01T10:00:00Z")),
        "updated_at": fields.DateTime(metadata=doc("Last change.", "2026-03-01T10:00:00Z")),
        "jobs": fields.List(
            fields.Nested(JobRefSchema),
            metadata=doc(
                "Background work this request started (role fan-out, status recompute).", []
            ),
        ),
    }
    return spec


CertificationSchema = Schema.from_dict(_output_fields(), name="CertificationSchema")


class CertificationListArgsSchema(PageArgs):
    group_id = fields.UUID(metadata=doc("Only certifications in this group.", EXAMPLE_ID))
    recursive = fields.Boolean(
        load_default=False,
        metadata=doc("With group_id: include the group's subgroups, at any depth.", True),
    )
    ungrouped = fields.Boolean(
        load_default=False, metadata=doc("Only certifications in no group.", True)
    )
    type = fields.String(
        validate=validate.OneOf(CERTIFICATION_TYPES), metadata=doc("Only this type.", "asset")
    )
    q = Text(
        validate=validate.Length(min=1, max=200),
        metadata=doc("Case-insensitive search in the name.", "osha"),
    )
    archived = fields.Boolean(
        load_default=False,
        metadata=doc("false (default): live ones; true: only archived ones.", False),
    )
    updated_since = updated_since("certifications")
    sort = sort_field(("name", "created_at", "updated_at"), "name")

    @validates_schema
    def _one_grouping(self, data: dict[str, Any], **_kw: Any) -> None:
        if data.get("ungrouped") and data.get("group_id"):
            raise ValidationError("Use either group_id or ungrouped.", "ungrouped")
