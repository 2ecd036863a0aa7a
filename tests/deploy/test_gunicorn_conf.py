"""gunicorn.conf.py: the production settings gunicorn will read."""

from __future__ import annotations

import runpy
from pathlib import Path

CONF = Path(__file__).resolve().parents[2] / "gunicorn.conf.py"


def _load(monkeypatch, tmp_path, **env: str) -> dict:
    # The file exports PROMETHEUS_MULTIPROC_DIR; monkeypatch restores the environment after.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "prom"))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(CONF))


def test_production_settings(monkeypatch, tmp_path) -> None:
    (tmp_path / "prom").mkdir()
    (tmp_path / "prom" / "counter_123.db").write_bytes(b"stale")
    monkeypatch.delenv("GUNICORN_WORKERS", raising=False)
    conf = _load(monkeypatch, tmp_path, LOG_FORMAT="json")
    assert conf["control_socket_disable"] is True  # gunicorn 27 would write to $HOME otherwise
    assert conf["workers"] >= 3  # 2 x CPUs + 1
    assert conf["timeout"] >= 30
    # Not sync: a sync worker is killed at `timeout` in the middle of a long streamed export
    # (tests/concurrency/test_export_complete.py); gthread beats its heartbeat while serving.
    assert (conf["worker_class"], conf["threads"]) == ("gthread", 2)
    assert conf["graceful_timeout"] > 0
    assert conf["accesslog"] == "-"
    assert callable(conf["child_exit"])
    formatters = conf["logconfig_dict"]["formatters"]
    assert formatters["access"]["()"].endswith("AccessJsonFormatter")
    assert conf["logger_class"] == "infra.access_log.JsonAccessLogger"
    assert not list((tmp_path / "prom").glob("*.db")), "stale metric files are removed at start"


def test_environment_overrides(monkeypatch, tmp_path) -> None:
    conf = _load(
        monkeypatch,
        tmp_path,
        GUNICORN_WORKERS="2",
        GUNICORN_BIND="127.0.0.1:9999",
        GUNICORN_TIMEOUT="45",
        GUNICORN_THREADS="4",
        LOG_FORMAT="text",
    )
    assert (conf["workers"], conf["bind"], conf["timeout"]) == (2, "127.0.0.1:9999", 45)
    assert (conf["worker_class"], conf["threads"]) == ("gthread", 4)
    assert "()" not in conf["logconfig_dict"]["formatters"]["access"]
    assert "logger_class" not in conf  # text lines: gunicorn's own access logger
