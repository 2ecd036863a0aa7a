"""Property-based fuzzing of every documented operation with schemathesis (in-process WSGI).

Authenticated as an org with the HSE module, every tenant scope and one row of every kind;
every built-in check on (server errors, status codes, content types, headers, response schemas,
negative data rejected, positive data accepted, auth enforced, unsupported methods answered
405 with Allow). A fixed example budget per operation keeps the whole run under ~3 minutes.
"""

from __future__ import annotations

import functools
import os
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from tests.conftest import RUNTIME
from tests.security import support
from tests.support import factories
from tests.support.suite import SETTINGS

MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "15"))
CASES: dict[str, int] = {}  # operation label -> cases run in this process
FUZZ_ITEM = re.compile(r"^test_fuzz\[(?P<label>.+)\]$")


@functools.cache
def fuzz_token() -> str:
    """An org with the HSE module and one row of every kind; its token with every scope."""
    from tenancy.auth import TENANT_SCOPES, issue_token

    org = factories.create_org(name=f"Fuzz {uuid.uuid4().hex[:6]}", modules=["hse"])
    factories.create_world(org)
    return issue_token(
        SETTINGS, sub="fuzzer", org_id=str(org.id), scopes=list(TENANT_SCOPES), ttl=7200
    )


def _load_schema() -> Any:
    # Loaded eagerly: schemathesis' lazy `from_fixture` touches `Node._nodeid`, gone in pytest 9.2.
    from api import create_app

    # Every check stays on. positive_data_acceptance also accepts 422: SPEC §7 answers 422 for
    # domain rules a JSON schema cannot state (a referenced id that does not exist, a cursor
    # that is not one of ours, cross-field rules), which schema-valid random data breaks; and
    # 412: a random `If-Match` is schema-valid but names no current ETag (issue 16's rule).
    # negative_data_rejection is off for the bulk endpoints only: each row is documented by
    # its schema, but a row that breaks it is reported in the 200 answer (SPEC §4), not a
    # reason to refuse the others (unless atomic=true); the envelope is still checked by
    # every other case.
    config = schemathesis.config.SchemathesisConfig.from_str(
        "[checks.positive_data_acceptance]\n"
        'expected-statuses = ["2xx", "401", "403", "404", "409", "412", "422"]\n'
        "[[operations]]\n"
        'include-path-regex = "/bulk$"\n'
        "checks.negative_data_rejection.enabled = false\n"
    )
    return schemathesis.openapi.from_wsgi(
        "/api/v1/openapi.json", create_app(SETTINGS, RUNTIME), config=config
    )


schema = _load_schema()


@schema.auth()
class BearerToken:
    """The fuzzing org's token on every case (schemathesis' ignored_auth check still probes
    each operation without it and expects a 401)."""

    def get(self, case: Any, ctx: Any) -> str:
        return fuzz_token()

    def set(self, case: Any, data: str, ctx: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


def test_document_references_resolve() -> None:
    """Every `$ref` of the document points somewhere (a dangling one breaks every client)."""
    assert support.dangling_refs(support.openapi_doc()) == []


@pytest.fixture(autouse=True)
def _fuzzed_at_least_once(request: pytest.FixtureRequest) -> Iterator[None]:
    """Each operation's test fails unless schemathesis ran at least one case for it (a test
    whose strategy generates nothing would otherwise pass having checked nothing)."""
    match = FUZZ_ITEM.match(request.node.name)
    if match is None:
        yield
        return
    label = match["label"]
    before = CASES.get(label, 0)
    yield
    assert CASES.get(label, 0) > before, f"{label}: schemathesis ran no case"


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_fuzz(case: Any) -> None:
    label = case.operation.label
    CASES[label] = CASES.get(label, 0) + 1
    case.call_and_validate()


def test_every_operation_is_fuzzed(request: pytest.FixtureRequest) -> None:
    """Every documented operation has its fuzz test (each of which fails if it ran no case).

    Read from this module's collection, not from what ran in this process, so it holds under
    pytest-xdist (whichever worker runs it and the fuzz tests) and when run on its own.
    """
    module = request.node.getparent(pytest.Module)
    assert module is not None
    items = [
        item for node in module.collect() if node.name == "test_fuzz" for item in node.collect()
    ]
    fuzzed = {m["label"] for item in items if (m := FUZZ_ITEM.match(item.name))}
    ops = {f"{op.method.upper()} /api/v1{op.path}" for op in support.operations()}
    assert ops == fuzzed, {"not fuzzed": sorted(ops - fuzzed), "undocumented": sorted(fuzzed - ops)}
