"""Counting the SQL a block of code runs: the one way the suite asserts query budgets.

`count_queries()` (also the `count_queries` fixture) is a context manager yielding a
`Queries` log of the statements executed on the runtime's engine while the block runs:

    with count_queries() as q:
        api.get("/org")
    assert len(q.containing("FROM organizations")) == 1

Only statements run by the calling thread are counted, so a background worker of another test
never leaks into a budget. `where` keeps only the statements a test is about, e.g.
`where=data_only` drops the per-transaction tenant settings (PostgreSQL's RLS `set_config`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy import event

from infra import database as db


def is_session_setup(statement: str) -> bool:
    """A per-transaction setting (the tenant for RLS), not a statement about data."""
    return statement.upper().startswith(("SELECT SET_CONFIG", "SET LOCAL"))


def data_only(statement: str) -> bool:
    return not is_session_setup(statement)


@dataclass
class Queries:
    """The statements seen so far, whitespace-normalised, in order of execution."""

    statements: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.statements)

    def __iter__(self) -> Iterator[str]:
        return iter(self.statements)

    def __repr__(self) -> str:  # what an assertion message shows
        return "Queries(" + "\n  ".join(["", *self.statements]) + ")"

    def clear(self) -> None:
        self.statements.clear()

    @property
    def verbs(self) -> list[str]:
        """The first keyword of each statement, upper case (SELECT, INSERT, ...)."""
        return [s.split(None, 1)[0].upper() for s in self.statements if s]

    def starting(self, prefix: str) -> list[str]:
        """Statements starting with `prefix` (case-insensitive): "INSERT INTO assignments"."""
        prefix = " ".join(prefix.split()).upper()
        return [s for s in self.statements if s.upper().startswith(prefix)]

    def containing(self, text: str) -> list[str]:
        """Statements that contain `text` (case-insensitive)."""
        text = " ".join(text.split()).upper()
        return [s for s in self.statements if text in s.upper()]


@contextmanager
def count_queries(where: Callable[[str], bool] | None = None) -> Iterator[Queries]:
    """Record the statements this thread runs on the runtime's engine during the block."""
    queries = Queries()
    me = threading.get_ident()

    def _record(_conn, _cursor, statement, *_rest) -> None:
        if threading.get_ident() != me:
            return
        normalised = " ".join(statement.split())
        if where is None or where(normalised):
            queries.statements.append(normalised)

    engine = db.get_engine()
    event.listen(engine, "before_cursor_execute", _record)
    try:
        yield queries
    finally:
        event.remove(engine, "before_cursor_execute", _record)
