"""Blueprints, listed explicitly: one module per resource family, registered by `create_app`."""

from __future__ import annotations

from api.resources import (
    assets,
    assignments,
    audit,
    certifications,
    clients,
    compliance,
    documents,
    employees,
    groups,
    health,
    jobs,
    locations,
    me,
    memberships,
    metrics,
    notifications,
    org,
    preferences,
    reports,
    roles,
    submissions,
    tasks,
    views,
    webhooks,
)

# Under /api/v1, in the order the OpenAPI document lists their tags.
API_BLUEPRINTS = [
    assets.blp,
    assignments.blp,
    audit.blp,
    certifications.blp,
    clients.blp,
    compliance.blp,
    documents.blp,
    employees.blp,
    groups.blp,
    jobs.blp,
    locations.blp,
    memberships.location_members,
    memberships.client_members,
    me.blp,
    notifications.blp,
    org.blp,
    preferences.blp,
    reports.blp,
    roles.blp,
    submissions.blp,
    tasks.blp,
    views.blp,
    webhooks.blp,
]
# Plain Flask blueprints outside /api/v1: probes and metrics.
PLAIN_BLUEPRINTS = [health.blp, metrics.blp]
