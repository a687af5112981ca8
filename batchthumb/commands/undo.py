"""``batchthumb undo``: write the job that restores what a run changed."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from batchthumb.commands import Done
from batchthumb.console import Console
from batchthumb.errors import UsageError
from batchthumb.export import undo_job
from batchthumb.history import endpoint_of
from batchthumb.jobwriter import Written, write_job
from batchthumb.model import endpoint_for_region

DESCRIPTION = (
    "Write a job restoring each plan to what it showed before the last run that changed it "
    "(read from REPORT and its history REPORT.1..N). "
    "Plans that had no thumbnail cannot be cleared through the API; they are listed as comments."
)


@dataclass(frozen=True, slots=True)
class UndoResult(Done):
    """The undo job written: how many plans it restores, how many it cannot."""

    written: Written
    restored: int
    cannot: int

    def _summary(self) -> str:
        extra = f"; {self.cannot} cannot be restored (see the comments)" if self.cannot else ""
        return f"{self.written.path}: restores {self.restored} plans{extra}"

    def stdout_lines(self) -> list[str]:
        """``OUT: restores N plans[; K cannot be restored]``, or the job itself with ``-o -``."""
        return self.written.stdout_lines(self._summary())

    def stderr_lines(self) -> list[str]:
        """The summary line, when the job went to standard output."""
        return self.written.stderr_lines(self._summary())


def register(parser: argparse.ArgumentParser) -> None:
    """``undo REPORT -o JOB.yaml [--endpoint URL | --region NAME]``."""
    parser.description = DESCRIPTION
    parser.add_argument("report", type=Path, metavar="REPORT")
    parser.add_argument(
        "-o", "--output", type=Path, required=True, metavar="JOB.yaml",
        help="where to write the job (- for stdout; an existing file is kept as JOB.yaml.1)",
    )  # fmt: skip
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--endpoint", help="the API base URL the job names (default: the report's own)"
    )
    where.add_argument("--region", help="the region whose endpoint the job names")


def from_args(args: argparse.Namespace, console: Console) -> UndoResult:
    """Write the undo job of the report named on the command line."""
    endpoint = args.endpoint.rstrip("/") if args.endpoint else None
    if args.region is not None:
        endpoint = endpoint_for_region(args.region)
    return undo(report=args.report, output=args.output, endpoint=endpoint)


def undo(*, report: Path, output: Path, endpoint: str | None = None) -> UndoResult:
    """Write to ``output`` the job that restores the plans the report's history changed.

    The job names ``endpoint``, else the one the report's runs went to; one of them is needed,
    so that the job runs as written.
    """
    endpoint = endpoint or endpoint_of(report)
    if endpoint is None:
        raise UsageError(
            f"{report} does not say which endpoint its runs used (an older report); "
            "pass --endpoint or --region"
        )
    text, restored, cannot = undo_job(report, endpoint=endpoint)
    return UndoResult(write_job(output, text), restored, cannot)
