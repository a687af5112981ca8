"""``batchthumb migrate``: copy thumbnails from one project's plans to another's."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace
from pathlib import Path

import anyio

from batchthumb.commands import Done
from batchthumb.commands.flags import (
    add_connection_arguments,
    add_run_arguments,
    check_project,
    settings_from_args,
)
from batchthumb.console import Console, Quiet
from batchthumb.errors import UsageError, os_errors
from batchthumb.jobrun import RunResult, run_job
from batchthumb.jobwriter import STDOUT, Entry, render_job, write_job
from batchthumb.migrate import fetch_images, plan_migration, summary_lines, write_unpaired
from batchthumb.model import Job, PlanSummary, RunSettings
from batchthumb.output import open_output
from batchthumb.plans import list_project, pair_by_mapping, pair_by_name
from batchthumb.session import connect, open_session

DESCRIPTION = (
    "Pair the plans of two projects (by name and type, or a CSV mapping), then copy each "
    "paired source plan's thumbnail: download, upload to the target project, set. With -o, "
    "write a job for review instead."
)


@dataclass(frozen=True, slots=True)
class MigrationJobResult(Done):
    """``migrate -o``: the job written for review, and where its images went."""

    output: Path
    plans: int
    images: Path
    kept: Path | None = None  # the job file it replaced, renamed

    def stdout_lines(self) -> list[str]:
        """``OUT: N plans; images in DIR``."""
        kept = f" (the previous one is kept as {self.kept})" if self.kept else ""
        return [f"{self.output}: {self.plans} plans; images in {self.images}{kept}"]


def register(parser: argparse.ArgumentParser) -> None:
    """``migrate --from SRC --to DST [--match ...] [-o JOB.yaml]`` with the run flags."""
    parser.description = DESCRIPTION
    parser.add_argument("--from", dest="source", required=True, metavar="SRC")
    parser.add_argument("--to", dest="target", required=True, metavar="DST")
    parser.add_argument(
        "--match",
        default="name",
        metavar="name|MAPPING.csv",
        help="pair by name and type (default), or by a CSV of source_plan_id,target_plan_id",
    )
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="JOB.yaml",
        help="write a job (images downloaded next to it) instead of running; an existing "
        "file is kept as JOB.yaml.1",
    )
    add_connection_arguments(parser)
    add_run_arguments(parser)


def from_args(args: argparse.Namespace, console: Console) -> RunResult | MigrationJobResult:
    """Migrate between the projects named on the command line."""
    source = check_project(args.source, "--from")
    target = check_project(args.target, "--to")
    return migrate(
        source=source,
        target=target,
        mapping=None if args.match == "name" else Path(args.match),
        output=args.output,
        settings=settings_from_args(args, RunSettings()),
        console=console,
        signals=True,
    )


def migrate(
    *,
    source: str,
    target: str,
    mapping: Path | None = None,
    output: Path | None = None,
    settings: RunSettings | None = None,
    console: Console | None = None,
    signals: bool = False,
) -> RunResult | MigrationJobResult:
    """Copy the thumbnails of project ``source``'s plans to their pairs in ``target``.

    Plans pair by name and type, or by the CSV ``mapping``. With ``output``, write a job for
    review (images downloaded next to it) instead of running; else run it, reporting to
    ``settings.report`` (default ``migrate-SRC-DST.results.jsonl``).
    """
    if source == target:
        raise UsageError("--from and --to name the same project")
    if output == STDOUT:
        raise UsageError("migrate -o writes its images next to the job: name a file, not -")
    settings = settings or RunSettings()
    console = console or Quiet()
    if output is None and settings.report is None:
        settings = replace(
            settings, report=Path(f"migrate-{source[:8]}-{target[:8]}.results.jsonl")
        )
    with open_output(settings, console) as said:  # a failure before the run is logged too
        return _migrate(
            source,
            target,
            mapping,
            output_path=output,
            settings=settings,
            console=said,
            signals=signals,
        )


def _migrate(
    source: str,
    target: str,
    mapping: Path | None,
    *,
    output_path: Path | None,
    settings: RunSettings,
    console: Console,
    signals: bool,
) -> RunResult | MigrationJobResult:
    output = output_path
    connection = connect(settings, None, console)

    async def listing() -> tuple[tuple[PlanSummary, ...], tuple[PlanSummary, ...]]:
        async with open_session(connection, settings) as (api, sender):
            return (
                await list_project(api, sender, source, max_pages=settings.max_list_pages),
                await list_project(api, sender, target, max_pages=settings.max_list_pages),
            )

    source_plans, target_plans = anyio.run(listing)
    for project, plans in ((source, source_plans), (target, target_plans)):
        if not plans:
            raise UsageError(f"project {project} has no plans; nothing to migrate")
    if mapping is None:
        pairing = pair_by_name(source_plans, target_plans)
    else:
        pairing = pair_by_mapping(mapping, source_plans, target_plans)
    migration = plan_migration(pairing)
    beside = output if output is not None else settings.report
    assert beside is not None
    unpaired_path = beside.with_name(f"{beside.stem}.unpaired.csv")
    write_unpaired(unpaired_path, pairing)
    for line in summary_lines(pairing, migration):
        console.status(line)
    console.status(f"unpaired plans: {unpaired_path}")
    if not migration.items:
        raise UsageError("no paired source plan has a thumbnail; nothing to migrate")
    if output is None:
        job = Job(path=beside, settings=settings, items=migration.items)
        rerun = ["batchthumb", "migrate", "--from", source, "--to", target, "--report", str(beside)]
        if mapping is not None:
            rerun += ["--match", str(mapping)]
        if settings.endpoint is not None:
            rerun += ["--endpoint", settings.endpoint]
        return run_job(
            job, settings, console=console, connection=connection, watch_signals=signals,
            rerun=rerun,
        )  # fmt: skip
    folder = output.with_name(f"{output.stem}.images")
    with os_errors(folder, "create the images folder"):  # before any download
        folder.mkdir(parents=True, exist_ok=True)

    async def fetching() -> list[Entry]:
        async with open_session(connection, settings) as (api, sender):
            return await fetch_images(api, sender, migration, folder, base=output.parent)

    entries = anyio.run(fetching)
    header = [f"Copies thumbnails from project {source} to project {target}."]
    text = render_job(
        entries, header=header, comments=migration.nothing, endpoint=connection.endpoint
    )
    written = write_job(output, text)
    return MigrationJobResult(output, len(entries), folder, written.kept)
