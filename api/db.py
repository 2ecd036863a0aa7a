"""The request's session: see `tenancy.request` (auth shares it for the organization lookup)."""

from tenancy.request import (
    commit_request,
    discard_request_session,
    init_request_sessions,
    request_session,
)

__all__ = [
    "commit_request",
    "discard_request_session",
    "init_request_sessions",
    "request_session",
]
