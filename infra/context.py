"""The current tenant, per request or per job, as a context variable."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_current_org: ContextVar[uuid.UUID | None] = ContextVar("current_org", default=None)
_platform: ContextVar[bool] = ContextVar("platform", default=False)


def current_org_id() -> uuid.UUID | None:
    return _current_org.get()


def require_org_id() -> uuid.UUID:
    org_id = _current_org.get()
    if org_id is None:
        raise RuntimeError("no tenant in context")
    return org_id


def set_current_org(org_id: uuid.UUID | None) -> None:
    _current_org.set(org_id)


def in_platform_context() -> bool:
    return _platform.get()


@contextmanager
def tenant(org_id: uuid.UUID) -> Iterator[uuid.UUID]:
    """Run a block as one organization (workers, CLI, tests)."""
    token = _current_org.set(org_id)
    try:
        yield org_id
    finally:
        _current_org.reset(token)


@contextmanager
def platform() -> Iterator[None]:
    """Run a block as the platform: no tenant, but allowed to touch platform tables (outbox).

    Tenant tables stay closed: the ORM filter and RLS both fail closed without a tenant.
    """
    token = _platform.set(True)
    org_token = _current_org.set(None)
    try:
        yield
    finally:
        _current_org.reset(org_token)
        _platform.reset(token)


_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


def current_request_id() -> str | None:
    return _request_id.get()


def set_request_id(value: str | None) -> None:
    _request_id.set(value)


# Who is acting (the token's `sub`) for the audit trail; set by `tenancy.auth.requires`,
# cleared when the request ends. None: nobody to attribute changes to (workers, CLI).
_actor: ContextVar[str | None] = ContextVar("actor", default=None)


def current_actor() -> str | None:
    return _actor.get()


def set_actor(value: str | None) -> None:
    _actor.set(value)
