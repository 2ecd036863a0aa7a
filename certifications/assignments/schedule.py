"""Per-organization bookkeeping of the periodic status recomputation (a platform table)."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, Integer, text
from sqlalchemy.orm import Mapped, mapped_column

from infra.database import Base, UTCDateTime


class RecomputeState(Base):
    """When each org was last recomputed, in its own local date.

    The scheduler claims an org that is due (its local date changed, or the last run is over an
    hour old) with a compare-and-set on `version`, so two schedulers never both enqueue it.
    Platform table: the scheduler reads every org's row; RLS admits one org's row or platform.
    """

    __tablename__ = "recompute_state"

    org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id"), primary_key=True)
    local_date: Mapped[date] = mapped_column(Date)
    claimed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    changed: Mapped[int | None] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(Integer, default=1, server_default=text("1"))
