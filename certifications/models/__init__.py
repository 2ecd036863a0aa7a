"""All tables, imported here so Alembic and the app see one metadata."""

from certifications.models.assignments import (
    Assignment,
    AssignmentCycle,
    FormSubmission,
    StatusEvent,
)
from certifications.models.automation import AuditEvent, Notification, Task
from certifications.models.catalog import (
    Certification,
    CertificationClient,
    CertificationGroup,
    CertificationGroupMember,
    CertificationRole,
)
from certifications.models.directory import Asset, Client, Employee, Location, Role
from certifications.models.recompute import RecomputeState
from tenancy.models import Job, Organization, OutboxMessage

__all__ = [
    "Assignment",
    "AssignmentCycle",
    "Asset",
    "AuditEvent",
    "Certification",
    "CertificationClient",
    "CertificationGroup",
    "CertificationGroupMember",
    "CertificationRole",
    "Client",
    "Employee",
    "FormSubmission",
    "Job",
    "Location",
    "Notification",
    "Organization",
    "OutboxMessage",
    "RecomputeState",
    "Role",
    "StatusEvent",
    "Task",
]
