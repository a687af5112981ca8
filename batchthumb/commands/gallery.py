"""The gallery as `report --format html -o DIR` and `run --gallery DIR` make it.

Not a command of its own: the two commands share :func:`gallery` and :func:`write_gallery`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import anyio

from batchthumb.commands.report import ReportResult
from batchthumb.console import Console, Quiet
from batchthumb.gallery import PAGE_SIZE, write_gallery
from batchthumb.model import RunSettings
from batchthumb.session import connect
from batchthumb.summarize import ReportFile


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
