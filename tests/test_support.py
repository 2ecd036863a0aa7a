"""The suite's own machinery: what the shared fixtures count, build and refuse."""

from __future__ import annotations

import io
import smtplib
import threading
import tokenize
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import select, text

from certifications.assignments.models import Assignment
from certifications.catalog.models import CertificationRole
from infra import context
from infra import database as db
from tests.security import support
from tests.support import factories
from tests.support.collection import nondeterministic_ids
from tests.support.smtp_guard import SmtpGuard, UnexpectedSmtp


def _select_one() -> None:
    with context.platform(), db.new_session() as s:
        s.execute(text("SELECT 1"))


def test_count_queries_counts_this_threads_statements_only(count_queries) -> None:
    with count_queries() as q:
        _select_one()
        other = threading.Thread(target=_select_one)
        other.start()
        other.join()
    assert q.containing("SELECT 1") == ["SELECT 1"], q
    _select_one()  # after the block: not counted
    assert len(q.containing("SELECT 1")) == 1


def test_count_queries_filters_and_normalises(count_queries) -> None:
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


def test_factories_make_ordinary_rows_in_the_given_org(
    org, make_role, make_employee, make_employees, make_certification, make_assignment, as_tenant
):
    role = make_role(org)
    one, other = make_employee(org, role_id=role.id), make_employee(org.id)  # org or its id
    assert one.name != other.name
    assert one.email != other.email
    assert [e.name for e in make_employees(org, 2)] == ["Employee 0", "Employee 1"]
    cert = make_certification(org, role_ids=[role.id])
    assert (cert.type, cert.validity_months, cert.validity_days) == ("employee", None, None)
    recorded = make_assignment(cert, one)
    assert (recorded.status, recorded.issued_on, recorded.effective_on) == (
        "valid",
        factories.ISSUED_ON,
        factories.ISSUED_ON,
    )
    assert make_assignment(cert, other, issued_on=None).status == "missing"
    with as_tenant(org.id) as s:
        assert s.get(Assignment, recorded.id).subject_id == one.id
        assert s.scalars(select(CertificationRole.role_id)).all() == [role.id]


def test_make_world_has_one_row_of_every_kind_in_that_org_only(org, make_org, make_world):
    world = make_world(org)
    assert list(world) == list(factories.WORLD_KINDS)
    assert {str(i) for i in world.values()} <= support.all_ids(org.id)
    assert not {str(i) for i in world.values()} & support.all_ids(make_org().id)


def test_smtp_guard_refuses_and_reports_every_kind_of_connection() -> None:
    guard = SmtpGuard()
    with pytest.MonkeyPatch.context() as mp:
        guard.install(mp)
        for make in (smtplib.SMTP, smtplib.SMTP_SSL):
            for _ in range(2):
                with pytest.raises(UnexpectedSmtp, match="unexpected SMTP connection"):
                    make("127.0.0.1", 2525, timeout=1)
    assert guard.attempts == ["SMTP to 127.0.0.1:2525"] * 2 + ["SMTP_SSL to 127.0.0.1:2525"] * 2
    message = guard.failure("t.py::test_x")
    assert message is not None
    assert message.startswith(
        "t.py::test_x opened 4 SMTP connection(s) without an SMTP fixture: "
        "SMTP to 127.0.0.1:2525 (x2), SMTP_SSL to 127.0.0.1:2525 (x2);"
    )
    assert "request the `smtp` fixture" in message
    assert SmtpGuard().failure("t.py::test_y") is None


def test_smtp_guard_fails_a_test_that_opens_smtp_without_the_fixture(pytester, monkeypatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[1]))  # finds `tests`
    pytester.makepyfile(
        """
        import smtplib

        import pytest


        @pytest.fixture
        def smtp():
            return "a sink"


        def test_swallows_the_error_like_delivery_does():
            try:
                smtplib.SMTP("127.0.0.1", 1, timeout=1)
            except OSError:
                pass


        def test_asked_for_a_server(smtp):
            with pytest.raises(ConnectionRefusedError) as raised:  # a real attempt: port 1
                smtplib.SMTP("127.0.0.1", 1, timeout=1)
            assert "unexpected" not in str(raised.value)


        def test_sends_nothing():
            pass
        """
    )
    result = pytester.runpytest_subprocess(
        "-p", "tests.support.smtp_guard", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*test_swallows_the_error_like_delivery_does opened 1 SMTP connection(s) without an "
            "SMTP fixture: SMTP to 127.0.0.1:1; *"
        ]
    )


def test_collected_node_ids_are_unique(request) -> None:
    """What pytest-xdist schedules and reports by, `--lf` reruns and `pytest <id>` selects."""
    ids = [item.nodeid for item in request.session.items]
    assert len(ids) == len(set(ids)), sorted({i for i in ids if ids.count(i) > 1})[:10]


HOST_CLOCK = {("date", "today"), ("datetime", "today"), ("datetime", "utcnow")}
_SKIP = {tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT}


def host_clock_calls(source: str) -> list[int]:
    """The lines calling `date.today()`, `datetime.today()`, `datetime.utcnow()` or a naive
    `datetime.now()` (also through a module: `dt.datetime.now()`).

    Read from tokens, not `ast.parse`: CPython 3.11 keeps the AST converter's recursion depth
    in one per-interpreter slot, so a parse running while another thread parses at a different
    stack depth (a live worker, say) fails with "AST constructor recursion depth mismatch"."""
    tokens = [
        t for t in tokenize.generate_tokens(io.StringIO(source).readline) if t.type not in _SKIP
    ]
    lines = []
    for i, tok in enumerate(tokens[:-3]):
        dot, attr, paren = tokens[i + 1], tokens[i + 2], tokens[i + 3]
        if not (tok.type == tokenize.NAME and dot.string == "." and paren.string == "("):
            continue
        call = (tok.string, attr.string)
        closes = i + 4 < len(tokens) and tokens[i + 4].string == ")"
        if call in HOST_CLOCK or (call == ("datetime", "now") and closes):
            lines.append(tok.start[0])
    return lines


def test_the_host_clock_scan_finds_each_form() -> None:
    source = """import datetime as dt
from datetime import date, datetime, timezone
a = date.today()
b = dt.datetime.now()
c = datetime.now(timezone.utc)  # aware: fine
d = datetime.utcnow(
)
e = "date.today()"  # date.today() in a string or a comment is not a call
f = datetime.now(
    tz=timezone.utc)
g = dt.date.today().isoformat()
"""
    assert host_clock_calls(source) == [3, 4, 6, 11]


def test_no_test_reads_the_hosts_local_date() -> None:
    """`date.today()` and a naive `datetime.now()` are the host's zone and change at its
    midnight: tests use explicit dates, or the org's today (`org_today(tz, now)`)."""
    root = Path(__file__).parent
    found = [
        f"{path.relative_to(root)}:{line}"
        for path in sorted(root.rglob("*.py"))
        for line in host_clock_calls(path.read_text())
    ]
    assert found == []
