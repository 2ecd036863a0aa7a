"""The composition root below the entry points: `bootstrap(settings)` wires a process."""

from runtime.bootstrap import Runtime, bootstrap, current

__all__ = ["Runtime", "bootstrap", "current"]
