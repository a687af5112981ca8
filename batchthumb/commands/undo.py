"""``batchthumb undo``: write the job that restores what a run changed."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from batchthumb.commands import Done
from batchthumb.console import Console
from batchthumb.export import undo_job
from batchthumb.jobwriter import write_text

DESCRIPTION = (
    "Write a job restoring previous_img_url for every plan a report records as changed. "
    "Plans that had no thumbnail cannot be cleared through the API; they are listed as comments."
)


@dataclass(frozen=True, slots=True)
class UndoResult(Done):
    """The undo job written: how many plans it restores, how many it cannot."""

    output: Path
    restored: int
    cannot: int

    def stdout_lines(self) -> list[str]:
        """``OUT: restores N plans[; K cannot be restored]``."""
        extra = f"; {self.cannot} cannot be restored (see the comments)" if self.cannot else ""
        return [f"{self.output}: restores {self.restored} plans{extra}"]


def register(parser: argparse.ArgumentParser) -> None:
    """``undo REPORT -o JOB.yaml``."""
    parser.description = DESCRIPTION
    parser.add_argument("report", type=Path, metavar="REPORT")
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="JOB.yaml")


def from_args(args: argparse.Namespace, console: Console) -> UndoResult:
    """Write the undo job of the report named on the command line."""
    return undo(report=args.report, output=args.output)


def undo(*, report: Path, output: Path) -> UndoResult:
    """Write to ``output`` the job that restores the plans ``report`` records as changed."""
    text, restored, cannot = undo_job(report)
    write_text(output, text)
    return UndoResult(output, restored, cannot)
