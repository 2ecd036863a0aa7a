"""The shared field types of `api.fields`: what each accepts, exactly (SPEC §7: a clear 422
naming the field, never a guess). The attack run (defect 18) stored "١٢٣" as 123.00, echoed
"-0.00" and accepted "20260101" as a date."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from marshmallow import Schema, ValidationError

from api.fields import Date, Integer, Money, Text


class _Sample(Schema):
    cost = Money(allow_none=True)
    on = Date(allow_none=True)
    n = Integer()
    text = Text()


def _load(**data: object) -> dict[str, object]:
    return _Sample().load(data)


def _refused(**data: object) -> dict[str, object]:
    with pytest.raises(ValidationError) as info:
        _Sample().load(data)
    return info.value.messages


@pytest.mark.parametrize(
    ("sent", "loaded"),
    [("129.50", Decimal("129.50")), ("0", Decimal("0.00")), ("0.5", Decimal("0.50")), (7, 7)],
)
def test_money_accepts_ascii_decimals(sent: object, loaded: Decimal) -> None:
    assert _load(cost=sent)["cost"] == loaded


@pytest.mark.parametrize(
    "sent",
    [
        "\u0661\u0662\u0663",  # Arabic-Indic digits
        "\u0967\u0968",  # Devanagari digits
        "\uff11\uff12",  # fullwidth digits
        "1\u0665.00",  # one foreign digit among ASCII ones
        "-0.00",
        "-0",
        "-1",
        "+1",
        " 1",
        "1\n",
        "1_000",
        "1e2",
        "NaN",
        "Infinity",
        -1,
        -0.0,
    ],
)
def test_money_refuses_other_digits_and_any_sign(sent: object) -> None:
    assert "cost" in _refused(cost=sent)


def test_money_never_echoes_a_negative_zero() -> None:
    assert str(Money()._serialize(Decimal("-0.00"), "cost", None)) == "0.00"


@pytest.mark.parametrize("sent", ["2026-01-01", "1900-01-01", "2999-12-31"])
def test_date_accepts_yyyy_mm_dd(sent: str) -> None:
    assert _load(on=sent)["on"] == date.fromisoformat(sent)


@pytest.mark.parametrize(
    "sent",
    [
        "20260101",
        "2026-W01-1",
        "2026W011",
        "2026-1-1",
        "2026-01-01T00:00:00",
        " 2026-01-01",
        "\uff12\uff10\uff12\uff16-01-01",
        "2026-02-30",
        "",
        20260101,
    ],
)
def test_date_refuses_every_other_form(sent: object) -> None:
    messages = _refused(on=sent)
    assert "YYYY-MM-DD" in str(messages["on"])


@pytest.mark.parametrize(("sent", "loaded"), [(5, 5), ("5", 5), ("-3", -3), ("0", 0)])
def test_integer_accepts_ascii_digits(sent: object, loaded: int) -> None:
    assert _load(n=sent)["n"] == loaded


@pytest.mark.parametrize(
    "sent", ["\u0661\u0662", "\uff15", "1_000", " 5", "5 ", "+5", "5.0", "", True, 5.5]
)
def test_integer_refuses_other_forms(sent: object) -> None:
    assert "n" in _refused(n=sent)


@pytest.mark.parametrize(
    ("path", "param"),
    [
        ("/roles?limit=\u0661\u0660", "limit"),
        ("/roles?limit=1_0", "limit"),
        ("/compliance/forecast?months=\u0661\u0662", "months"),
        ("/tasks?due_before=20260101", "due_before"),
        ("/tasks?due_before=2026-W01-1", "due_before"),
    ],
)
def test_query_parameters_are_as_strict(api, path: str, param: str) -> None:
    resp = api.get(path)
    assert resp.status_code == 422, resp.get_json()
    assert param in resp.get_json()["errors"]["query"]
