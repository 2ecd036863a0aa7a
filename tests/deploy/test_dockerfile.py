"""The Dockerfile (no engine here to build it): stages, user, final-image contents."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def _stages() -> dict[str, str]:
    parts = re.split(r"^FROM\s+\S+\s+AS\s+(\w+)\s*$", DOCKERFILE, flags=re.M | re.I)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_multi_stage_with_a_slim_non_root_runtime() -> None:
    stages = _stages()
    assert list(stages) == ["builder", "runtime"]
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in DOCKERFILE
    runtime = stages["runtime"]
    user = re.findall(r"^USER\s+(\S+)", runtime, flags=re.M)
    assert user, "the runtime stage must switch user"
    assert user[-1].split(":")[0] not in {"0", "root"}
    # Compilers stay in the builder.
    assert "build-essential" in stages["builder"]
    assert not re.search(r"apt-get install|build-essential|gcc", runtime)
    assert "COPY --from=builder /opt/venv /opt/venv" in runtime


def test_default_command_is_gunicorn_with_the_config_file() -> None:
    cmd = re.findall(r"^CMD\s+(.+)$", DOCKERFILE, flags=re.M)[-1]
    assert json.loads(cmd) == ["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
    for name in ("wsgi.py", "gunicorn.conf.py"):
        assert name in _stages()["runtime"]


def test_every_package_of_the_project_is_copied_into_the_builder() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    includes = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    for pattern in includes:
        package = pattern.rstrip("*")
        assert f"COPY {package}/ {package}/" in _stages()["builder"], package


def test_dockerignore_keeps_the_context_small_and_secret_free() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", "instance", "tests", ".env"} <= ignored
