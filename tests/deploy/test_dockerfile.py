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


def test_the_base_image_is_pinned_by_digest() -> None:
    arg = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", DOCKERFILE, flags=re.M)
    assert arg is not None
    assert re.fullmatch(r"python:3\.11-slim@sha256:[0-9a-f]{64}", arg.group(1)), arg.group(1)
    assert all(
        line.split()[1] == "${PYTHON_IMAGE}"
        for line in DOCKERFILE.splitlines()
        if line.startswith("FROM ")
    )


def test_the_image_installs_exactly_the_lock() -> None:
    builder = _stages()["builder"]
    assert "pip install --require-hashes -r requirements-build.lock" in builder
    assert "/opt/venv/bin/pip install --require-hashes --no-deps -r requirements.lock" in builder
    # The project itself adds no dependency and downloads nothing.
    assert "--no-deps --no-index /tmp/dist/certs-*.whl" in builder
    assert "tomllib" not in builder  # the old unpinned install from pyproject's ranges


def _lock(name: str) -> dict[str, str]:
    """name → pinned version of a pip-compile lock; every pin must carry sha256 hashes."""
    pins: dict[str, str] = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", (ROOT / name).read_text()):
        head = block.split()[0] if block.strip() else ""
        if "==" not in head:
            continue
        package, version = head.split("==")
        assert "--hash=sha256:" in block, f"{name}: {package} has no hash"
        pins[package.lower().replace("_", "-")] = version
    return pins


def test_the_locks_pin_every_dependency_within_pyprojects_ranges() -> None:
    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime, dev = _lock("requirements.lock"), _lock("requirements-dev.lock")
    wanted = [(runtime, d) for d in project["dependencies"]]
    wanted += [(dev, d) for d in project["dependencies"] + project["optional-dependencies"]["dev"]]
    for pins, text in wanted:
        req = Requirement(text)
        name = req.name.lower().replace("_", "-")
        assert name in pins, f"{name} is not locked"
        assert req.specifier.contains(pins[name], prereleases=True), (name, pins[name])
    build = _lock("requirements-build.lock")
    assert {"pip", "setuptools"} <= set(build)


def test_make_installs_the_dev_lock_with_hashes() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "--require-hashes --no-deps -r requirements-dev.lock" in makefile
    assert "--no-deps --no-build-isolation -e ." in makefile
