"""Every actor module in this package, imported so a worker process registers them all.

`dramatiq workers.actors` (what `certs worker` runs) loads this; add actors as new modules here.
"""

from __future__ import annotations

import importlib
import pkgutil

import workers.broker  # noqa: F401 - the broker must exist before any actor is declared

for _mod in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_mod.name}")
