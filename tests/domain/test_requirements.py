"""The requirement union at the size of a chunk: every branch repeats the chunk's subject ids,
so a chunk must stay under the databases' bound-parameter limits (SQLite: 32,766)."""

from __future__ import annotations

import uuid
from datetime import date

from sqlalchemy import func, insert, select

from certifications.assignments import fanout
from certifications.assignments.models import Assignment
from certifications.catalog.models import (
    Certification,
    CertificationCategory,
    CertificationClient,
    CertificationLocation,
    CertificationRole,
)
from certifications.directory.models import Client, Employee, Location, Role
from infra.database import utcnow

TODAY = date(2026, 3, 31)


def test_a_full_chunk_with_every_kind_of_source_stays_under_the_parameter_limits(org, as_tenant):
    n = fanout.EMPLOYEE_CHUNK * 2 + 7
    with as_tenant(org.id) as s:
        role, client, site = Role(name="R"), Client(name="C"), Location(name="L")
        certs = {t: Certification(name=f"cert {t}", type=t) for t in ("employee", "asset")}
        certs |= {
            "client": Certification(name="cert client", type="client", applies_to_all=True),
            "location": Certification(name="cert location", type="location"),
        }
        s.add_all([role, client, site, *certs.values()])
        s.flush()
        links = [
            CertificationRole(certification_id=certs["employee"].id, role_id=role.id),
            CertificationClient(certification_id=certs["employee"].id, client_id=client.id),
            CertificationLocation(certification_id=certs["employee"].id, location_id=site.id),
            CertificationCategory(certification_id=certs["asset"].id, category="crane"),
            CertificationLocation(certification_id=certs["location"].id, location_id=site.id),
        ]
        s.add_all(links)
        ids = [uuid.uuid4() for _ in range(n)]
        now = utcnow()
        s.execute(
            insert(Employee),
            [
                {"org_id": org.id, "id": i, "name": f"E{k}", "role_id": role.id, "updated_at": now}
                for k, i in enumerate(ids)
            ],
        )
        s.commit()
        report = fanout.fanout_subjects(s, org.id, ids, today=TODAY, now=utcnow())
        s.commit()
        assert report["created"] == n
        assert s.scalar(select(func.count()).select_from(Assignment)) == n
        again = fanout.fanout_subjects(s, org.id, ids, today=TODAY, now=utcnow())
        assert again == {"created": 0, "removed": 0, "not_required": 0, "required_again": 0}
