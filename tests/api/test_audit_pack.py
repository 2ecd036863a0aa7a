"""The audit pack: PDF text (pypdf), page 1 rendered non-blank (pdftoppm), the workbook, the
worker job of a large scope, and scope errors. Another org's rows never appear."""

from __future__ import annotations

import io
import shutil
import subprocess
import zipfile
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from pypdf import PdfReader

from api.resources import reports
from certifications.assignments import exemptions
from certifications.assignments.models import Assignment
from tests.api.test_compliance_history import assign, at
from tests.support.factories import build_document

ON = date(2026, 3, 1)


def pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() or "" for page in PdfReader(io.BytesIO(data)).pages)


def assert_page_one_not_blank(data: bytes, tmp_path: Path) -> None:
    if shutil.which("pdftoppm") is None:  # .ci/run installs poppler-utils; skip just this check
        return
    pdf = tmp_path / "pack.pdf"
    pdf.write_bytes(data)
    subprocess.run(
        ["pdftoppm", "-png", "-r", "50", "-f", "1", "-l", "1", str(pdf), str(tmp_path / "p")],
        check=True,
    )
    (png,) = tmp_path.glob("p*.png")
    image = Image.open(png).convert("L")
    low, high = image.getextrema()
    assert low < 128 < high  # dark text on a light page, not one flat colour
    dark = image.point(lambda v: 255 if v < 128 else 0).histogram()[255]
    assert dark > 200


@pytest.fixture
def site(org, make_client, make_subject, make_certification, make_employee, as_tenant) -> Any:
    """A client with two job locations holding location certifications, and a group of
    employee certifications held by three workers (one exempt, one with a document)."""
    acme = make_client(org, name="Acme Construction")
    north = make_subject(org, "location", name="North Site", client_id=acme.id)
    south = make_subject(org, "location", name="South Yard", client_id=acme.id)
    permit = make_certification(org, type="location", name="Site Permit", warning_days=0)
    assign(as_tenant, org, permit, north, date(2026, 1, 5), issued_on=date(2025, 6, 1),
           expires_on=date(2026, 6, 1))  # fmt: skip
    assign(as_tenant, org, permit, south, date(2026, 1, 5))
    return {"acme": acme, "north": north, "south": south, "permit": permit}


def test_location_pack_names_the_site_and_renders(api, org, site, tmp_path):
    resp = api.get(f"/reports/audit-pack?location_id={site['north'].id}&on={ON}")
    assert resp.status_code == 200, resp.get_json()
    assert resp.mimetype == "application/pdf"
    assert "attachment" in resp.headers["Content-Disposition"]
    text = pdf_text(resp.data)
    assert "North Site" in text
    assert org.name in text
    assert "Site Permit" in text
    assert "South Yard" not in text  # the other site is outside this scope
    assert "2026-03-01" in text
    assert_page_one_not_blank(resp.data, tmp_path)


def test_client_pack_lists_each_member(api, org, site):
    resp = api.get(f"/reports/audit-pack?client_id={site['acme'].id}&on={ON}")
    assert resp.status_code == 200, resp.get_json()
    text = pdf_text(resp.data)
    for name in ("Acme Construction", "North Site", "South Yard"):
        assert name in text
    assert "Valid" in text
    assert "Missing" in text


def test_group_pack_members_exemptions_documents_and_workbook(
    api, org, make_group, make_certification, make_employee, as_tenant, make_org
):
    group = make_group(org, name="Working at height")
    harness = make_certification(org, name="Harness", group_ids=[group.id])
    names = ["Ana Lopez", "Bo Chen", "Cy Okafor"]
    workers = [make_employee(org, name=n) for n in names]
    held = [
        assign(as_tenant, org, harness, w, date(2026, 1, 5), issued_on=date(2026, 1, 5))
        for w in workers
    ]
    outsider = make_employee(org, name="Not In Group")
    other_cert = make_certification(org, name="Forklift")
    assign(as_tenant, org, other_cert, outsider, date(2026, 1, 5))
    with as_tenant(org.id) as s:
        exemptions.exempt(
            s,
            s.get(Assignment, held[1].id),
            "Medical leave",
            None,
            actor="t",
            now=at(date(2026, 2, 1)),
        )
        build_document(s, assignment_id=held[0].id, filename="ana-harness.pdf")
        s.commit()
    other = make_org(name="Other Org Secret")
    assign(as_tenant, other, make_certification(other, name="Harness"),
           make_employee(other, name="Secret Worker"), date(2026, 1, 5))  # fmt: skip
    # Today: the document was uploaded now, so it is on record.
    resp = api.get(f"/reports/audit-pack?group_id={group.id}")
    assert resp.status_code == 200, resp.get_json()
    text = pdf_text(resp.data)
    for name in names:
        assert name in text
    assert "Working at height" in text
    assert "Medical leave" in text
    assert "ana-harness.pdf" in text
    assert "Not In Group" not in text
    assert "Secret Worker" not in text
    assert "Other Org Secret" not in text
    # On 1 March the document was not uploaded yet.
    assert "ana-harness.pdf" not in pdf_text(
        api.get(f"/reports/audit-pack?group_id={group.id}&on={ON}").data
    )
    book = api.get(f"/reports/audit-pack?group_id={group.id}&format=xlsx")
    assert book.status_code == 200
    with zipfile.ZipFile(io.BytesIO(book.data)) as z:
        listed = z.namelist()
        strings = z.read("xl/sharedStrings.xml").decode()
    assert any(n.startswith("xl/charts/chart") for n in listed)  # the 12-month trend chart
    for name in [*names, "Medical leave", "ana-harness.pdf"]:
        assert name in strings
    assert "Secret Worker" not in strings


def test_a_large_scope_is_built_by_a_job(api, org, site, jobs, monkeypatch):
    monkeypatch.setattr(reports, "SYNC_SUBJECTS", 1)
    resp = api.get(f"/reports/audit-pack?client_id={site['acme'].id}&on={ON}")
    assert resp.status_code == 202, resp.get_json()
    job_id = resp.get_json()["job_id"]
    pending = api.get(f"/reports/audit-pack/{job_id}")
    assert pending.status_code in (200, 409)
    jobs.drain()
    job = api.get(f"/jobs/{job_id}").get_json()
    assert job["state"] == "done", job
    download = api.get(job["result"]["download"].removeprefix("/api/v1"))
    assert download.status_code == 200
    assert "South Yard" in pdf_text(download.data)


def test_scope_errors(api, org, site, make_org, make_subject):
    theirs = make_subject(make_org(), "location", name="Theirs")
    assert api.get(f"/reports/audit-pack?location_id={theirs.id}").status_code == 404
    for path in (
        "/reports/audit-pack",
        f"/reports/audit-pack?location_id={site['north'].id}&client_id={site['acme'].id}",
        f"/reports/audit-pack?location_id={site['north'].id}&on=2999-01-01",
        f"/reports/audit-pack?location_id={site['north'].id}&format=doc",
    ):
        resp = api.get(path)
        assert resp.status_code == 422, (path, resp.get_json())
