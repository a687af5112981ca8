"""``batchthumb sandbox``: serve a local sandbox of the CodeArts Req plan API until stopped.

The library side is :class:`batchthumb.sandbox.Sandbox`; this module is the command only.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from batchthumb.commands import Done
from batchthumb.console import Console
from batchthumb.sandbox import command

DESCRIPTION = "Serve a local stand-in for the CodeArts Req plan API until Ctrl-C."


@dataclass(frozen=True, slots=True)
class SandboxResult(Done):
    """The sandbox stopped (SIGINT or SIGTERM)."""

    code: int  # 0 after SIGINT or SIGTERM

    @property
    def exit_code(self) -> int:
        """The sandbox's own exit code."""
        return self.code


def register(parser: argparse.ArgumentParser) -> None:
    """The sandbox's own options (:mod:`batchthumb.sandbox.command`)."""
    parser.description = DESCRIPTION
    command.add_arguments(parser)


def from_args(args: argparse.Namespace, console: Console) -> SandboxResult:
    """Serve until stopped."""
    return SandboxResult(command.run(args))
