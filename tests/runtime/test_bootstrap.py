"""One explicit bootstrap: the settings it is given decide everything; imports decide nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import text

from infra import migrate
from infra.settings import load_settings
from tests.support.suite import SUBPROCESS_ENV

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ["infra", "tenancy", "jobs", "certifications", "runtime", "api", "workers", "cli"]

# Imports every module of the project with an environment that raises on any read, and with
# socket connections refused; prints what was touched.
IMPORT_ALL = r"""
import importlib, json, os, pkgutil, socket, sys

reads = []
ROOTS = tuple(os.path.join(os.getcwd(), p) + os.sep for p in sys.argv[1:])

def note(key):
    # Only reads made by the project's own code count (libraries may look at LANG and such).
    frame = sys._getframe(2)
    while frame is not None and frame.f_code.co_filename.endswith(("os.py", "<frozen os>")):
        frame = frame.f_back
    if frame is not None and frame.f_code.co_filename.startswith(ROOTS):
        reads.append("%s (%s)" % (key, frame.f_code.co_filename))

class Watched(dict):
    def __getitem__(self, key):
        note(key); return super().__getitem__(key)
    def get(self, key, default=None):
        note(key); return super().get(key, default)
    def __contains__(self, key):
        note(key); return super().__contains__(key)

def no_connect(*a, **k):
    raise AssertionError("a module opened a connection at import: %r" % (a,))

keep = {k: v for k, v in os.environ.items() if k in ("PATH", "PYTHONPATH", "HOME")}
os.environ = Watched(keep)
os.getenv = lambda key, default=None: os.environ.get(key, default)
socket.socket.connect = no_connect
socket.create_connection = no_connect
failed = []
for name in sys.argv[1:]:
    pkg = importlib.import_module(name)
    for info in pkgutil.walk_packages(pkg.__path__, name + "."):
        try:
            importlib.import_module(info.name)
        except Exception as exc:
            failed.append([info.name, repr(exc)])
print(json.dumps({"reads": sorted(set(reads)), "failed": failed}))
"""


def test_importing_every_module_reads_no_environment_and_opens_no_connection() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", IMPORT_ALL, *PACKAGES],
        cwd=ROOT,
        env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["failed"] == []
    assert report["reads"] == [], "modules read the environment at import"


def test_create_app_uses_the_database_its_settings_name(tmp_path) -> None:
    """Whatever DATABASE_URL the environment holds, the app serves from its settings' database."""
    url = f"sqlite:///{tmp_path / 'other.db'}"
    env = {**SUBPROCESS_ENV, "DATABASE_URL": "sqlite:////nonexistent/dir/env.db"}
    settings = load_settings({**SUBPROCESS_ENV, "DATABASE_URL": url, "REDIS_URL": ""})
    migrate.upgrade(settings)
    script = r"""
import json, sys
from infra.settings import load_settings
from api import create_app
from infra import database as db
settings = load_settings(json.loads(sys.argv[1]))
app = create_app(settings)
print(db.get_engine().url.render_as_string(hide_password=False))
resp = app.test_client().get("/readyz")
print(resp.status_code)
"""
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            json.dumps({**SUBPROCESS_ENV, "DATABASE_URL": url, "REDIS_URL": ""}),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    engine_url, status = proc.stdout.strip().splitlines()[-2:]
    assert engine_url == url
    assert status == "200"


def test_bootstrap_installs_scoping_on_its_own_factory_only(runtime) -> None:
    """A plain session of another factory is not scoped: scoping is the bootstrap's, not the
    Session class's, so nothing depends on which modules happen to be imported."""
    from sqlalchemy import event
    from sqlalchemy.orm import Session, sessionmaker

    from tenancy import scoping

    assert not event.contains(Session, "do_orm_execute", scoping._scope_to_tenant)
    assert event.contains(runtime.sessions, "do_orm_execute", scoping._scope_to_tenant)
    plain = sessionmaker(bind=runtime.engine)
    with plain() as s:
        assert s.execute(text("SELECT 1")).scalar() == 1
