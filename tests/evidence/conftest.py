"""Evidence fixtures: an org with a worker linked to its own token, and multipart helpers."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from certifications.assignments.models import Assignment
from certifications.directory.models import Employee
from tenancy.models import Organization
from tests.support.factories import PDF_BYTES

# Leading bytes of real files of each kind, enough for the content sniffer.
PNG_BYTES = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 64
# A Windows executable (the "MZ" header), whatever its name says.
EXE_BYTES = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 300


def pdf(tag: str = "") -> bytes:
    """A distinct small PDF (distinct bytes: distinct SHA-256)."""
    return PDF_BYTES + f"% {tag}\n".encode()


def files(*parts: tuple[bytes, str], **fields: Any) -> dict[str, Any]:
    """A multipart body for the test client: `file` parts plus form fields."""
    body: dict[str, Any] = {k: str(v) for k, v in fields.items()}
    if parts:
        body["file"] = [(io.BytesIO(data), name) for data, name in parts]
    return body


@dataclass
class Scene:
    org: Organization
    worker: Employee
    other: Employee
    assignment: Assignment  # the worker's, missing
    others_assignment: Assignment
    admin: Any
    reviewer: Any
    me: Any  # the worker's own `self` client


@pytest.fixture
def scene(
    make_org, make_employee, make_certification, make_assignment, api_for, smtp, jobs
) -> Iterator[Scene]:
    """The notices a test's submissions send are delivered (to the SMTP sink on loopback) by
    the suite's worker before the next test starts."""
    org = make_org(admin_emails=["boss@example.test"], reviewer_emails=["review@example.test"])
    worker = make_employee(org, name="Wanda Worker", email="wanda@example.test", user_sub="idp|w")
    other = make_employee(org, name="Otto Other", email="otto@example.test", user_sub="idp|o")
    cert = make_certification(org, name="Forklift", validity_months=12)
    assignment = make_assignment(cert, worker, issued_on=None, status="missing")
    others = make_assignment(cert, other, issued_on=None, status="missing")
    yield Scene(
        org=org,
        worker=worker,
        other=other,
        assignment=assignment,
        others_assignment=others,
        admin=api_for(org),
        reviewer=api_for(org, scopes=["certifications:review", "certifications:read"]),
        me=api_for(org, scopes=["self"], sub="idp|w"),
    )
    jobs.drain()
