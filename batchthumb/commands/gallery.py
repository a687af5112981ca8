"""The gallery as `report --format html -o DIR` and `run --gallery DIR` make it.

Not a command of its own: the two commands share :func:`gallery` and :func:`write_gallery`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import anyio

from batchthumb.commands.report import ReportResult
from batchthumb.console import Console, Quiet
from batchthumb.gallery import PAGE_SIZE, ApiThumbnails, Gallery, build_gallery
from batchthumb.model import RunSettings
from batchthumb.session import Connection, connect, open_session
from batchthumb.summarize import ReportFile, summarize


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


async def write_gallery(
    reports: Sequence[ReportFile],
    folder: Path,
    connection: Connection,
    settings: RunSettings,
    page_size: int = PAGE_SIZE,
) -> Gallery:
    """The gallery of ``reports`` through an open connection (a run's, or a fresh one)."""
    summary = summarize(reports)
    async with open_session(connection, settings) as (api, sender):
        return await build_gallery(
            reports,
            summary,
            folder,
            source=ApiThumbnails(api, sender),
            concurrency=settings.concurrency,
            page_size=page_size,
        )
