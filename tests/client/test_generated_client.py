"""The main flow driven only through a client generated from the served document.

`.ci/check-openapi` generates `certs_client` with openapi-python-client into
`.tools/generated-client`, type-checks this file against it (mypy --strict) and runs it with
`CERTS_REQUIRE_CLIENT=1`. Without the generated client (a plain `make test`) the test is
skipped. The client talks to the app in-process through httpx's WSGI transport.

What it proves: every model the generator built from the document parses what the API
really sends (a `required` property missing, a wrong type or a null the document does not
allow fails here), CSV travels as bytes both ways, and every error is the one problem shape.
"""

from __future__ import annotations

import io
import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from tenancy.auth import TENANT_SCOPES, issue_token

GENERATED = Path(__file__).resolve().parents[2] / ".tools" / "generated-client"
if (GENERATED / "certs_client").is_dir() and str(GENERATED) not in sys.path:
    sys.path.insert(0, str(GENERATED))
if os.environ.get("CERTS_REQUIRE_CLIENT") != "1":
    pytest.importorskip("certs_client", reason="no generated client (.ci/check-openapi makes it)")

from certs_client import AuthenticatedClient  # noqa: E402
from certs_client.api.assignments import (  # noqa: E402
    list_assignments,
    post_assignment_renew,
    post_assignment_revoke,
)
from certs_client.api.certification_groups import create_certification_groups  # noqa: E402
from certs_client.api.certifications import create_certifications  # noqa: E402
from certs_client.api.employees import create_employees, post_employees_bulk  # noqa: E402
from certs_client.api.jobs import get_job  # noqa: E402
from certs_client.api.org import create_organizations, get_org  # noqa: E402
from certs_client.api.roles import create_roles, get_role  # noqa: E402
from certs_client.api.views import get_views_employees_export  # noqa: E402
from certs_client.models import (  # noqa: E402
    Assignment,
    AssignmentPage,
    BulkReport,
    Certification,
    CertificationCreate,
    CertificationCreateType,
    Employee,
    EmployeeBulkRow,
    EmployeeCreate,
    Error,
    Group,
    GroupCreate,
    Job,
    JobState,
    Organization,
    OrganizationCreate,
    OrganizationCreateModulesItem,
    PostEmployeesBulkJsonBody,
    Renew,
    Revoke,
    Role,
    RoleCreate,
    Validity,
)
from certs_client.types import File, Response  # noqa: E402

T = TypeVar("T")
PROBLEM_KEYS = {"type", "title", "code", "status", "message", "errors"}


def ok(resp: Response[T | Error], status: int, kind: type[T]) -> T:
    """The parsed body of a success, typed; anything else fails with the body."""
    assert resp.status_code == status, resp.content[:500]
    assert isinstance(resp.parsed, kind), resp.content[:500]
    return resp.parsed


def problem(resp: Response[Any], status: int) -> Error:
    """An error answer: the problem media type and every member of the one shape."""
    assert resp.status_code == status, resp.content[:500]
    assert resp.headers["Content-Type"].startswith("application/problem+json")
    assert isinstance(resp.parsed, Error), resp.content[:500]
    assert set(resp.parsed.to_dict()) >= PROBLEM_KEYS
    assert resp.parsed.message
    return resp.parsed


def raw_problem(resp: httpx.Response, status: int) -> Error:
    """The same for a request the generated client cannot make (a broken body)."""
    assert resp.status_code == status, resp.content[:500]
    assert resp.headers["Content-Type"].startswith("application/problem+json")
    body = resp.json()
    assert set(body) >= PROBLEM_KEYS
    return Error.from_dict(body)


@pytest.fixture
def connect(app: Any, settings: Any) -> Iterator[Any]:
    """`connect(token)`: a generated client on the app, in-process."""
    clients: list[AuthenticatedClient] = []

    def _connect(token: str) -> AuthenticatedClient:
        client = AuthenticatedClient(
            base_url="http://certs.test",
            token=token,
            raise_on_unexpected_status=True,
            httpx_args={"transport": httpx.WSGITransport(app=app)},
        )
        clients.append(client)
        return client

    yield _connect
    for client in clients:
        client.get_httpx_client().close()


