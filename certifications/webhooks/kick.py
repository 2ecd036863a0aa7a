"""Start a delivery round soon after a commit that produced webhook events through the ORM.

The triggers write events in any statement; set-based writers (recompute, fan-out, bulk) run
in or request the org's tick, which queues a round when deliveries wait (`workers.tick`). This
hook covers the single-row writes (an assignment created, renewed, deleted; a submission):
a flush that touched such a row marks the session, and before its commit one indexed query asks
whether deliveries wait, queueing one round through the outbox if so.
"""

from __future__ import annotations

from itertools import chain
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

from certifications.assignments.models import Assignment, AssignmentCycle, StatusEvent
from certifications.evidence.models import Submission
from certifications.webhooks.endpoints import request_delivery
from certifications.webhooks.sending import wants_round
from infra.context import current_org_id
from infra.database import utcnow

WATCHED = (Assignment, AssignmentCycle, StatusEvent, Submission)
TOUCHED_KEY = "webhooks_touched"


def install_delivery_kick(factory: sessionmaker[Session]) -> None:
    event.listen(factory, "after_flush", _note)
    event.listen(factory, "before_commit", _kick)
    event.listen(factory, "after_rollback", _forget)


def _note(session: Session, _context: Any) -> None:
    if session.info.get(TOUCHED_KEY):
        return
    if any(isinstance(obj, WATCHED) for obj in chain(session.new, session.dirty, session.deleted)):
        session.info[TOUCHED_KEY] = True


def _kick(session: Session) -> None:
    if not session.info.pop(TOUCHED_KEY, False) or current_org_id() is None:
        return
    if wants_round(session, utcnow()):
        request_delivery(session)


def _forget(session: Session) -> None:
    session.info.pop(TOUCHED_KEY, None)
