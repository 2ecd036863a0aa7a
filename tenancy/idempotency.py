"""Idempotency keys: the stored answer of a POST, replayed when the same key comes again.

A key belongs to one organization and lives `KEY_LIFETIME` (24 h). The row is inserted at the
start of the request's transaction and filled with the response before that transaction
commits, so it commits (or rolls back) with the change it describes:

* a request that failed left no row: sending it again runs it again;
* two requests with the same key at once cannot both run: the second one's insert waits on the
  first one's (the primary key), then finds the committed row and replays it.

No Flask here: `api.idempotency` reads the header and writes the HTTP answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import JSON, Index, Integer, LargeBinary, String, delete, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from infra.context import require_org_id
from infra.database import Base, UTCDateTime
from infra.dialect import upsert_insert
from tenancy.models import TenantScoped

KEY_LIFETIME = timedelta(hours=24)
MAX_KEY_LENGTH = 255


class IdempotencyKey(TenantScoped, Base):
    """One organization's `Idempotency-Key`: what the request was, and what it answered."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (Index("ix_idempotency_keys_expires_at", "expires_at"),)

    key: Mapped[str] = mapped_column(String(MAX_KEY_LENGTH), primary_key=True)
    # sha256 of method, path, query and body: the same key for another request is refused.
    fingerprint: Mapped[str] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(10))
    path: Mapped[str] = mapped_column(String(2000))
    # Filled before commit; a row without a status is never visible to another transaction.
    status: Mapped[int | None] = mapped_column(Integer)
    body: Mapped[bytes | None] = mapped_column(LargeBinary)
    headers: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: bytes
    headers: dict[str, str]
    fingerprint: str


def claim(
    session: Session, key: str, *, fingerprint: str, method: str, path: str, now: datetime
) -> StoredResponse | None:
    """Take `key` for this request (None: go ahead and run it), or the answer stored under it.

    An expired row is replaced. On PostgreSQL a concurrent request holding the same key makes
    the insert wait for its transaction: committed, its row is returned; rolled back, the key
    is ours.
    """
    session.execute(
        delete(IdempotencyKey)
        .where(IdempotencyKey.key == key, IdempotencyKey.expires_at <= now)
        .execution_options(synchronize_session=False)
    )
    insert = upsert_insert(session.get_bind().dialect.name, IdempotencyKey)
    stmt = (
        insert.values(
            org_id=require_org_id(),
            key=key,
            fingerprint=fingerprint,
            method=method,
            path=path[:2000],
            created_at=now,
            expires_at=now + KEY_LIFETIME,
        )
        .on_conflict_do_nothing(index_elements=["org_id", "key"])
        .returning(IdempotencyKey.key)
    )
    if session.execute(stmt).first() is not None:
        return None
    row = session.execute(
        select(
            IdempotencyKey.status,
            IdempotencyKey.body,
            IdempotencyKey.headers,
            IdempotencyKey.fingerprint,
        ).where(IdempotencyKey.key == key)
    ).one()
    return StoredResponse(
        status=row.status or 500,
        body=row.body or b"",
        headers=dict(row.headers or {}),
        fingerprint=row.fingerprint,
    )


def record(
    session: Session, key: str, *, status: int, body: bytes, headers: dict[str, str]
) -> None:
    """Store the answer of the request that claimed `key` (in that request's transaction)."""
    session.execute(
        update(IdempotencyKey)
        .where(IdempotencyKey.key == key)
        .values(status=status, body=body, headers=headers)
        .execution_options(synchronize_session=False)
    )


def purge_expired(session: Session, now: datetime) -> int:
    """Delete the current organization's expired keys (the tick calls it); how many went."""
    result = session.execute(
        delete(IdempotencyKey)
        .where(IdempotencyKey.expires_at <= now)
        .execution_options(synchronize_session=False)
    )
    return max(int(getattr(result, "rowcount", 0) or 0), 0)


def release(session: Session, key: str) -> None:
    """Forget a key claimed in this transaction whose answer cannot be stored."""
    session.execute(
        delete(IdempotencyKey)
        .where(IdempotencyKey.key == key)
        .execution_options(synchronize_session=False)
    )
