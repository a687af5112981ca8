"""The command line: parse, run the command, print its result, map errors to exit codes.

This is the only module that prints for the user and decides how the process exits. A
command's module is imported only when that command runs, so ``batchthumb --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Protocol

from batchthumb import __version__
from batchthumb.commands import CommandResult
from batchthumb.console import Console, StderrConsole
from batchthumb.errors import (
    EXIT_ABORTED,
    EXIT_INCOMPLETE,
    EXIT_INTERRUPTED,
    EXIT_LOCKED,
    EXIT_OK,
    EXIT_SOME_FAILED,
    EXIT_USAGE,
    BatchthumbError,
    JobFileError,
)

# Every command: its module batchthumb.commands.NAME, and its line in `batchthumb --help`.
COMMANDS = {
    "run": "set the thumbnails a job file lists",
    "export": "write a job file that sets every plan's current thumbnail (a backup)",
    "migrate": "copy thumbnails from one project's plans to another's",
    "undo": "write the job that restores what a run changed",
    "history": "list a report's kept history: each run's date, counts and changes",
    "report": "summarise reports: text, JSON, CSV, JUnit, or a before/after HTML gallery",
    "check": "compare a job with what the API shows; list calls only, nothing is changed",
    "validate": "check a job file; send nothing",
    "sandbox": "serve a local sandbox of the CodeArts Req plan API",
    "example": "write the example jobs, images and sandbox seed into a folder",
}

EXIT_CODES = f"""\
exit codes:
  {EXIT_OK}    every item succeeded (or was already done)
  {EXIT_SOME_FAILED}    some items failed; the report says which and why (check: not all in sync)
  {EXIT_USAGE}    invalid usage, job file or credentials (nothing was sent), or a report
       that cannot be read or written (the run stops at once)
  {EXIT_ABORTED}    aborted: credentials rejected, or items kept failing the same way
  {EXIT_INCOMPLETE}    not finished: --max-duration reached, or items never attempted (after
       --retry-failed); the summary ends with the command that finishes the job
  {EXIT_LOCKED}   another run holds the report's lock
  {EXIT_INTERRUPTED}  interrupted (SIGINT or SIGTERM); the summary says how to --resume
"""


class _Command(Protocol):
    """What cli needs of a command module (see :mod:`batchthumb.commands`)."""

    def register(self, parser: argparse.ArgumentParser) -> None: ...

    def from_args(self, args: argparse.Namespace, console: Console) -> CommandResult: ...


class _LazyCommand(argparse.Action):
    """A subcommand whose arguments are added only once it is chosen.

    argparse builds every subparser before parsing; this action registers the chosen
    command's arguments (importing its module) and then parses the rest with them.
    """

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[object] | None,
        option_string: str | None = None,
    ) -> None:
        assert isinstance(values, list)
        name, rest = values[0], values[1:]
        if name not in COMMANDS:
            parser.error(f"argument COMMAND: invalid choice: {name!r} (choose from {_choices()})")
        sub = argparse.ArgumentParser(
            prog=f"{parser.prog} {name}",
            description=COMMANDS[name][:1].upper() + COMMANDS[name][1:] + ".",
            epilog=EXIT_CODES,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module = _load(name)
        module.register(sub)
        sub.parse_args(rest, namespace)
        namespace.command = name
        namespace.module = module


def _choices() -> str:
    return ", ".join(repr(name) for name in COMMANDS)


def _load(name: str) -> _Command:
    module: _Command = importlib.import_module(f"batchthumb.commands.{name}")
    return module


def build_parser() -> argparse.ArgumentParser:
    """The ``batchthumb`` argument parser; each command adds its own arguments when chosen."""
    listing = "\n".join(f"  {name:<10}{line}" for name, line in COMMANDS.items())
    parser = argparse.ArgumentParser(
        prog="batchthumb",
        usage="batchthumb [-h] [--version] COMMAND ...",
        description="Set Huawei Cloud CodeArts Req plan thumbnails in bulk from a YAML job file."
        f"\n\ncommands:\n{listing}\n\n`batchthumb COMMAND --help` for a command's options.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"batchthumb {__version__}")
    parser.add_argument(
        "command", nargs=argparse.PARSER, action=_LazyCommand, metavar="COMMAND ...",
        help=argparse.SUPPRESS,
    )  # fmt: skip
    return parser


def _masked(message: str) -> str:
    """``message`` with every loaded secret masked: the last line of defence for stderr."""
    from batchthumb.auth import mask_secrets

    return mask_secrets(message)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    args = build_parser().parse_args(argv)
    module: _Command = args.module
    try:
        result = module.from_args(args, StderrConsole(mask=_masked))
    except JobFileError as exc:
        if exc.shown:
            return exc.exit_code
        for problem in exc.problems:
            print(_masked(str(problem)), file=sys.stderr)
        count = len(exc.problems)
        print(
            f"batchthumb: {count} problem{'s' if count > 1 else ''} found; nothing was sent",
            file=sys.stderr,
        )
        return exc.exit_code
    except BatchthumbError as exc:
        if not exc.shown:
            print(f"batchthumb: {_masked(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("batchthumb: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    for line in result.stdout_lines():
        print(line)
    for line in result.stderr_lines():
        print(_masked(line), file=sys.stderr)
    return result.exit_code
