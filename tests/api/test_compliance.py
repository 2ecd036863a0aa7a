"""Org-wide compliance summary and the renewal forecast."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from certifications.assignments.models import Assignment
from certifications.assignments.status import add_months
from certifications.catalog.models import Certification
from tenancy.organizations import org_today
from tests.api.test_views import build_directory, counts


def figures(item: dict[str, Any]) -> tuple[Any, ...]:
    return (item["counts"], item["required"], item["compliant"], item["compliance"])


def test_summary(api, org, make_org, as_tenant):
    w = build_directory(as_tenant, org)
    build_directory(as_tenant, make_org())  # another org's identical data never counts
    resp = api.get("/compliance/summary")
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    by_cert = {c["name"]: figures(c) for c in body["certifications"]}
    assert by_cert == {
        # Carol left (her expired First Aid is out); Alice's old revoked cycle is history.
        "First Aid": (counts(valid=1, missing=1), 2, 1, 0.5),
        "Harness": (counts(expires_soon=1, upcoming=1), 2, 1, 0.5),
        "ISO 9001": (counts(expired=1, revoked=1), 2, 0, 0.0),
        "Inspection": (counts(expires_soon=1), 1, 1, 1.0),
        "Insurance": (counts(missing=1), 1, 0, 0.0),
        "Site Permit": (counts(valid=1), 1, 1, 1.0),
    }
    assert [c["name"] for c in body["certifications"]] == sorted(by_cert)
    assert body["certifications"][0]["certification_id"] == str(w.aid.id)
    assert body["certifications"][0]["type"] == "employee"
    by_group = {g["name"]: figures(g) for g in body["groups"]}
    assert by_group == {
        "Heights": (counts(expires_soon=1, upcoming=1), 2, 1, 0.5),
        "Quality": (counts(valid=1, missing=1, expired=1, revoked=1), 4, 1, 0.25),
        # Safety includes its subgroup Heights.
        "Safety": (counts(valid=1, missing=1, expires_soon=2, upcoming=1), 5, 3, 0.6),
    }
    heights = next(g for g in body["groups"] if g["name"] == "Heights")
    assert heights["parent_id"] == str(w.safety.id)
    assert figures(body["totals"]) == (
        counts(valid=2, expires_soon=2, missing=2, expired=1, upcoming=1, revoked=1),
        9,
        4,
        0.4444,
    )
    # With the leavers: Carol's expired First Aid (no longer required) counts, not the ratio.
    every = api.get("/compliance/summary?include_inactive=true").get_json()
    assert figures(every["totals"]) == (
        counts(valid=2, expires_soon=2, missing=2, expired=2, upcoming=1, revoked=1),
        9,
        4,
        0.4444,
    )


@pytest.mark.parametrize(
    ("path", "build", "schema"),
    [
        ("/compliance/summary", "compliance_summary", "ComplianceSummarySchema"),
        ("/views/groups", "group_tree", "GroupTreeSchema"),
    ],
)
@pytest.mark.parametrize("query", ["", "?include_inactive=true"])
def test_the_answer_is_its_documented_schemas_dump(api, org, as_tenant, path, build, schema, query):
    """Both answers are written by orjson from the plain structures; the schemas still
    document them: the answer equals the schema's dump of the same structure, key for key."""
    import json

    from api.schemas import views as view_schemas
    from certifications.reporting import compliance

    build_directory(as_tenant, org)
    resp = api.get(path + query)
    assert resp.status_code == 200, resp.get_json()
    with as_tenant(org.id) as s:
        data = getattr(compliance, build)(s, bool(query))
    dumped = getattr(view_schemas, schema)().dump(data)
    assert resp.get_json() == json.loads(json.dumps(dumped, default=str))
    assert resp.get_data().endswith(b"\n")  # as Flask's JSON provider writes it


def test_summary_of_an_empty_org(api):
    body = api.get("/compliance/summary").get_json()
    assert body == {
        "totals": {
            "counts": counts(),
            "required": 0,
            "compliant": 0,
            "compliance": None,
            "exempt": 0,
        },
        "certifications": [],
        "groups": [],
    }


