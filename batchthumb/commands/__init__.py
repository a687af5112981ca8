"""One module per command; each is a library function plus its command-line registration.

A command module ``NAME.py`` exposes:

- ``NAME(**keywords) -> NameResult``: the library function. It never prints and never exits;
  it returns a frozen :class:`CommandResult` or raises a
  :class:`~batchthumb.errors.BatchthumbError`. What it says while it works goes through the
  :class:`~batchthumb.console.Console` it is given.
- ``register(parser)``: adds the command's arguments to its ``argparse`` parser.
- ``from_args(args, console) -> NameResult``: the parsed arguments to keyword arguments.

``cli.py`` names each command once (``cli.COMMANDS``) and imports its module when it runs.
"""

from __future__ import annotations

from typing import Protocol

from batchthumb.errors import EXIT_OK


class CommandResult(Protocol):
    """What every command returns: an exit code, and what the CLI prints once it is done."""

    @property
    def exit_code(self) -> int:
        """How the CLI ends (``errors.EXIT_*``)."""
        ...

    def stdout_lines(self) -> list[str]:
        """Lines for standard output (the command's output proper)."""
        ...

    def stderr_lines(self) -> list[str]:
        """Lines for standard error (summaries, notes)."""
        ...


class Done:
    """The defaults of a result: exit 0, nothing to print. Results override what they say."""

    __slots__ = ()

    @property
    def exit_code(self) -> int:
        """0: the command did what it was asked."""
        return EXIT_OK

    def stdout_lines(self) -> list[str]:
        """Nothing."""
        return []

    def stderr_lines(self) -> list[str]:
        """Nothing."""
        return []
