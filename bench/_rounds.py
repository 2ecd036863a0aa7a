"""Alternating rounds, shared by every scenario: project and floor runs take turns, each figure
printed beside the load average at the time it was taken.

The machine running a benchmark is often shared: a run of 3 project figures then 3 floor
figures lets a load swing bias the ratio, interleaving them spreads it over both sides, and the
printed load average says how quiet the machine was.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable, Mapping

REPEATS = 3


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, as `uptime` shows them."""
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:  # not available on this platform
        return "load n/a"
    return f"load {one:.2f} {five:.2f} {fifteen:.2f}"


def alternate(
    scenario: str,
    runs: Mapping[str, Callable[[], float]],
    *,
    repeats: int = REPEATS,
    before: Callable[[], None] | None = None,
    unit: str = "s",
) -> dict[str, float]:
    """Run `runs` in turn, `repeats` rounds (a b c, a b c, ...); the median of each, by name.

    `before` runs (untimed) before every run, e.g. to restore the starting state. Each figure
    is printed as it is taken, with the load average beside it.
    """
    values: dict[str, list[float]] = {name: [] for name in runs}
    for round_no in range(1, repeats + 1):
        for name, run in runs.items():
            if before is not None:
                before()
            value = run()
            values[name].append(value)
            print(
                f"{scenario}: round {round_no}/{repeats} {name} {value:.4f} {unit}"
                f" ({load_average()})",
                flush=True,
            )
    return {name: statistics.median(figures) for name, figures in values.items()}
