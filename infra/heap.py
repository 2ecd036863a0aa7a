"""The worker's garbage collector, settled once start-up is done (`wsgi.py`, and the benches
that stand for a worker).

* `gc.freeze()`: start-up objects (modules, schemas, the app) live as long as the worker; out
  of the collector's reach, a full collection scans only what requests allocate (a views page
  had 80-100 ms pauses at p95 without it; docs/benchmarks.md, issue 7).
* A young generation of `YOUNG_THRESHOLD` objects: a views page allocates ~15,000 (its ~1,000
  rows, their dicts). At CPython's default of 700 the collector ran about twenty times per
  page, and each run promoted what the page still held, which the older generations then
  scanned again: a quarter of the page's CPU in-process. Most of a request's objects are freed
  by reference counting before a young generation this size fills up.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 20_000
OLDER_THRESHOLDS = (20, 20)  # collections of the younger generation before an older one's


def settle() -> None:
    """Collect, freeze what is alive, and set the thresholds (once, after start-up)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, *OLDER_THRESHOLDS)
