"""The automation tests' calendar: every evaluation is passed this day, never the clock's."""

from __future__ import annotations

from datetime import date

TODAY = date(2026, 11, 29)