def test_main_flow_through_the_generated_client(connect: Any, settings: Any, jobs: Any) -> None:
    operator = connect(
        issue_token(settings, sub="operator", org_id=None, scopes=["platform:admin"])
    )
    org = ok(
        create_organizations.sync_detailed(
            client=operator,
            body=OrganizationCreate(
                name=f"Client flow {uuid.uuid4().hex[:6]}",
                modules=[OrganizationCreateModulesItem.HSE],
            ),
        ),
        201,
        Organization,
    )
    admin = connect(
        issue_token(settings, sub="admin", org_id=str(org.id), scopes=list(TENANT_SCOPES))
    )
    assert ok(get_org.sync_detailed(client=admin), 200, Organization).id == org.id

    # Directory and catalog: a role, an employee in it, a group, a certification for the role.
    role = ok(
        create_roles.sync_detailed(client=admin, body=RoleCreate(name="Welder")),
        201,
        Role,
    )
    employee = ok(
        create_employees.sync_detailed(
            client=admin,
            body=EmployeeCreate(name="Ada", role_id=role.id, email="ada@corp.local"),
        ),
        201,
        Employee,
    )
    group = ok(
        create_certification_groups.sync_detailed(client=admin, body=GroupCreate(name="Safety")),
        201,
        Group,
    )
    cert = ok(
        create_certifications.sync_detailed(
            client=admin,
            body=CertificationCreate(
                name="Hot work permit",
                type_=CertificationCreateType.EMPLOYEE,
                role_ids=[role.id],
                group_ids=[group.id],
                validity=Validity(months=12),
            ),
        ),
        201,
        Certification,
    )
    assert cert.validity is not None
    assert cert.validity.months == 12
    assert cert.jobs, "a certification with roles starts a fan-out job"

    # Wait for the job, read it through the client.
    jobs.drain()
    job = ok(get_job.sync_detailed(cert.jobs[0].id, client=admin), 200, Job)
    assert job.state == JobState.DONE, job

    # Bulk upsert: JSON rows, then CSV bytes (more employees of the role).
    report = ok(
        post_employees_bulk.sync_detailed(
            client=admin,
            body=PostEmployeesBulkJsonBody(
                items=[
                    EmployeeBulkRow(external_id=f"E-{i}", name=f"Bulk {i}", role_id=role.id)
                    for i in range(3)
                ]
            ),
        ),
        200,
        BulkReport,
    )
    assert report.counts.created == 3
    csv_body = f"name,external_id,role_id\nCsv one,C-1,{role.id}\nCsv two,C-2,{role.id}\n"
    report = ok(
        post_employees_bulk.sync_detailed(
            client=admin, body=File(payload=io.BytesIO(csv_body.encode()), mime_type="text/csv")
        ),
        200,
        BulkReport,
    )
    assert report.counts.created == 2, report
    jobs.drain()

    # List and page the assignments the role fan-out made: 1 + 3 + 2 employees.
    seen: list[uuid.UUID] = []
    cursor: str | None = None
    while True:
        page = ok(
            list_assignments.sync_detailed(
                client=admin, certification_id=cert.id, limit=2, cursor=cursor
            ),
            200,
            AssignmentPage,
        )
        assert len(page.items) <= 2
        seen += [a.id for a in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert len(seen) == len(set(seen)) == 6
    mine = ok(
        list_assignments.sync_detailed(client=admin, subject_id=employee.id),
        200,
        AssignmentPage,
    ).items[0]

    # Renew, then revoke.
    renewed = ok(
        post_assignment_renew.sync_detailed(mine.id, client=admin, body=Renew()),
        200,
        Assignment,
    )
    assert renewed.cycle == mine.cycle + 1
    revoked = ok(
        post_assignment_revoke.sync_detailed(
            mine.id, client=admin, body=Revoke(reason="Left the site")
        ),
        200,
        Assignment,
    )
    assert revoked.status.value == "revoked"

    # The employees view as CSV: bytes, one line per subject per certification.
    export = ok(get_views_employees_export.sync_detailed(client=admin), 200, File)
    lines = export.payload.read().decode().splitlines()
    assert lines[0].startswith("subject_type,subject_id,subject_name")
    assert len(lines) == 1 + 6

    # Every error, in the one shape.
    bad = problem(create_roles.sync_detailed(client=admin, body=RoleCreate(name=" ")), 422)
    assert "json" in bad.errors.to_dict()
    problem(create_roles.sync_detailed(client=admin, body=RoleCreate(name="welder")), 409)
    problem(get_role.sync_detailed(uuid.uuid4(), client=admin), 404)
    reader = connect(issue_token(settings, sub="r", org_id=str(org.id), scopes=["directory:read"]))
    denied = problem(create_roles.sync_detailed(client=reader, body=RoleCreate(name="X")), 403)
    assert denied.errors.to_dict() == {"scope": ["directory:write"]}
    anonymous = connect("not-a-token")
    unauthorized = get_org.sync_detailed(client=anonymous)
    problem(unauthorized, 401)
    assert unauthorized.headers["WWW-Authenticate"].startswith("Bearer")
    http = admin.get_httpx_client()
    malformed = raw_problem(
        http.post(
            "/api/v1/roles", content=b'{"name": ', headers={"Content-Type": "application/json"}
        ),
        400,
    )
    assert "json" in malformed.errors.to_dict()
    raw_problem(http.post("/api/v1/roles", data={"name": "Form"}), 415)
