"""`certs run` / `make run`: one token printed, the port honoured (the server itself is stubbed)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cli.main import main
from infra import migrate
from tests.support.suite import CLI_ENV

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def served(monkeypatch, runtime) -> list[dict[str, Any]]:
    """Stub the server, the worker and the scheduler; record how the app was run."""
    import dramatiq

    import cli.main
    import workers.scheduler
    from api import CertsFlask

    calls: list[dict[str, Any]] = []
    # The suite's runtime: a second bootstrap would replace (and leak) the suite's engine.
    monkeypatch.setattr(cli.main, "_bootstrap", lambda **kw: runtime)
    monkeypatch.setattr(migrate, "upgrade", lambda settings: None)  # the suite's schema is current
    monkeypatch.setattr(CertsFlask, "run", lambda self, **kw: calls.append(kw))
    monkeypatch.setattr(dramatiq.Worker, "start", lambda self: None)
    monkeypatch.setattr(dramatiq.Worker, "stop", lambda self, *a, **k: None)

    class _Scheduler:
        def start(self) -> None: ...
        def shutdown(self, wait: bool = True) -> None: ...

    monkeypatch.setattr(workers.scheduler, "build_scheduler", lambda **kw: _Scheduler())
    return calls


def test_run_prints_one_token_and_serves_on_the_port(app, served):
    result = CliRunner(env=CLI_ENV).invoke(main, ["run", "--port", "8123"])
    assert result.exit_code == 0, result.output
    assert result.output.count("export TOKEN=") == 1, result.output
    assert "http://127.0.0.1:8123/api/v1/org" in result.output
    assert served == [{"host": "127.0.0.1", "port": 8123, "threaded": True, "use_reloader": False}]


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_run_passes_port_and_prints_one_token():
    dry = subprocess.run(
        ["make", "-n", "--always-make", "run", "PORT=9123"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    certs = [line for line in dry.splitlines() if "/certs " in line]
    # One command prints the token (no separate `certs demo`, which printed a second one).
    assert certs == [".venv/bin/certs run --demo --port 9123"], dry


def test_run_logs_json_lines_when_log_format_is_json(app, monkeypatch, runtime):
    """Everything `certs run` logs (the dev server's lines included) is one JSON object a line."""
    import logging

    import dramatiq

    import cli.main
    import workers.scheduler
    from api import CertsFlask

    def serve(self, **kw):
        # What werkzeug's dev server logs: styled with terminal escapes.
        logging.getLogger("werkzeug").info("\x1b[33mPress CTRL+C to quit\x1b[0m")

    monkeypatch.setattr(CertsFlask, "run", serve)
    monkeypatch.setattr(cli.main, "_bootstrap", lambda **kw: runtime)
    monkeypatch.setattr(migrate, "upgrade", lambda settings: None)  # the suite's schema is current
    monkeypatch.setattr(dramatiq.Worker, "start", lambda self: None)
    monkeypatch.setattr(dramatiq.Worker, "stop", lambda self, *a, **k: None)
    monkeypatch.setattr(workers.scheduler.BackgroundScheduler, "start", lambda self: None)
    monkeypatch.setattr(workers.scheduler.BackgroundScheduler, "shutdown", lambda self, **k: None)
    env = {**CLI_ENV, "LOG_FORMAT": "json", "LOG_LEVEL": "INFO"}
    result = CliRunner(env=env).invoke(main, ["run"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stderr.splitlines() if line.strip()]
    events = {r["logger"]: r["event"] for r in records}
    assert events["werkzeug"] == "Press CTRL+C to quit"
    assert "apscheduler.scheduler" in events
