"""Test data: one factory per kind of row, as fixtures that return callables.

    def test_reminder(make_org, make_certification, make_employee, make_assignment):
        org = make_org(admin_emails=["boss@example.test"])
        cert = make_certification(org, notification_rules=[RULE])
        make_assignment(cert, make_employee(org), expires_on=date(2026, 12, 1))

Every factory takes the organization (an `Organization` or its id) first, except
`make_assignment(cert, subject)` which uses the certification's; it writes through the ORM as
that tenant, commits, and returns the row (or rows). Keyword arguments are model
columns and override the defaults; the defaults are the least a row needs to be ordinary:

- names are unique (a certification's name must be), employees have a unique e-mail address;
- a certification is for employees, with the model's defaults (no validity: never expires);
- an assignment is a manual record issued on `ISSUED_ON` and `valid`; `issued_on=None` makes
  one without a record (`missing`).

`make_world(org)` makes one row of every kind the API addresses by id (`WORLD_KINDS`), for the
security matrices. The plain `create_*` functions are for code that cannot take fixtures
(module-level caches); tests use the fixtures. Registered by `tests/conftest.py`
(`pytest_plugins`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import date
from typing import Any, TypeVar

import pytest
from sqlalchemy.orm import Session

from certifications.assignments.models import Assignment, AssignmentCycle, StatusEvent
from certifications.automation.models import Notification, Task
from certifications.catalog.models import (
    Certification,
    CertificationClient,
    CertificationGroup,
    CertificationGroupMember,
    CertificationRole,
)
from certifications.directory.models import Asset, Client, Employee, Location, Membership, Role
from certifications.evidence.models import Document, Submission
from certifications.evidence.storage import document_store, object_key
from certifications.reporting.counts import Mismatch
from certifications.reporting.counts import verify as verify_counts
from infra import context
from infra import database as db
from jobs.models import Job
from tenancy.models import Organization
from tenancy.organizations import create_organization

ISSUED_ON = date(2026, 2, 2)  # a made-up record date; no factory reads the clock

OrgRef = Organization | uuid.UUID
World = dict[str, uuid.UUID]
T = TypeVar("T")


def _hex() -> str:
    return uuid.uuid4().hex


def _unique(prefix: str) -> str:
    return f"{prefix} {uuid.uuid4().hex[:8]}"


def _org_id(org: OrgRef) -> uuid.UUID:
    return org.id if isinstance(org, Organization) else org


def _committed(org: OrgRef, build: Callable[[Session], T]) -> T:
    """Run `build(session)` as the org, commit, and return what it built."""
    with context.tenant(_org_id(org)), db.new_session() as s:
        out = build(s)
        s.commit()
        return out


def _added(s: Session, *rows: Any) -> Any:
    s.add_all(rows)
    s.flush()
    return rows[0] if len(rows) == 1 else list(rows)


# --------------------------------------------------------------------------- rows in a session


def build_role(s: Session, **fields: Any) -> Role:
    return _added(s, Role(**{"name": _unique("Role"), **fields}))


def build_employee(s: Session, **fields: Any) -> Employee:
    defaults = {"name": _unique("Employee"), "email": f"employee.{_hex()[:8]}@example.test"}
    return _added(s, Employee(**{**defaults, **fields}))


def build_asset(s: Session, **fields: Any) -> Asset:
    return _added(s, Asset(**{"name": _unique("Asset"), **fields}))


def build_client(s: Session, **fields: Any) -> Client:
    return _added(s, Client(**{"name": _unique("Client"), **fields}))


def build_location(s: Session, **fields: Any) -> Location:
    return _added(s, Location(**{"name": _unique("Location"), **fields}))


SUBJECTS: dict[str, Callable[..., Any]] = {
    "employee": build_employee,
    "asset": build_asset,
    "client": build_client,
    "location": build_location,
}


def build_group(s: Session, **fields: Any) -> CertificationGroup:
    return _added(s, CertificationGroup(**{"name": _unique("Group"), **fields}))


def build_certification(
    s: Session,
    *,
    role_ids: Iterable[uuid.UUID] = (),
    group_ids: Iterable[uuid.UUID] = (),
    client_ids: Iterable[uuid.UUID] = (),
    **fields: Any,
) -> Certification:
    cert = _added(
        s, Certification(**{"name": _unique("Certification"), "type": "employee", **fields})
    )
    s.add_all(CertificationRole(certification_id=cert.id, role_id=r) for r in role_ids)
    s.add_all(CertificationGroupMember(certification_id=cert.id, group_id=g) for g in group_ids)
    s.add_all(CertificationClient(certification_id=cert.id, client_id=c) for c in client_ids)
    s.flush()
    return cert


def build_assignment(s: Session, *, cert: Certification, subject: Any, **fields: Any) -> Assignment:
    fields.setdefault("issued_on", ISSUED_ON)
    fields.setdefault("effective_on", fields["issued_on"])
    fields.setdefault("status", "valid" if fields["issued_on"] else "missing")
    return _added(
        s,
        Assignment(
            certification_id=cert.id, subject_type=cert.type, subject_id=subject.id, **fields
        ),
    )


# ----------------------------------------------------------------------- committed, one by one


def create_org(
    name: str | None = None, modules: Iterable[str] = ("hse",), **fields: Any
) -> Organization:
    with context.platform(), db.new_session() as s:
        org = create_organization(s, name=name or _unique("Org"), modules=list(modules), **fields)
        s.commit()
        return org


def create_role(org: OrgRef, **fields: Any) -> Role:
    return _committed(org, lambda s: build_role(s, **fields))


def create_employee(org: OrgRef, **fields: Any) -> Employee:
    return _committed(org, lambda s: build_employee(s, **fields))


def create_employees(org: OrgRef, n: int, **fields: Any) -> list[Employee]:
    """`n` employees named "Employee 0".. (same other fields), in one transaction."""

    def build(s: Session) -> list[Employee]:
        return [build_employee(s, name=f"Employee {i}", **fields) for i in range(n)]

    return _committed(org, build)


def create_subject(org: OrgRef, kind: str, **fields: Any) -> Any:
    """An employee, asset, client or location (a certification's `type`)."""
    return _committed(org, lambda s: SUBJECTS[kind](s, **fields))


def create_group(org: OrgRef, **fields: Any) -> CertificationGroup:
    return _committed(org, lambda s: build_group(s, **fields))


def create_certification(org: OrgRef, **fields: Any) -> Certification:
    """`role_ids=`, `group_ids=`, `client_ids=` link it; other keywords are columns."""
    return _committed(org, lambda s: build_certification(s, **fields))


def create_certification_role(org: OrgRef, cert: Certification, role: Role) -> None:
    _committed(
        org, lambda s: _added(s, CertificationRole(certification_id=cert.id, role_id=role.id))
    )


def create_assignment(cert: Certification, subject: Any, **fields: Any) -> Assignment:
    """An assignment of `subject` to `cert`, in the certification's organization."""
    return _committed(
        cert.org_id, lambda s: build_assignment(s, cert=cert, subject=subject, **fields)
    )


# ------------------------------------------------------------------------ a world of every kind

_ON = date(2026, 1, 1)
_UNTIL = date(2027, 1, 1)


def _world_assignment(s: Session, w: World) -> Assignment:
    a = _added(
        s,
        Assignment(
            certification_id=w["certification"],
            subject_type="employee",
            subject_id=w["employee"],
            source="manual",
            issued_on=_ON,
            effective_on=_ON,
            expires_on=_UNTIL,
            status="valid",
        ),
    )
    _added(s, AssignmentCycle(assignment_id=a.id, cycle=1, issued_on=_ON, expires_on=_UNTIL))
    _added(
        s, StatusEvent(assignment_id=a.id, to_status="valid", from_status="missing", on_date=_ON)
    )
    return a


# The smallest file the document store accepts: a PDF header (filetype reads the magic bytes).
PDF_BYTES = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def _self_service(employee: Employee) -> Employee:
    """The world's employee signs in as itself: `user_sub` is its own id (token `sub`)."""
    employee.user_sub = str(employee.id)
    return employee


def _world_submission(s: Session, w: World) -> Submission:
    """A pending submission for a worker without an email address (and the world's org has no
    admins): approving or rejecting it in the matrices sends no mail."""
    quiet = build_employee(s, name=_unique("quiet"), email=None)
    assignment = _added(
        s,
        Assignment(
            certification_id=w["certification"],
            subject_type="employee",
            subject_id=quiet.id,
            status="missing",
        ),
    )
    submission = _added(
        s, Submission(assignment_id=assignment.id, cycle=1, status="pending", issued_on=_ON)
    )
    assignment.pending_submission_id = submission.id
    s.flush()
    return submission


def build_document(
    s: Session, *, assignment_id: uuid.UUID, data: bytes = PDF_BYTES, **fields: Any
) -> Document:
    """A document row with its bytes in the suite's store (so its content can be served)."""
    import hashlib
    import io

    from tests.support.suite import SETTINGS

    document_id = uuid.uuid4()
    key = object_key(context.require_org_id(), document_id)
    document_store(SETTINGS).put(key, io.BytesIO(data), "application/pdf")
    values = {
        "cycle": 1,
        "filename": "certificate.pdf",
        "content_type": "application/pdf",
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "storage_key": key,
    }
    return _added(s, Document(id=document_id, assignment_id=assignment_id, **(values | fields)))


# kind -> builder(session, world so far). Order matters: later kinds reference earlier ones.
# A new id route whose kind is not here fails the isolation matrix with "add a factory".
WORLD_KINDS: dict[str, Callable[[Session, World], Any]] = {
    "role": lambda s, w: build_role(s, name=_unique("role"), external_id=_hex()),
    "employee": lambda s, w: _self_service(
        build_employee(
            s,
            name=_unique("emp"),
            email=f"{_hex()[:8]}@example.com",
            role_id=w["role"],
            external_id=_hex(),
        )
    ),  # fmt: skip
    "asset": lambda s, w: build_asset(s, name="asset", serial_number="SN-1", external_id=_hex()),
    "client": lambda s, w: build_client(
        s, name="client", contact_email="c@example.com", external_id=_hex()
    ),
    "location": lambda s, w: build_location(
        s, name="site", address="1 Road", client_id=w["client"], external_id=_hex()
    ),
    "membership": lambda s, w: _added(
        s, Membership(employee_id=w["employee"], location_id=w["location"])
    ),
    "client_membership": lambda s, w: _added(
        s, Membership(employee_id=w["employee"], client_id=w["client"])
    ),
    "group": lambda s, w: build_group(s, name=_unique("group")),
    "certification": lambda s, w: build_certification(
        s,
        name=_unique("cert"),
        validity_months=12,
        warning_days=30,
        cost=10,
        group_ids=[w["group"]],
        role_ids=[w["role"]],
        client_ids=[w["client"]],
    ),  # fmt: skip
    "assignment": _world_assignment,
    "submission": _world_submission,
    "document": lambda s, w: build_document(s, assignment_id=w["assignment"]),
    "job": lambda s, w: _added(s, Job(kind="fanout", state="done", done=1, total=1)),
    "task": lambda s, w: _added(
        s,
        Task(
            assignment_id=w["assignment"],
            certification_id=w["certification"],
            rule_key="renewal:30:holder",
            cycle=1,
            title="Renew",
            assignee_id=w["employee"],
            due_on=_UNTIL,
        ),
    ),  # fmt: skip
    # A failed webhook notification (the world's org has no webhook: a resend fails again,
    # never reaching a mail server).
    "notification": lambda s, w: _added(
        s,
        Notification(
            assignment_id=w["assignment"],
            certification_id=w["certification"],
            rule_key="expired",
            trigger="expired",
            cycle=1,
            channel="webhook",
            recipient="webhook",
            recipient_source="webhook",
            triggered_on=_UNTIL,
            status="failed",
            attempts=3,
        ),
    ),  # fmt: skip
    "webhook": lambda s, w: build_webhook(s),
    "report_schedule": lambda s, w: build_report_schedule(s, location_id=w["location"]),
    "webhook_delivery": lambda s, w: build_webhook_delivery(
        s, endpoint_id=w["webhook"], assignment_id=w["assignment"]
    ),
}


def build_report_schedule(s: Session, *, location_id: uuid.UUID, **fields: Any) -> Any:
    """A weekly audit pack of a location, due next year (no tick of the matrices runs it)."""
    from datetime import UTC, datetime

    from certifications.reporting.models import ReportSchedule

    values = {
        "kind": "audit-pack",
        "format": "pdf",
        "scope_kind": "location",
        "scope_id": location_id,
        "cron": "0 7 * * 1",
        "recipients": ["hse@example.com"],
        "next_run_at": datetime(2099, 1, 5, 7, tzinfo=UTC),
    }
    return _added(s, ReportSchedule(**(values | fields)))


def build_webhook(s: Session, url: str = "https://example.com/hook", **fields: Any) -> Any:
    """A webhook endpoint (subscribed to decided submissions only: the matrices' other calls
    make no deliveries), with the secret `whsec_world`."""
    from certifications.webhooks.models import WebhookEndpoint
    from tenancy.sealed import SealedSecret

    values = {
        "events": ["submission.decided"],
        "event_filter": "|submission.decided|",
        "secret": SealedSecret.seal("whsec_world"),
    }
    return _added(s, WebhookEndpoint(url=url, **(values | fields)))


def build_webhook_delivery(
    s: Session, *, endpoint_id: uuid.UUID, assignment_id: uuid.UUID, status: str = "failed"
) -> Any:
    """A delivery of an `assignment.created` event, written directly (no trigger, no round
    queued): failed by default (the world's; redelivering it goes nowhere here)."""
    from sqlalchemy import func, select

    from certifications.webhooks.models import WebhookDelivery, WebhookEvent

    seq = None  # PostgreSQL: the identity column; SQLite: max + 1, as its triggers write
    if s.get_bind().dialect.name != "postgresql":
        top = select(func.max(WebhookEvent.seq)).execution_options(all_tenants=True)
        seq = (s.scalar(top) or 0) + 1
    event = _added(
        s,
        WebhookEvent(
            seq=seq,
            type="assignment.created",
            assignment_id=assignment_id,
            payload={"assignment_id": str(assignment_id)},
        ),
    )
    return _added(
        s,
        WebhookDelivery(
            endpoint_id=endpoint_id,
            event_id=event.id,
            seq=event.seq,
            status=status,
            attempts=1,
            response_code=500,
        ),
    )


def create_world(org: OrgRef) -> World:
    """One committed row of every kind of `WORLD_KINDS` in this org; returns kind -> id."""

    def build(s: Session) -> World:
        world: World = {}
        for kind, builder in WORLD_KINDS.items():
            world[kind] = builder(s, world).id
        return world

    return _committed(org, build)


# ---------------------------------------------------------------------------------- fixtures


def wrong_counts(org_id: uuid.UUID) -> list[Mismatch]:
    """The org's maintained compliance counts that differ from its assignments (none: right)."""
    with context.tenant(org_id), db.new_session() as s:
        return verify_counts(s)


@pytest.fixture
def make_org() -> Iterator[Callable[..., Organization]]:
    """`make_org(name=None, modules=("hse",), **columns)`: an organization (platform side).

    When the test ends, the maintained compliance counts of every organization it made must
    match their assignments (`certs counts verify`): whatever the test did to statuses,
    through whichever code path, the triggers of migration 0021 kept them exact."""
    made: list[uuid.UUID] = []

    def make(*args: Any, **kwargs: Any) -> Organization:
        org = create_org(*args, **kwargs)
        made.append(org.id)
        return org

    yield make
    wrong = {org_id: found for org_id in made if (found := wrong_counts(org_id))}
    assert not wrong, f"compliance counts differ from the assignments: {wrong}"


@pytest.fixture
def make_role() -> Callable[..., Role]:
    return create_role


@pytest.fixture
def make_employee() -> Callable[..., Employee]:
    return create_employee


@pytest.fixture
def make_employees() -> Callable[..., list[Employee]]:
    return create_employees


@pytest.fixture
def make_subject() -> Callable[..., Any]:
    return create_subject


@pytest.fixture
def make_asset() -> Callable[..., Asset]:
    return lambda org, **fields: create_subject(org, "asset", **fields)


@pytest.fixture
def make_client() -> Callable[..., Client]:
    return lambda org, **fields: create_subject(org, "client", **fields)


@pytest.fixture
def make_group() -> Callable[..., CertificationGroup]:
    return create_group


@pytest.fixture
def make_certification() -> Callable[..., Certification]:
    return create_certification


@pytest.fixture
def make_certification_role() -> Callable[..., None]:
    return create_certification_role


@pytest.fixture
def make_assignment() -> Callable[..., Assignment]:
    return create_assignment


@pytest.fixture
def make_world() -> Callable[[OrgRef], World]:
    return create_world
