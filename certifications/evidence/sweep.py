"""The periodic sweep of an org's document store: bytes without a live document row go.

Such objects come from a soft-deleted document, a row removed with its assignment (the
foreign key cascades), or an upload whose transaction never committed. An object younger than
`GRACE` is left alone: its upload may still be committing.
"""

from __future__ import annotations

import itertools
import uuid
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from certifications.evidence.models import Document
from certifications.evidence.storage import DocumentStore

GRACE = timedelta(hours=1)
PAGE = 1000


def sweep_documents(
    session: Session, store: DocumentStore, org_id: uuid.UUID, now: datetime
) -> int:
    """Delete the org's orphaned objects older than GRACE; returns how many went."""
    removed = 0
    cutoff = now - GRACE
    objects = (o for o in store.list(org_id) if o.modified_at < cutoff)
    while page := list(itertools.islice(objects, PAGE)):
        keys = [o.key for o in page]
        live = set(
            session.scalars(
                select(Document.storage_key).where(
                    Document.storage_key.in_(keys),
                    Document.deleted_at.is_(None),
                )
            )
        )
        for key in keys:
            if key not in live:
                store.delete(key)
                removed += 1
    return removed
