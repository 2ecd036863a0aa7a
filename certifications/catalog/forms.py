"""Form submissions: answers checked against a certification's form definition (SPEC §4).

A form is `{"fields": [{"name", "label", "type", "required", "choices"}]}` (a bare list of
fields is read the same way). Types: text, number, date, boolean, choice.
"""

from __future__ import annotations

import math
from typing import Any

from infra.errors import Invalid
from infra.values import parse_iso_date, text_problem

MAX_TEXT = 10_000
MAX_NUMBER = 1e15


def form_fields(form: Any) -> list[dict[str, Any]]:
    if isinstance(form, dict):
        form = form.get("fields")
    if not isinstance(form, list):
        return []
    return [f for f in form if isinstance(f, dict) and isinstance(f.get("name"), str)]


def validate_answers(fields: list[dict[str, Any]], answers: dict[str, Any]) -> dict[str, Any]:
    """The cleaned answers, or 422 naming every field that is unknown, missing or malformed."""
    by_name = {f["name"]: f for f in fields}
    errors: dict[str, list[str]] = {}
    clean: dict[str, Any] = {}
    for name in answers:
        if name not in by_name:
            errors[name] = ["Unknown field."]
    for name, field in by_name.items():
        value = answers.get(name)
        if value is None or value == "":
            if field.get("required"):
                errors[name] = ["Missing data for required field."]
            continue
        try:
            clean[name] = _check(field, value)
        except ValueError as exc:
            errors[name] = [str(exc)]
    if errors:
        raise Invalid({"answers": errors}, message="Invalid answers: " + ", ".join(sorted(errors)))
    return clean


def _check(field: dict[str, Any], value: Any) -> Any:
    kind = field.get("type", "text")
    if kind == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError("Not a valid number.")
        # Compare before any float conversion: a huge JSON integer would overflow it.
        if (isinstance(value, float) and not math.isfinite(value)) or abs(value) > MAX_NUMBER:
            raise ValueError("Number out of range.")
        return value
    if kind == "boolean":
        if not isinstance(value, bool):
            raise ValueError("Not a valid boolean.")
        return value
    if not isinstance(value, str):
        raise ValueError("Not a valid string.")
    if len(value) > MAX_TEXT:
        raise ValueError(f"Must be text of at most {MAX_TEXT} characters.")
    problem = text_problem(value)
    if problem is not None:
        raise ValueError(problem)
    if kind == "date":
        return parse_iso_date(value).isoformat()
    if kind == "choice":
        choices = [c.get("value") if isinstance(c, dict) else c for c in field.get("choices", [])]
        if value not in choices:
            raise ValueError("Must be one of: " + ", ".join(str(c) for c in choices) + ".")
    return value
