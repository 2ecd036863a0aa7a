"""The embedded SQLite engine keeps a unit of work whole."""

from __future__ import annotations

import dataclasses
import sqlite3

from sqlalchemy import text
from sqlalchemy.orm import Session

from infra.database import make_engine
from tests.support.suite import SETTINGS


def test_a_savepoint_after_reads_commits_nothing_before_the_unit_of_work(tmp_path):
    """pysqlite starts no transaction for a SELECT, so a SAVEPOINT after reads used to start
    one and its RELEASE to commit it: a tick on another connection saw an assignment inserted
    under a savepoint before the same request set its status (a reminder for a record covered
    by an equivalent certification), and a later rollback kept the row."""
    path = tmp_path / "unit.db"
    engine = make_engine(dataclasses.replace(SETTINGS, database_url=f"sqlite:///{path}"))
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        with Session(engine) as session:
            assert session.scalar(text("SELECT count(*) FROM t")) == 0  # reads first
            with session.begin_nested():
                session.execute(text("INSERT INTO t VALUES (1)"))
            other = sqlite3.connect(path)
            try:
                assert other.execute("SELECT count(*) FROM t").fetchone() == (0,)
            finally:
                other.close()
            session.rollback()
        with engine.connect() as conn:
            assert conn.scalar(text("SELECT count(*) FROM t")) == 0
        with Session(engine) as session:  # and a committed unit of work keeps its rows
            session.scalar(text("SELECT count(*) FROM t"))
            with session.begin_nested():
                session.execute(text("INSERT INTO t VALUES (2)"))
            session.commit()
        with engine.connect() as conn:
            assert conn.scalar(text("SELECT x FROM t")) == 2
    finally:
        engine.dispose()
