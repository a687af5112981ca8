"""A local stand-in for the CodeArts Req plan API, for tests, benchmarks and rehearsals.

Importing this package is cheap: the aiohttp-based parts load on first use of a name, so
the CLI can register the ``sandbox`` subcommand without paying for aiohttp.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from batchthumb.sandbox.config import IamUser, SandboxConfig
    from batchthumb.sandbox.faults import Fault, FaultKind, Faults
    from batchthumb.sandbox.limits import RateLimit, RetryAfter, Shape
    from batchthumb.sandbox.seed import SeedError, load_seed
    from batchthumb.sandbox.server import Sandbox
    from batchthumb.sandbox.state import Creator, Gate, Plan, Stats

_EXPORTS = {
    "Creator": "state",
    "Fault": "faults",
    "FaultKind": "faults",
    "Faults": "faults",
    "Gate": "state",
    "IamUser": "config",
    "Plan": "state",
    "RateLimit": "limits",
    "RetryAfter": "limits",
    "Sandbox": "server",
    "SandboxConfig": "config",
    "SeedError": "seed",
    "Shape": "limits",
    "Stats": "state",
    "load_seed": "seed",
}

__all__ = [
    "Creator",
    "Fault",
    "FaultKind",
    "Faults",
    "Gate",
    "IamUser",
    "Plan",
    "RateLimit",
    "RetryAfter",
    "Sandbox",
    "SandboxConfig",
    "SeedError",
    "Shape",
    "Stats",
    "load_seed",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
