"""The counting of concurrent transactions is serialized (migration 0021, "Concurrency").

Two transactions whose deltas read each other's rows: a subject deactivated while another
transaction inserts an assignment of it (the reverted first version counted that assignment as
active: -1 in an inactive bucket), and a revoked row written into a (certification, subject)
while another transaction inserts its live row. Each test holds the first transaction open
after its statement, starts the second in a thread, checks that the second waits, then commits
both and verifies the counts. Without the locks the second does not wait and the counts drift
(all three: checked by removing the locks from the migration).
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from sqlalchemy import case, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from certifications.assignments.models import Assignment as A
from certifications.directory.models import Employee
from certifications.reporting.compliance import compliance_summary
from infra import context
from infra import database as db
from tests.support.factories import build_assignment, wrong_counts

pytestmark = pytest.mark.postgres

WAIT = 0.7  # seconds the second transaction must still be waiting


class Second:
    """A transaction of the org run in a thread: `done` once it committed."""

    def __init__(self, org_id: uuid.UUID, work: Callable[[Session], None]) -> None:
        self.done = threading.Event()
        self.error: BaseException | None = None

        def run() -> None:
            try:
                with context.tenant(org_id), db.new_session() as s:
                    work(s)
                    s.commit()
            except BaseException as exc:  # reported by the test
                self.error = exc
            finally:
                self.done.set()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def finish(self) -> None:
        self.thread.join(30)
        assert self.done.is_set(), "the second transaction never finished"
        assert self.error is None, self.error


def totals(org_id: uuid.UUID, include_inactive: bool) -> int:
    with context.tenant(org_id), db.new_session() as s:
        t = compliance_summary(s, include_inactive)["totals"]
        return int(sum(t["counts"].values()))


def _deactivate(employee_id: uuid.UUID) -> Callable[[Session], None]:
    def work(s: Session) -> None:
        s.execute(update(Employee).where(Employee.id == employee_id).values(active=False))

    return work


def test_deactivation_waits_for_an_insert_being_counted(
    org, make_certification, make_employee, as_tenant
):
    cert, emp = make_certification(org), make_employee(org)
    with as_tenant(org.id) as s1:
        build_assignment(s1, cert=cert, subject=emp)
        s1.flush()  # counted (as active), not committed
        second = Second(org.id, _deactivate(emp.id))
        waited = not second.done.wait(WAIT)
        s1.commit()
    second.finish()
    assert wrong_counts(org.id) == []
    assert waited, "the deactivation did not wait for the insert"
    assert (totals(org.id, False), totals(org.id, True)) == (0, 1)


def test_insert_waits_for_a_deactivation_being_counted(
    org, make_certification, make_employee, as_tenant
):
    cert, emp = make_certification(org), make_employee(org)
    with as_tenant(org.id) as s1:
        _deactivate(emp.id)(s1)  # moved its (no) assignments, not committed
        second = Second(org.id, lambda s: build_assignment(s, cert=cert, subject=emp) and None)
        waited = not second.done.wait(WAIT)
        s1.commit()
    second.finish()
    assert wrong_counts(org.id) == []
    assert waited, "the insert did not wait for the deactivation"
    assert (totals(org.id, False), totals(org.id, True)) == (0, 1)


def test_revoked_row_waits_for_a_live_insert_of_its_pair(
    org, make_certification, make_employee, as_tenant
):
    """A live row inserted (uncommitted) and a revoked row of the same pair written meanwhile
    (an import): the revoked row is history, never counted beside the live one."""
    cert, emp = make_certification(org), make_employee(org)
    revoked = {"status": "revoked", "revoked_at": datetime(2026, 1, 1, tzinfo=UTC)}
    with as_tenant(org.id) as s1:
        build_assignment(s1, cert=cert, subject=emp, issued_on=None)
        s1.flush()
        second = Second(
            org.id, lambda s: build_assignment(s, cert=cert, subject=emp, **revoked) and None
        )
        waited = not second.done.wait(WAIT)
        s1.commit()
    second.finish()
    assert wrong_counts(org.id) == []
    assert waited, "the revoked row's counting did not wait"
    assert totals(org.id, True) == 1


def test_a_storm_of_small_transactions_leaves_exact_counts(org, make_certification, make_employee):
    """Threads writing the same few pairs and subjects in random small transactions (inserts,
    revocations, deletions, revoked history, status and exemption changes, deactivations and
    reactivations), deadlocks retried: the counts equal the assignments at the end."""
    certs = [make_certification(org) for _ in range(2)]
    people = [make_employee(org) for _ in range(3)]
    pairs = [(c.id, p.id) for c in certs for p in people]

    def op(s: Session, rnd: random.Random) -> None:
        cid, pid = rnd.choice(pairs)
        pair = (A.certification_id == cid) & (A.subject_id == pid)
        live = pair & A.revoked_at.is_(None)
        kind = rnd.choice(["insert", "insert", "revoke", "delete", "history", "status",
                           "exempt", "activity"])  # fmt: skip
        if kind == "insert":
            s.execute(
                pg_insert(A)
                .values(org_id=org.id, id=uuid.uuid4(), certification_id=cid,
                        subject_type="employee", subject_id=pid, status="missing")
                .on_conflict_do_nothing()
            )  # fmt: skip
        elif kind == "revoke":
            s.execute(update(A).where(live).values(revoked_at=func.now(), status="revoked"))
        elif kind == "delete":
            victim = s.scalar(select(A.id).where(pair).order_by(func.random()).limit(1))
            s.execute(delete(A).where(A.id == victim))
        elif kind == "history":
            at = datetime(2026, rnd.choice([1, 2]), 1, tzinfo=UTC)
            s.execute(
                pg_insert(A).values(
                    org_id=org.id, id=uuid.uuid4(), certification_id=cid, subject_type="employee",
                    subject_id=pid, status=rnd.choice(["revoked", "valid"]), revoked_at=at,
                )
            )  # fmt: skip
        elif kind == "status":
            s.execute(update(A).where(live).values(status=rnd.choice(["valid", "expired"])))
        elif kind == "exempt":
            exempt = A.exempt_at.is_(None)
            s.execute(update(A).where(live).values(exempt_at=case((exempt, func.now()))))
        else:
            s.execute(update(Employee).where(Employee.id == pid).values(active=~Employee.active))
        time.sleep(rnd.random() * 0.005)  # hold the locks a little: widen the windows

    def worker(seed: int) -> None:
        rnd = random.Random(seed)
        with context.tenant(org.id), db.new_session() as s:
            for _ in range(40):
                for _attempt in range(20):
                    try:
                        for _ in range(rnd.randint(1, 3)):
                            op(s, rnd)
                        s.commit()
                        break
                    except DBAPIError as exc:  # a deadlock or a serialization retry
                        s.rollback()
                        if "deadlock" not in str(exc) and "could not serialize" not in str(exc):
                            raise

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(6)]
    errors: list[BaseException] = []
    for t in threads:
        t.run = _capturing(t.run, errors)  # type: ignore[method-assign]
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert wrong_counts(org.id) == []


def _capturing(run: Callable[[], None], errors: list[BaseException]) -> Callable[[], None]:
    def wrapped() -> None:
        try:
            run()
        except BaseException as exc:
            errors.append(exc)

    return wrapped
