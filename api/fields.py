"""Shared marshmallow fields and `doc()`: the one string type (refusing what PostgreSQL cannot
store), emails, money, dates and integers read strictly (ASCII digits, one date form)."""

from __future__ import annotations

import numbers
import re
from collections.abc import Iterable, Mapping
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any, TypedDict

import email_validator
from marshmallow import ValidationError, fields, validate
from marshmallow.types import Validator

from infra.values import DATE_MESSAGE, NUL_MESSAGE, SURROGATE_MESSAGE, parse_iso_date, text_problem

EXAMPLE_ID = "3f2b8c1e-7d4a-4c5e-9b1a-2d6f0e8a7c41"  # an id, as an example in the API docs
MAX_MONEY = Decimal("9999999999.99")  # fits Numeric(12, 2)
_MONEY_RE = r"^[0-9]{1,10}(\.[0-9]{1,2})?$"
# `\d` and `int()` also take other scripts' digits ("١٢٣" was stored as 123.00): ASCII only.
_DECIMAL = re.compile(r"[0-9]+(\.[0-9]+)?", re.ASCII)
_INTEGER = re.compile(r"-?[0-9]+", re.ASCII)


def doc(description: str, example: Any) -> dict[str, Any]:
    """A field's OpenAPI `metadata`: what it means and an example value."""
    return {"description": description, "example": example}


class FieldOptions(TypedDict, total=False):
    """Field keyword options shared by several fields of a schema (`Text(**TIMEZONE)`)."""

    allow_none: bool
    validate: Validator | Iterable[Validator]
    metadata: Mapping[str, Any]


class Text(fields.String):
    """A string PostgreSQL can store: no NUL byte, no lone surrogate (`"\\ud800"` in JSON, which
    UTF-8 cannot encode). Trims nothing."""

    default_error_messages = {"nul": NUL_MESSAGE, "surrogate": SURROGATE_MESSAGE}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        result = super()._deserialize(value, attr, data, **kwargs)
        problem = text_problem(result)
        if problem is not None:
            raise self.make_error("nul" if problem == NUL_MESSAGE else "surrogate")
        return result


class TrimmedText(Text):
    """`Text` without leading or trailing whitespace (identifiers pasted from spreadsheets)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        return super()._deserialize(value, attr, data, **kwargs).strip()


def any_of(choices: Iterable[str]) -> fields.List[str]:
    """A multi-value filter on a vocabulary: `?status=a&status=b` or `?status=a,b` (any of)."""
    values = list(choices)
    return fields.List(
        Text(validate=validate.OneOf(values)),
        validate=validate.Length(min=1, max=len(values)),
        metadata={
            "description": "One or more values: repeat the parameter or separate with commas."
        },
    )


def updated_since(what: str = "rows") -> fields.AwareDateTime:
    """`?updated_since=`: a sync's "changed since my last run" filter on a list."""
    return fields.AwareDateTime(
        metadata=doc(
            f"Only {what} changed at or after this instant (ISO 8601 with a time zone), e.g. to "
            "sync changes since a previous run.",
            "2026-11-01T00:00:00Z",
        )
    )


def name_field(max_length: int = 200, **kwargs: Any) -> Text:
    """A required-looking, non-blank name of bounded length."""
    return Text(validate=[validate.Length(min=1, max=max_length), _not_blank], **kwargs)


def _not_blank(value: str) -> None:
    if not value.strip():
        raise ValidationError("Must not be blank.")


class StrictBoolean(fields.Boolean):
    """A JSON boolean only: `0`, `1`, `"yes"` are refused rather than guessed."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


# Email addresses are checked for syntax only: HR exports carry internal domains (`corp.local`,
# `*.internal`, single-label Active Directory domains) that are real inside the customer's
# network. email_validator refuses special-use names (`.local`, `.test`, ...) on top of syntax
# and documents `SPECIAL_USE_DOMAIN_NAMES` as the list to change; `globally_deliverable=False`
# drops its public-DNS rules (a dot in the domain, a known TLD shape). Nothing is resolved.
email_validator.SPECIAL_USE_DOMAIN_NAMES.clear()
EMAIL_CHECKS: dict[str, Any] = {"check_deliverability": False, "globally_deliverable": False}


class Email(Text):
    default_error_messages = {"invalid_email": "Not a valid email address."}

    def __init__(self, **kwargs: Any) -> None:
        metadata = {"format": "email", "maxLength": 320, **kwargs.pop("metadata", {})}
        super().__init__(metadata=metadata, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        result = super()._deserialize(value, attr, data, **kwargs)
        if len(result) > 320:
            raise self.make_error("invalid_email")
        try:
            return email_validator.validate_email(result, **EMAIL_CHECKS).normalized
        except email_validator.EmailNotValidError as exc:
            raise self.make_error("invalid_email") from exc


class Money(fields.Field[Decimal]):
    """Exact decimal money as a string with 2 places: "129.50" in and out, never a float."""

    default_error_messages = {
        "invalid": 'Must be a decimal string with at most 2 decimal places, e.g. "129.50".',
        "range": f"Must be between 0 and {MAX_MONEY}.",
    }

    def __init__(self, **kwargs: Any) -> None:
        metadata = {
            "type": "string",
            "format": "decimal",
            "pattern": _MONEY_RE,
            "maxLength": 13,
            "example": "129.50",
            **kwargs.pop("metadata", {}),
        }
        super().__init__(metadata=metadata, **kwargs)

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        if value is None:
            return None
        amount = Decimal(value).quantize(Decimal("0.01"))
        return f"{amount.copy_abs() if amount.is_zero() else amount}"  # never "-0.00"

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Decimal:
        # No sign at all (a cost is never negative; "-0.00" used to be echoed back), no spaces,
        # ASCII digits only.
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise self.make_error("invalid")
        if isinstance(value, int):
            if not 0 <= value <= MAX_MONEY:  # before str(): 10**5000 has too many digits
                raise self.make_error("range")
            return Decimal(value).quantize(Decimal("0.01"))
        if value.startswith("-"):
            raise self.make_error("range")
        if not _DECIMAL.fullmatch(value):
            raise self.make_error("invalid")
        try:
            amount = Decimal(value)
        except InvalidOperation as exc:
            raise self.make_error("invalid") from exc
        if amount > MAX_MONEY:
            raise self.make_error("range")
        if amount != amount.quantize(Decimal("0.01")):
            raise self.make_error("invalid")
        return amount.quantize(Decimal("0.01"))


class Date(fields.Date):
    """A date as `YYYY-MM-DD` only (marshmallow's Date takes whatever `date.fromisoformat`
    takes, which on Python 3.11 includes "20260101" and "2026-W01-1")."""

    default_error_messages = {"invalid": DATE_MESSAGE}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> date:
        if not isinstance(value, str):
            raise self.make_error("invalid")
        try:
            return parse_iso_date(value)
        except ValueError as exc:
            raise self.make_error("invalid") from exc


class Integer(fields.Integer):
    """An integer, or (in a query string) its ASCII decimal digits with an optional `-`.

    marshmallow's Integer calls `int()`, which takes "١٠", "1_0" and " 5 ", and truncates 5.5.
    """

    def _validated(self, value: Any) -> int:
        if isinstance(value, str):
            if not _INTEGER.fullmatch(value):
                raise self.make_error("invalid", input=value)
        elif isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise self.make_error("invalid", input=value)
        return super()._validated(value)
