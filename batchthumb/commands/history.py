"""``batchthumb history``: the reports a job keeps (REPORT, REPORT.1..N) and what undo uses."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from batchthumb.commands import Done
from batchthumb.console import Console
from batchthumb.errors import ReportError
from batchthumb.history import Entry, history_paths, last_changes, summarize

DESCRIPTION = (
    "List a report and the earlier reports kept beside it (REPORT.1..N, newest first): when "
    "each run started, its counts, and how many plans undo restores from it."
)


@dataclass(frozen=True, slots=True)
class HistoryResult(Done):
    """Each kept report, newest first, and the plans undo would restore from each."""

    report: Path
    entries: tuple[Entry, ...]
    undo_from: dict[Path, int]  # report -> plans whose newest change it records

    def stdout_lines(self) -> list[str]:
        """One line a report: ``PATH  DATE  N succeeded, F failed, S skipped  undo: K``."""
        width = max(len(str(entry.path)) for entry in self.entries)
        lines = []
        for entry in self.entries:
            started = entry.started_at or "date unknown"
            runs = f" ({entry.runs} runs)" if entry.runs > 1 else ""
            changed = f"{entry.succeeded} plans" if entry.succeeded else "nothing"
            lines.append(
                f"{entry.path!s:<{width}}  {started}{runs}  {entry.succeeded} succeeded, "
                f"{entry.failed} failed, {entry.skipped} skipped; changed {changed}; "
                f"undo restores {self.undo_from.get(entry.path, 0)} from it"
            )
        total = sum(self.undo_from.values())
        lines.append(f"undo {self.report} -o JOB.yaml: restores {total} plans in all")
        return lines


def register(parser: argparse.ArgumentParser) -> None:
    """``history REPORT``."""
    parser.description = DESCRIPTION
    parser.add_argument("report", type=Path, metavar="REPORT")


def from_args(args: argparse.Namespace, console: Console) -> HistoryResult:
    """The history of the report named on the command line."""
    return history(report=args.report)


def history(*, report: Path) -> HistoryResult:
    """Summarize ``report`` and each earlier report kept beside it."""
    paths = history_paths(report)
    if not paths:
        raise ReportError(f"{report}: no such report, and no earlier ones ({report.name}.1...)")
    undo_from: dict[Path, int] = {}
    for change in last_changes(report).values():
        undo_from[change.report] = undo_from.get(change.report, 0) + 1
    return HistoryResult(report, tuple(summarize(path) for path in paths), undo_from)
