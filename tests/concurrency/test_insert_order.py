"""Set-based inserts that skip conflicts go in key order, so concurrent ones cannot deadlock.

An API request's rule evaluation and the worker's tick may insert overlapping tasks or
reminders for one organization at once. In arbitrary orders, one transaction holds key A and
waits for B while the other holds B and waits for A: PostgreSQL kills one as a deadlock (seen
in CI). Here two transactions offer the same two keys in opposite orders, the second key half a
second after the first, so without the ordering they cross every time.
"""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import Column, MetaData, String, Table, column, create_engine, func, select, text
from sqlalchemy.orm import Session

from infra.dialect import insert_ignoring_conflicts

pytestmark = pytest.mark.postgres

PROBE = Table("insert_order_probe", MetaData(), Column("k", String, primary_key=True))


def _slow_rows(keys: list[str]):
    """The keys in the given order; each row is produced 0.5 s after the one before."""
    values = ", ".join(f"('{k}', {i})" for i, k in enumerate(keys))
    return (
        select(column("k"))
        .select_from(text(f"(VALUES {values}) AS v(k, i)"))
        .where(text("(SELECT true FROM pg_sleep(v.i * 0.5))"))
    )


def test_concurrent_inserts_of_crossing_keys_do_not_deadlock(fresh):
    backend, _settings = fresh
    engine = create_engine(backend.owner_url)
    PROBE.create(engine)
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def insert(keys: list[str]) -> None:
        try:
            with Session(engine) as session:
                start.wait()
                insert_ignoring_conflicts(session, PROBE, ["k"], _slow_rows(keys), ["k"])
                session.commit()
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=insert, args=(keys,)) for keys in (["a", "b"], ["b", "a"])]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    try:
        assert errors == []
        with engine.connect() as conn:
            assert conn.scalar(select(func.count()).select_from(PROBE)) == 2
    finally:
        engine.dispose()
