"""Worker processes' entry point: `dramatiq workers.entry:setup` (what `certs worker` runs).

Dramatiq calls `setup()` in each worker process before consuming: the environment is read
there, once, not at import.
"""

from __future__ import annotations

from infra.settings import load_settings
from runtime import bootstrap
from workers.actors import register_actors
from workers.metrics import add_message_metrics


def setup() -> None:
    settings = load_settings()
    runtime = bootstrap(settings)
    register_actors(runtime.broker, settings)
    add_message_metrics(runtime.broker, settings)  # a dramatiq worker process: serves metrics
