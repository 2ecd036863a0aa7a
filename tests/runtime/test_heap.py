"""The worker's collector settings (`infra.heap`), as `wsgi.py` leaves them."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from pathlib import Path

from infra import heap

ROOT = Path(__file__).resolve().parents[2]


def test_settle_freezes_and_sizes_the_young_generation():
    before = gc.get_threshold()
    try:
        heap.settle()
        assert gc.get_threshold() == (heap.YOUNG_THRESHOLD, *heap.OLDER_THRESHOLDS)
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_the_wsgi_entry_point_settles_the_heap(tmp_path):
    code = "import gc, wsgi; print(gc.get_threshold()[0], gc.get_freeze_count() > 0)"
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'heap.db'}",
        "CERTS_INSTANCE_DIR": str(tmp_path),
    }
    out = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == [str(heap.YOUNG_THRESHOLD), "True"]
