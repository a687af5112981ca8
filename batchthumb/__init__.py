"""batchthumb: set Huawei Cloud CodeArts Req plan thumbnails in bulk.

The library API, for a script that runs jobs without the CLI (loaded on first use, so
``import batchthumb`` stays cheap)::

    import batchthumb

    job = batchthumb.load_job("jobs/example.yaml")
    result = batchthumb.run(job=job, sandbox=True)
    print(result.summary)

Every function takes keyword arguments, never prints and never exits: it returns a result
value or raises a :class:`BatchthumbError`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Each public name, and the module it lives in.
_EXPORTS = {
    "load_job": "batchthumb.jobfile",
    "load_auth": "batchthumb.jobfile",
    "Job": "batchthumb.model",
    "RunSettings": "batchthumb.model",
    "TokenAuth": "batchthumb.model",
    "IamAuth": "batchthumb.model",
    "AkSkAuth": "batchthumb.model",
    "run": "batchthumb.commands.run",
    "dry_run": "batchthumb.commands.run",
    "RunResult": "batchthumb.jobrun",
    "validate": "batchthumb.commands.validate",
    "export": "batchthumb.commands.export",
    "migrate": "batchthumb.commands.migrate",
    "undo": "batchthumb.commands.undo",
    "history": "batchthumb.commands.history",
    "example": "batchthumb.commands.example",
    "Console": "batchthumb.console",
    "StderrConsole": "batchthumb.console",
    "Quiet": "batchthumb.console",
    "BatchthumbError": "batchthumb.errors",
}

__all__ = [  # the names of _EXPORTS (a test checks), for type checkers and star imports
    "AkSkAuth",
    "BatchthumbError",
    "Console",
    "IamAuth",
    "Job",
    "Quiet",
    "RunResult",
    "RunSettings",
    "StderrConsole",
    "TokenAuth",
    "__version__",
    "dry_run",
    "example",
    "export",
    "history",
    "load_auth",
    "load_job",
    "migrate",
    "run",
    "undo",
    "validate",
]

if TYPE_CHECKING:
    from batchthumb.commands.example import example
    from batchthumb.commands.export import export
    from batchthumb.commands.history import history
    from batchthumb.commands.migrate import migrate
    from batchthumb.commands.run import dry_run, run
    from batchthumb.commands.undo import undo
    from batchthumb.commands.validate import validate
    from batchthumb.console import Console, Quiet, StderrConsole
    from batchthumb.errors import BatchthumbError
    from batchthumb.jobfile import load_auth, load_job
    from batchthumb.jobrun import RunResult
    from batchthumb.model import AkSkAuth, IamAuth, Job, RunSettings, TokenAuth


def __getattr__(name: str) -> Any:
    """Import a public name's module when the name is first used."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'batchthumb' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next lookup does not come here
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
