"""Collection-time checks: test ids must be the same in every process that collects them.

pytest-xdist collects the suite in each worker and refuses to run when the lists differ
("Different tests were collected between gw0 and gw1"), so a parameter id built from a random
value (a uuid4, an object's address) breaks `-n`. Give such parameters `ids=` or a label.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Protocol

import pytest

RANDOM_LOOKING = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"  # a uuid
    r"|\bat 0x[0-9a-f]+"  # a default repr's address
    r"|\b0x[0-9a-f]{8,}\b",
    re.IGNORECASE,
)


class _Item(Protocol):
    nodeid: str


def nondeterministic_ids(items: Iterable[_Item]) -> list[str]:
    """Node ids whose parameter part looks random (differs between two collections)."""
    out = []
    for item in items:
        params = item.nodeid.partition("[")[2]
        if params and RANDOM_LOOKING.search(params):
            out.append(item.nodeid)
    return out


def restore_param_ids(items: Iterable[pytest.Item]) -> None:
    """Give items named `test[x]` without a callspec (schemathesis' per-operation tests) their
    `[x]` back in the node id: pytest 9.2 builds ids from the callspec only, so all of them were
    `test_fuzz`, ambiguous in reports and for `pytest <nodeid>`."""
    for item in items:
        original = getattr(item, "originalname", item.name)
        if item.name != original and item.nodeid.endswith("::" + original):
            params = item.name.removeprefix(original + "[").removesuffix("]")
            item._id = item._id.with_params(params)