# The forecast's clock, pinned: 02:00 on the 16th in Kiritimati (UTC+14), still the 15th in
# UTC. Read from the real clock, the fixture's "today" and the API's differed for a run that
# crossed the org's midnight (10:00 UTC).
NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)


@pytest.fixture
def forecast_org(make_org, api_for, as_tenant, monkeypatch):
    """Renewals around the org's today, in a zone far from UTC, plus what must not count."""
    import api.resources.compliance as resource

    monkeypatch.setattr(resource, "utcnow", lambda: NOW)
    org = make_org(timezone="Pacific/Kiritimati")
    today = org_today(org.timezone, NOW)
    assert today == date(2026, 6, 16)
    first = today.replace(day=1)
    month = lambda k: add_months(first, k)  # noqa: E731

    def seed(org_id: Any, only_one: bool = False) -> None:
        with as_tenant(org_id) as s:
            a = Certification(name="A", type="asset", cost=Decimal("100.00"))
            b = Certification(name="B", type="asset", cost=Decimal("0.10"))
            c = Certification(name="C", type="asset")
            gone = Certification(name="Gone", type="asset", cost=Decimal(5), archived_at=NOW)
            s.add_all([a, b, c, gone])
            s.flush()

            def due(cert: Certification, on: Any, **kw: Any) -> None:
                s.add(
                    Assignment(
                        certification_id=cert.id, subject_type="asset",
                        subject_id=uuid.uuid4(), status="valid",
                        issued_on=on - timedelta(days=400), expires_on=on, **kw,
                    )
                )  # fmt: skip

            due(a, today)
            if not only_one:
                due(b, month(1) - timedelta(days=1))  # last day of this month
                due(a, month(2))
                due(c, month(2) + timedelta(days=3))  # no cost: counted, costs nothing
                due(a, today - timedelta(days=1))  # already expired: not falling due
                due(a, month(1), revoked_at=NOW, revoked_reason="x")
                due(a, month(1) + timedelta(days=1), required=False)
                due(gone, month(1))
                due(a, month(12))  # 13th month
            s.commit()

    seed(org.id)
    seed(make_org().id, only_one=True)
    return api_for(org), today


def test_forecast(forecast_org):
    api, today = forecast_org
    resp = api.get("/compliance/forecast")
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    first = today.replace(day=1)
    assert body["today"] == body["from"] == today.isoformat()
    assert body["to"] == (add_months(first, 12) - timedelta(days=1)).isoformat()
    months = body["months"]
    assert [m["month"] for m in months] == [
        add_months(first, k).strftime("%Y-%m") for k in range(12)
    ]
    assert months[0] == {"month": first.strftime("%Y-%m"), "renewals": 2, "cost": "100.10"}
    assert months[1]["renewals"] == 0
    assert months[1]["cost"] == "0.00"
    assert (months[2]["renewals"], months[2]["cost"]) == (2, "100.00")
    assert sum(m["renewals"] for m in months[3:]) == 0
    assert body["total"] == {"renewals": 4, "cost": "200.10"}
    longer = api.get("/compliance/forecast?months=13").get_json()
    assert len(longer["months"]) == 13
    assert (longer["months"][12]["renewals"], longer["months"][12]["cost"]) == (1, "100.00")
    assert longer["total"] == {"renewals": 5, "cost": "300.10"}
    assert len(api.get("/compliance/forecast?months=1").get_json()["months"]) == 1


@pytest.mark.parametrize("months", ["0", "37", "1000", "-1", "abc", "99999999999999999999"])
def test_forecast_bounds(api, months):
    resp = api.get(f"/compliance/forecast?months={months}")
    assert resp.status_code == 422
    assert "months" in resp.get_json()["errors"]["query"]


def test_compliance_permissions(api_for, org, make_org):
    reader = api_for(org, scopes=["directory:read"])
    for path in ("/compliance/summary", "/compliance/forecast"):
        resp = reader.get(path)
        assert resp.status_code == 403
        assert "certifications:read" in resp.get_json()["message"]
        off = api_for(make_org(modules=())).get(path)
        assert off.status_code == 403
        assert off.get_json()["code"] == "module_disabled"
