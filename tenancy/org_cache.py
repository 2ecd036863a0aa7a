"""Organizations as auth sees them, kept per process for a few seconds.

Every request's auth needs the token's organization (does it exist, its modules, time zone,
`require_if_match`); loading it through the ORM was a round trip and ~10% of a small request's
time. A found organization is kept here, as a detached copy, for `TTL_S` seconds.

A change made in this process drops its entry at once: any flush that updates or deletes an
organization (the API's PATCH /org and module toggles, the CLI, the tests' sessions) and the
commit after it. Another process (the other gunicorn workers) sees the change within `TTL_S`.
The copy is read-only by convention: code that changes an organization loads it in its own
session (`tenancy.organizations.get_organization`). An unknown organization is never kept.
"""

from __future__ import annotations

import copy
import threading
import time
import uuid
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session, object_session

from tenancy.models import Organization

TTL_S = 5.0
_CHANGED = "certs_changed_orgs"  # session.info: organizations this transaction changed

_entries: dict[uuid.UUID, tuple[float, Organization]] = {}
_lock = threading.Lock()


def cached(org_id: uuid.UUID) -> Organization | None:
    """The kept copy of `org_id`, if still fresh."""
    entry = _entries.get(org_id)
    if entry is None or entry[0] < time.monotonic():
        return None
    return entry[1]


def keep(org: Organization) -> Organization:
    """Keep a detached copy of `org` (loaded and unchanged) and return it."""
    values = {
        column.key: copy.deepcopy(getattr(org, column.key))
        for column in Organization.__table__.columns
    }
    detached = Organization(**values)
    with _lock:
        _entries[org.id] = (time.monotonic() + TTL_S, detached)
    return detached


def forget(*org_ids: uuid.UUID | None) -> None:
    with _lock:
        for org_id in org_ids:
            if org_id is not None:
                _entries.pop(org_id, None)


def clear() -> None:
    with _lock:
        _entries.clear()


def _changed(_mapper: Any, _connection: Any, org: Organization) -> None:
    forget(org.id)
    session = object_session(org)
    if session is not None:
        session.info.setdefault(_CHANGED, set()).add(org.id)


def _committed(session: Session) -> None:
    """A reader may have kept the old row between the flush and the commit: drop it again."""
    forget(*session.info.pop(_CHANGED, ()))


def _rolled_back(session: Session) -> None:
    session.info.pop(_CHANGED, None)


def _bulk(state: Any) -> None:
    """An UPDATE or DELETE statement on organizations: drop every entry."""
    if (state.is_update or state.is_delete) and any(
        m.class_ is Organization for m in state.all_mappers
    ):
        clear()


event.listen(Organization, "after_update", _changed)
event.listen(Organization, "after_delete", _changed)
event.listen(Session, "after_commit", _committed)
event.listen(Session, "after_soft_rollback", lambda session, _tx: _rolled_back(session))
event.listen(Session, "do_orm_execute", _bulk)
