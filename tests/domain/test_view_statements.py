"""The views page's statements, built once per shape of its filters (`reporting.subjects`):
every shape is scoped at every level, and no request's value is built into one."""

from __future__ import annotations

import itertools
import uuid

import pytest
from sqlalchemy.dialects import postgresql, sqlite

from certifications.reporting import subjects
from certifications.reporting.subjects import (
    ViewFilters,
    filters_shape,
    subject_page_statement,
    view_params,
)

KINDS = ("employee", "asset", "client", "location")
DIALECTS = {"postgresql": postgresql.dialect(), "sqlite": sqlite.dialect()}
ID = uuid.UUID("12345678-1234-5678-1234-567812345678")


def _every_filters() -> list[ViewFilters]:
    """A `ViewFilters` per combination of the certification filters, each with several
    combinations of the subject filters (the subject filters are flat conditions)."""
    subject_filters = (  # q, role_id, (active, include_inactive)
        (None, None, (None, False)),
        ("100%_sure/", ID, (None, True)),
        (None, ID, (True, False)),
        ("100%_sure/", None, (False, False)),
    )
    found = []
    for status, cert, group, client, exempt, (q, role, active) in itertools.product(
        ((), ("expired", "missing")),
        (None, ID),
        (None, ID),
        (None, ID),
        (None, True, False),
        subject_filters,
    ):
        found.append(
            ViewFilters(
                status=status,
                certification_id=cert,
                group_id=group,
                role_id=role,
                client_id=client,
                q=q,
                exempt=exempt,
                active=active[0],
                include_inactive=active[1],
            )
        )
    return found


@pytest.mark.parametrize("dialect", sorted(DIALECTS))
@pytest.mark.parametrize("kind", KINDS)
def test_every_shape_is_scoped_at_every_level_and_holds_no_value(kind, dialect):
    """`prebuilt_tenant_statement` refuses, when building, a statement that reads a tenant
    table it does not scope at some level: building every shape is the check. And a shape's
    statements carry bind parameters only: no value of the request that built them."""
    shapes = {filters_shape(f): f for f in _every_filters()}
    assert len(shapes) == 192
    for f in shapes.values():
        shape = filters_shape(f)
        built = (
            subject_page_statement(dialect, kind, f),
            subjects._rows_statement(dialect, kind, shape, limited=True),
            subjects._counts_statement(dialect, kind, shape),
        )
        for stmt in built:
            # A filter's value built in (not a named parameter) would be a bound value here:
            # the request's, or the shape's marker it was built from.
            bound = repr(stmt.compile(dialect=DIALECTS[dialect]).params)
            for value in (str(ID), "sure", "expired", str(uuid.UUID(int=0)), "<"):
                assert value not in bound


def test_a_shape_is_built_once_whatever_the_values():
    one = ViewFilters(q="alice", status=("expired",), group_id=uuid.uuid4())
    other = ViewFilters(q="bob", status=("valid", "missing"), group_id=uuid.uuid4())
    assert filters_shape(one) == filters_shape(other)
    assert subject_page_statement("sqlite", "employee", one) is subject_page_statement(
        "sqlite", "employee", other
    )
    # Another shape (no status filter) is another statement.
    unfiltered = ViewFilters(q="alice", group_id=one.group_id)
    assert subject_page_statement("sqlite", "employee", unfiltered) is not (
        subject_page_statement("sqlite", "employee", one)
    )


def test_the_values_travel_as_parameters():
    f = ViewFilters(q="100%_sure/", status=("expired",), certification_id=ID, role_id=ID)
    assert view_params(f) == {
        "q": "%100/%/_sure//%",
        "status": ["expired"],
        "certification_id": ID,
        "role_id": ID,
    }
    assert view_params(ViewFilters()) == {}
    # The shape keeps which filters are used, never their values.
    shape = filters_shape(f)
    assert ID not in (shape.certification_id, shape.role_id)
    assert (shape.q, shape.status) != (f.q, f.status)
    assert (shape.group_id, shape.client_id) == (None, None)
