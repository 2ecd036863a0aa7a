"""`python -m bench SCENARIO --size N`: run one benchmark (`bench/<scenario>.py`'s `main(size)`).

`python -m bench all` runs every scenario module at its `DEFAULT_SIZE`.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

import bench


def _scenarios() -> list[str]:
    """Scenario modules: not the private helpers (`_support`), nor the baseline app `bench api`
    serves (`api_baseline`)."""
    return sorted(
        m.name
        for m in pkgutil.iter_modules(bench.__path__)
        if not m.name.startswith("_") and not m.name.endswith("_baseline")
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("scenario", choices=[*_scenarios(), "all"])
    parser.add_argument("--size", type=int, default=None, help="scenario size (N)")
    args = parser.parse_args(argv)
    names = _scenarios() if args.scenario == "all" else [args.scenario]
    for name in names:
        module = importlib.import_module(f"bench.{name}")
        size = args.size if args.size is not None else getattr(module, "DEFAULT_SIZE", 1000)
        module.main(size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
