"""Per-message context: the tenant and request id from the message, and outbox bookkeeping."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import dramatiq
from sqlalchemy import update

from infra import context
from infra import database as db
from jobs.models import OutboxMessage

log = logging.getLogger("certs.worker")


class TenantMiddleware(dramatiq.Middleware):
    """Every actor runs as the organization named in its message, never as "nobody in particular".

    On success the outbox row that produced the message is marked done, so the sweep stops
    re-sending it; on final failure it is marked failed with the error.
    """

    def before_process_message(
        self, broker: dramatiq.Broker, message: dramatiq.MessageProxy
    ) -> None:
        org_id = message.kwargs.get("org_id")
        context.set_current_org(uuid.UUID(org_id) if org_id else None)
        context.set_request_id(message.options.get("request_id"))

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: dramatiq.MessageProxy,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        try:
            outbox_id = message.options.get("outbox_id")
            if outbox_id:
                if exception is None:
                    _mark(outbox_id, status="done", done_at=db.utcnow())
                elif message.failed:
                    _mark(outbox_id, status="failed", last_error=repr(exception)[:2000])
        finally:
            context.set_current_org(None)
            context.set_request_id(None)

    def after_skip_message(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy) -> None:
        context.set_current_org(None)
        context.set_request_id(None)


def _mark(outbox_id: str, **values: Any) -> None:
    with context.platform(), db.new_session() as session:
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == uuid.UUID(outbox_id), OutboxMessage.status != "done")
            .values(**values)
        )
        session.commit()
