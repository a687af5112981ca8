"""``batchthumb report``: what one or more reports say, as text, JSON, CSV, JUnit or a gallery."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import anyio

from batchthumb.commands import Done
from batchthumb.commands.flags import add_connection_arguments, settings_from_args
from batchthumb.console import Console, Quiet
from batchthumb.errors import UsageError, os_errors
from batchthumb.gallery import PAGE_SIZE, write_gallery
from batchthumb.model import RunSettings
from batchthumb.render import json_summary, text_summary, write_csv, write_junit
from batchthumb.session import connect
from batchthumb.summarize import ReportFile, summarize

FORMATS = ("text", "json", "csv", "junit", "html")
DESCRIPTION = (
    "Summarise reports: counts by outcome, failures by error code with an example each, "
    "timing and throttling, and what changed. CSV and JUnit have a row or test case per plan; "
    "html writes a before/after gallery into a folder, downloading the thumbnails through "
    "the API (so it takes the connection options)."
)


@dataclass(frozen=True, slots=True)
class ReportResult(Done):
    """Where the output went, and what it held; exit 0 even if the report records failures."""

    format: str
    output: Path | None  # None: standard output
    plans: int
    pages: int = 0  # html only
    images: int = 0
    unavailable: int = 0

    def stderr_lines(self) -> list[str]:
        """Where a file or gallery was written."""
        if self.output is None:
            return []
        if self.format == "html":
            missing = f", {self.unavailable} could not be downloaded" if self.unavailable else ""
            return [
                f"batchthumb: gallery of {self.plans} plans in {self.pages} page(s), "
                f"{self.images} images{missing}: {self.output / 'index.html'}"
            ]
        return [f"batchthumb: {self.format} report of {self.plans} plans: {self.output}"]


def register(parser: argparse.ArgumentParser) -> None:
    """``report REPORT... [--format F] [-o PATH]`` with the connection flags (for html)."""
    parser.description = DESCRIPTION
    parser.add_argument("reports", nargs="+", type=Path, metavar="REPORT")
    parser.add_argument(
        "--format", choices=FORMATS, default="text", help="what to write (default text)"
    )
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="PATH",
        help="a file (default: standard output); for html, a folder (required)",
    )
    parser.add_argument(
        "--page-size",
        type=int,
        default=PAGE_SIZE,
        metavar="N",
        help=f"html: plans per page (default {PAGE_SIZE})",
    )
    add_connection_arguments(parser)


def from_args(args: argparse.Namespace, console: Console) -> ReportResult:
    """Summarise the reports named on the command line."""
    settings = settings_from_args(args, RunSettings()) if args.format == "html" else None
    return report(
        reports=args.reports,
        format=args.format,
        output=args.output,
        settings=settings,
        console=console,
        page_size=args.page_size,
    )


def report(
    *,
    reports: Sequence[Path],
    format: str = "text",
    output: Path | None = None,
    stdout: TextIO | None = None,
    settings: RunSettings | None = None,
    console: Console | None = None,
    page_size: int = PAGE_SIZE,
) -> ReportResult:
    """Summarise ``reports`` as ``format`` into ``output`` (a file; a folder for html).

    Without ``output``, text, json, csv and junit go to ``stdout`` (default: standard
    output). html needs ``output`` and ``settings`` with an endpoint and credentials: the
    thumbnails are downloaded through the API. Reports are streamed, never loaded whole.
    """
    if page_size < 1:
        raise UsageError(f"--page-size {page_size}: must be 1 or more")
    if format not in FORMATS:
        raise UsageError(f"--format {format!r}: choose from {', '.join(FORMATS)}")
    files = [ReportFile(path) for path in reports]
    if format == "html":
        if output is None:
            raise UsageError("--format html writes a folder: give it with -o DIR")
        return gallery(
            reports=files, folder=output, settings=settings, console=console, page_size=page_size
        )
    with _opened(output, stdout) as out:
        if format == "csv":
            plans = write_csv(files, out)
        elif format == "junit":
            summaries = [summarize([file]) for file in files]
            write_junit(files, summaries, out)
            plans = sum(s.plans for s in summaries)
        else:
            summary = summarize(files)
            out.write(json_summary(summary) if format == "json" else text_summary(summary))
            plans = summary.plans
    return ReportResult(format, output, plans)


@contextmanager
def _opened(output: Path | None, stdout: TextIO | None) -> Iterator[TextIO]:
    if output is None:
        yield stdout or sys.stdout
        return
    with os_errors(output, "write"):
        stream = output.open("w", encoding="utf-8", newline="")
    with stream:
        yield stream


def gallery(
    *,
    reports: Sequence[ReportFile],
    folder: Path,
    settings: RunSettings | None = None,
    console: Console | None = None,
    page_size: int = PAGE_SIZE,
) -> ReportResult:
    """Write the gallery of ``reports`` into ``folder``, downloading through ``settings``'s API."""
    settings = settings or RunSettings()
    connection = connect(settings, None, console or Quiet())
    made = anyio.run(write_gallery, reports, folder, connection, settings, page_size)
    return ReportResult("html", folder, made.plans, made.pages, made.images, made.unavailable)
