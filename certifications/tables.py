"""Every capability's tables, imported so that one metadata (Alembic, the mapper) knows them all."""

from __future__ import annotations

import certifications.assignments.models
import certifications.assignments.schedule
import certifications.audit.models
import certifications.automation.models
import certifications.catalog.models
import certifications.directory.models
import certifications.evidence.models
import certifications.history.models
import certifications.reporting.models
import certifications.webhooks.models
import jobs.models
import tenancy.idempotency
import tenancy.models
from infra.database import Base

MODULES = (
    tenancy.models,
    tenancy.idempotency,
    jobs.models,
    certifications.directory.models,
    certifications.catalog.models,
    certifications.assignments.models,
    certifications.assignments.schedule,
    certifications.automation.models,
    certifications.evidence.models,
    certifications.webhooks.models,
    certifications.history.models,
    certifications.reporting.models,
    certifications.audit.models,
)
metadata = Base.metadata
