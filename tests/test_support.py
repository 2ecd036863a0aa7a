"""The suite's own machinery: what the shared fixtures count, build and refuse."""

from __future__ import annotations

import threading
from types import SimpleNamespace

from sqlalchemy import text

from infra import context
from infra import database as db
from tests.support.collection import nondeterministic_ids


def _select_one() -> None:
    with context.platform(), db.new_session() as s:
        s.execute(text("SELECT 1"))


def test_count_queries_counts_this_threads_statements_only(count_queries) -> None:  # type: ignore[no-untyped-def]
    with count_queries() as q:
        _select_one()
        other = threading.Thread(target=_select_one)
        other.start()
        other.join()
    assert q.containing("SELECT 1") == ["SELECT 1"], q
    _select_one()  # after the block: not counted
    assert len(q.containing("SELECT 1")) == 1


def test_count_queries_filters_and_normalises(count_queries) -> None:  # type: ignore[no-untyped-def]
    with count_queries(where=lambda sql: "42" in sql) as q:
        with context.platform(), db.new_session() as s:
            s.execute(text("SELECT\n   42"))
            s.execute(text("SELECT 1"))
    assert q.statements == ["SELECT 42"]
    assert q.verbs == ["SELECT"]
    assert q.starting("select  42") == ["SELECT 42"]
    q.clear()
    assert len(q) == 0


def test_random_looking_test_ids_are_refused() -> None:
    def items(*nodeids: str) -> list[SimpleNamespace]:
        return [SimpleNamespace(nodeid=n) for n in nodeids]

    random = [
        "t.py::test_x[5034af43-cf10-402f-8628-eed7dcb9765e]",
        "t.py::test_x[<object object at 0x7f3a2c1b9e40>]",
        "t.py::test_x[a-0xDEADBEEF00]",
    ]
    stable = [
        "t.py::test_x[None]",
        "t.py::test_x[another org]",
        "t.py::test_x[GET /jobs/{job_id}]",
        "t.py::test_x",
        "t5034af43-cf10-402f-8628-eed7dcb9765e.py::test_x",
    ]
    assert nondeterministic_ids(items(*random, *stable)) == random
