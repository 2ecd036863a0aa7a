"""Factories for assignment tests: directory rows and certifications arranged through the ORM."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from certifications.catalog.models import Certification, CertificationRole
from certifications.directory.models import Asset, Client, Employee, Location, Role
from infra import context
from infra import database as db


def _add(org_id: uuid.UUID, rows: Iterable[Any]) -> list[Any]:
    rows = list(rows)
    with context.tenant(org_id), db.new_session() as s:
        s.add_all(rows)
        s.commit()
    return rows


def role(org_id: uuid.UUID, name: str | None = None) -> Role:
    return _add(org_id, [Role(name=name or f"Role {uuid.uuid4().hex[:6]}")])[0]


def employees(org_id: uuid.UUID, n: int, role_id: uuid.UUID | None = None) -> list[Employee]:
    return _add(
        org_id, [Employee(name=f"Employee {i}", role_id=role_id, active=True) for i in range(n)]
    )


def employee(org_id: uuid.UUID, role_id: uuid.UUID | None = None) -> Employee:
    return employees(org_id, 1, role_id)[0]


def subject(org_id: uuid.UUID, kind: str) -> Any:
    model = {"employee": Employee, "asset": Asset, "client": Client, "location": Location}[kind]
    return _add(org_id, [model(name=f"{kind} {uuid.uuid4().hex[:6]}")])[0]


def certification(
    org_id: uuid.UUID, role_ids: Iterable[uuid.UUID] = (), **fields: Any
) -> Certification:
    values: dict[str, Any] = {
        "name": f"Cert {uuid.uuid4().hex[:8]}",
        "type": "employee",
        "warning_days": 30,
        "notification_rules": [],
        "task_rules": [],
        **fields,
    }
    cert = Certification(id=uuid.uuid4(), **values)
    links = [CertificationRole(certification_id=cert.id, role_id=r) for r in role_ids]
    with context.tenant(org_id), db.new_session() as s:
        s.add(cert)
        s.flush()
        s.add_all(links)
        s.commit()
    return cert


def link_role(org_id: uuid.UUID, certification_id: uuid.UUID, role_id: uuid.UUID) -> None:
    _add(org_id, [CertificationRole(certification_id=certification_id, role_id=role_id)])
