"""The request's session: see `tenancy.request` (auth shares it for the organization lookup)."""

from tenancy.request import (
    commit_request,
    discard_request_session,
    init_request_sessions,
    open_request_session,
    request_dialect_name,
    request_session,
    tenant_prebuilt_rows,
    tenant_rows,
)

__all__ = [
    "commit_request",
    "discard_request_session",
    "init_request_sessions",
    "open_request_session",
    "request_dialect_name",
    "request_session",
    "tenant_prebuilt_rows",
    "tenant_rows",
]
