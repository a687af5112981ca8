"""A report's history: earlier reports kept as ``REPORT.1..N``, and what undo reads from them.

A fresh run keeps the last report as ``REPORT.1`` (shifting older ones up to ``REPORT.N``)
only when that report changed something; a report that changed nothing (a quiet night, a run
that failed before any change) is replaced, so it never pushes the last change out. Undo
restores each plan from the newest report in which a run changed it.
"""

from __future__ import annotations

import contextlib
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchthumb.errors import ReportError, os_errors
from batchthumb.model import Outcome
from batchthumb.report import RUN, START, Key, last_records, read_uploads, report_lines


def history_paths(report: Path) -> list[Path]:
    """The report, then ``REPORT.1``, ``REPORT.2``, ... as far as they exist: newest first."""
    paths = [report] if report.exists() else []
    for number in itertools.count(1):
        path = _numbered(report, number)
        if not path.exists():
            return paths
        paths.append(path)
    raise AssertionError("unreachable")  # pragma: no cover


def _numbered(report: Path, number: int) -> Path:
    return report.with_name(f"{report.name}.{number}")


def changed_anything(path: Path) -> bool:
    """Whether a report may record a change undo needs: an item that succeeded, or a run
    that never ended (killed: a PUT may have been applied before its line was written).

    A succeeded item is never sent again within its report (resume skips it), so the first
    such line decides; most reports that changed something answer within a few lines.
    """
    succeeded = Outcome.SUCCEEDED.value
    running = False
    for record in report_lines(path):
        kind = record.get("kind")
        if kind == START:
            running = True
        elif kind == RUN:  # written as a run ends
            running = False
        elif record.get("outcome") == succeeded:
            return True
    return running


def rotate(report: Path, *, keep: int) -> None:
    """Before a fresh run: keep the last report as ``REPORT.1`` if it changed something.

    Older reports move up one (``.1`` to ``.2``...), and those beyond ``keep`` are removed.
    A report that changed nothing is removed instead. Renames only: a crash here loses no
    report that changed something.
    """
    with os_errors(report, "keep the previous report"):
        if report.exists() and not changed_anything(report):
            report.unlink()
        if report.exists():
            for number in range(keep, 0, -1):
                older = _numbered(report, number)
                if older.exists():
                    older.replace(_numbered(report, number + 1))
            report.replace(_numbered(report, 1))
        for number in itertools.count(keep + 1):
            extra = _numbered(report, number)
            if not extra.exists():
                break
            extra.unlink()


def remembered_uploads(report: Path) -> dict[Key, str]:
    """(project_id, cache key) -> img_url of every upload the history records (newest wins).

    The server may have lost an image since; callers trust one only where a plan shows it.
    """
    uploads: dict[Key, str] = {}
    for path in reversed(history_paths(report)):
        with contextlib.suppress(ReportError):  # a damaged old report only costs an upload
            uploads.update(read_uploads(path))
    return uploads


@dataclass(frozen=True, slots=True)
class Change:
    """The newest change a run made to a plan: the report that records it, and its line."""

    report: Path
    record: dict[str, Any]


def last_changes(report: Path) -> dict[Key, Change]:
    """For each plan any report of the history changed: its newest change."""
    paths = history_paths(report)
    if not paths:
        raise ReportError(f"{report}: no such report")
    changes: dict[Key, Change] = {}
    for path in paths:
        for key, record in last_records(path).items():
            if record.get("outcome") == Outcome.SUCCEEDED.value and key not in changes:
                changes[key] = Change(path, record)
    return changes


@dataclass(frozen=True, slots=True)
class Entry:
    """One report of the history, summed up."""

    path: Path
    started_at: str | None  # from the report's first run line; None for older reports
    endpoint: str | None
    succeeded: int
    failed: int
    skipped: int
    runs: int  # run lines: 1, plus one per --resume or --retry-failed


def summarize(path: Path) -> Entry:
    """What one report of the history says: when, where, and its counts by outcome."""
    counts = dict.fromkeys(Outcome, 0)
    for record in last_records(path).values():
        with contextlib.suppress(ValueError, KeyError):
            counts[Outcome(record["outcome"])] += 1
    runs = [record for record in report_lines(path) if record.get("kind") in (START, RUN)]
    starts = [record for record in runs if record.get("kind") == START]
    first = starts[0] if starts else runs[0] if runs else {}
    started, endpoint = first.get("started_at"), first.get("endpoint")
    return Entry(
        path=path,
        started_at=started if isinstance(started, str) else None,
        endpoint=endpoint if isinstance(endpoint, str) else None,
        succeeded=counts[Outcome.SUCCEEDED],
        failed=counts[Outcome.FAILED],
        skipped=counts[Outcome.SKIPPED],
        runs=len(starts) or len(runs),
    )


def endpoint_of(report: Path) -> str | None:
    """The endpoint the newest report of the history that names one was run against."""
    for path in history_paths(report):
        endpoint = summarize(path).endpoint
        if endpoint is not None:
            return endpoint
    return None
