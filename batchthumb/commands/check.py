"""``batchthumb check``: compare a job with what the API shows; list calls only, nothing set."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import anyio

from batchthumb.check import CheckResult, Row, compare_job, counts_line, format_row
from batchthumb.commands.flags import add_connection_arguments, settings_from_args
from batchthumb.console import Console, Quiet
from batchthumb.errors import EXIT_OK, EXIT_SOME_FAILED
from batchthumb.jobfile import load_job
from batchthumb.model import Item, Job, RunSettings
from batchthumb.session import Connection, connect

DESCRIPTION = (
    "Compare a job with what the API shows, sending only list calls (never a PUT or an "
    "upload). Each plan is in sync ( ), would change (~), missing (-) or unknown (?). "
    "Exit 0 when every plan is in sync, 1 otherwise."
)


@dataclass(frozen=True, slots=True)
class CheckOutcome:
    """The counts of a check; the rows were streamed as they came."""

    result: CheckResult
    endpoint: str

    @property
    def exit_code(self) -> int:
        """0 when every plan is in sync, 1 on any drift (or what cannot be compared)."""
        return EXIT_OK if self.result.in_sync else EXIT_SOME_FAILED

    def stdout_lines(self) -> list[str]:
        """The counts."""
        return [counts_line(self.result)]

    def stderr_lines(self) -> list[str]:
        """What it cost."""
        r = self.result
        return [
            f"batchthumb: compared with {self.endpoint}: {r.requests} list calls for "
            f"{r.projects} project(s); nothing was changed"
        ]


def register(parser: argparse.ArgumentParser) -> None:
    """``check JOB.yaml`` with the connection flags."""
    parser.description = DESCRIPTION
    parser.add_argument("job", type=Path, metavar="JOB.yaml")
    add_connection_arguments(parser)


def from_args(args: argparse.Namespace, console: Console) -> CheckOutcome:
    """Check the job named on the command line, printing each row as it comes."""
    job = load_job(args.job)
    for warning in job.warnings:
        console.warn(str(warning))
    return check(job=job, settings=settings_from_args(args, job.settings), console=console)


def check(
    *,
    job: Job,
    settings: RunSettings | None = None,
    console: Console | None = None,
    out: TextIO | None = None,
    items: Iterable[Item] | None = None,
    connection: Connection | None = None,
) -> CheckOutcome:
    """Compare ``items`` (default: the job's) with the API; write each row to ``out``.

    Local images are compared by the URL the job's report says they were uploaded as.
    """
    settings = settings or job.settings
    connection = connection or connect(settings, job.auth, console or Quiet())
    stream = out or sys.stdout

    def show(row: Row) -> None:
        stream.write(format_row(row) + "\n")

    result = anyio.run(
        compare_job, job, settings, connection, show, job.items if items is None else items
    )
    return CheckOutcome(result, connection.endpoint)
