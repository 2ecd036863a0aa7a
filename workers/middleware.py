"""Per-message context: the tenant and request id from the message, and outbox bookkeeping."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import dramatiq
from dramatiq.middleware import SkipMessage
from sqlalchemy import or_, select, update

from infra import context
from infra import database as db
from jobs import relay
from jobs.models import OutboxMessage
from workers import lease

log = logging.getLogger("certs.worker")


class TenantMiddleware(dramatiq.Middleware):
    """Every actor runs as the organization named in its message, never as "nobody in particular".

    The message's outbox row is leased while the actor runs (`workers.lease`): a duplicate
    delivery of a finished row, or of one another worker holds, is skipped. On success the row
    is marked done, so the sweep stops re-sending it; a failed run gives the lease back (Dramatiq
    retries the message); once Dramatiq gives up the row is `failed` with the error and a retry
    time the sweep honours (`jobs.relay.RetryPolicy`).
    """

    def before_process_message(
        self, broker: dramatiq.Broker, message: dramatiq.MessageProxy
    ) -> None:
        org_id = message.kwargs.get("org_id")
        context.set_current_org(uuid.UUID(org_id) if org_id else None)
        context.set_request_id(message.options.get("request_id"))
        outbox_id = _outbox_id(message)
        if outbox_id is None:
            return
        claim = lease.claim(outbox_id, message.message_id)
        if claim in (lease.Claim.FINISHED, lease.Claim.HELD):
            log.info("message %s skipped: outbox row %s %s", message.actor_name, outbox_id, claim)
            raise SkipMessage(f"outbox row {outbox_id} {claim.value}")
        if claim is lease.Claim.CLAIMED:
            lease.HEARTBEAT.hold(outbox_id)
        lease.set_current(outbox_id)

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: dramatiq.MessageProxy,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        try:
            outbox_id = _outbox_id(message)
            if outbox_id is not None:
                lease.HEARTBEAT.drop(outbox_id)
                if exception is None:
                    _mark_done(outbox_id)
                elif message.failed:
                    _mark_failed(outbox_id, message.message_id, exception)
                else:
                    _release(outbox_id, message.message_id, exception)
        finally:
            _clear()

    def after_skip_message(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy) -> None:
        _clear()


def _clear() -> None:
    context.set_current_org(None)
    context.set_request_id(None)
    lease.set_current(None)


def _outbox_id(message: dramatiq.MessageProxy) -> uuid.UUID | None:
    value = message.options.get("outbox_id")
    return uuid.UUID(value) if value else None


def _mark_done(outbox_id: uuid.UUID) -> None:
    with context.platform(), db.new_session() as session:
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == outbox_id, OutboxMessage.status != "done")
            .values(status="done", done_at=db.utcnow(), lease_expires_at=None, claimed_by=None)
        )
        session.commit()


def _mine(outbox_id: uuid.UUID, message_id: str) -> Any:
    """The row, if this delivery holds it (or nobody does): another's lease is not ours to end.
    Any status but done/dead: without row locks (SQLite) a fast worker may get here before the
    relay that published the message marked the row `sent` (it then leaves the row alone)."""
    row = OutboxMessage
    return (
        (row.id == outbox_id)
        & row.status.in_(relay.SENDABLE)
        & or_(row.claimed_by.is_(None), row.claimed_by == message_id)
    )


def _release(outbox_id: uuid.UUID, message_id: str, exception: BaseException) -> None:
    """A failed run Dramatiq will retry: the lease goes, the status stays."""
    with context.platform(), db.new_session() as session:
        session.execute(
            update(OutboxMessage)
            .where(_mine(outbox_id, message_id))
            .values(
                lease_expires_at=None,
                claimed_by=None,
                sent_at=db.utcnow(),
                last_error=repr(exception)[:2000],
            )
        )
        session.commit()


def _mark_failed(outbox_id: uuid.UUID, message_id: str, exception: BaseException) -> None:
    """Dramatiq gave up: `failed`, to be sent again by the sweep after the policy's delay."""
    now = db.utcnow()
    with context.platform(), db.new_session() as session:
        found = session.execute(
            select(OutboxMessage.failures, OutboxMessage.first_failed_at)
            .where(_mine(outbox_id, message_id))
            .with_for_update()
        ).one_or_none()
        if found is None:  # done meanwhile, or another delivery holds it now
            return
        failures = (found.failures or 0) + 1
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == outbox_id)
            .values(
                status="failed",
                failures=failures,
                first_failed_at=found.first_failed_at or now,
                retry_at=now + relay.policy().delay(failures),
                last_error=repr(exception)[:2000],
                lease_expires_at=None,
                claimed_by=None,
            )
        )
        session.commit()
    log.warning(
        "outbox row %s failed (%d time(s)); the sweep sends it again in %s",
        outbox_id, failures, relay.policy().delay(failures),
    )  # fmt: skip
