"""``batchthumb migrate``: copy thumbnails from one project's plans to another's, or many pairs'.

Each side has its own connection: the source (``--from-*``) and the target (``--to-*``) may be
other regions or accounts, each signing in its own way and paced by its own sender. Nothing
of one side is ever sent to the other: each has its own session and credentials.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import anyio

from batchthumb.commands import Done
from batchthumb.commands.flags import (
    add_connection_arguments,
    add_run_arguments,
    add_side_arguments,
    check_project,
    settings_from_args,
    side_from_args,
)
from batchthumb.console import Console, Quiet
from batchthumb.errors import JobFileError, Problem, ProjectNotFound, UsageError, os_errors
from batchthumb.jobrun import RunResult, run_job
from batchthumb.jobwriter import STDOUT, Entry, render_job, write_job
from batchthumb.migrate import (
    PairPlan,
    PairWatch,
    fetch_images,
    pair_summary,
    plan_migration,
    summary_lines,
    write_unpaired,
)
from batchthumb.model import ItemStream, Job, PlanSummary, RunSettings, Side
from batchthumb.plans import (
    ProjectPair,
    exact_name,
    list_project,
    loose_name,
    pair_by_mapping,
    pair_by_name,
    read_project_pairs,
)
from batchthumb.report import read_report
from batchthumb.session import Connection, connect, open_session

DESCRIPTION = (
    "Pair the plans of two projects (by name and type, or a CSV mapping), or of many project "
    "pairs (--projects), then copy each paired source plan's thumbnail: download, upload to "
    "the target project, set. The source and target may be in other regions or accounts "
    "(--from-*, --to-*). With -o, write a job for review instead."
)
LOOSE = "name-loose"


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


@dataclass(frozen=True, slots=True)
class MigrationResult:
    """A migration run: the run's result, and a line per project pair when there are many."""

    run: RunResult
    pairs: tuple[str, ...] = ()

    @property
    def exit_code(self) -> int:
        """The run's: 0 all done, 1 some failed, 3 aborted, 4 out of time, 130 interrupted."""
        return self.run.exit_code

    def stdout_lines(self) -> list[str]:
        """Nothing: a run's output is its report."""
        return []

    def stderr_lines(self) -> list[str]:
        """Each pair's counts, then the run's summary."""
        return [*self.pairs, *self.run.stderr_lines()]


def register(parser: argparse.ArgumentParser) -> None:
    """``migrate (--from SRC --to DST | --projects MAP.csv) [--match ...] [-o JOB.yaml]``."""
    parser.description = DESCRIPTION
    parser.add_argument("--from", dest="source", metavar="SRC", help="the source project")
    parser.add_argument("--to", dest="target", metavar="DST", help="the target project")
    parser.add_argument(
        "--projects",
        type=Path,
        metavar="MAP.csv",
        help="many project pairs in one run: a CSV of source_project,target_project",
    )
    parser.add_argument(
        "--match",
        default="name",
        metavar=f"name|{LOOSE}|MAPPING.csv",
        help="pair by exact name and type (default); by name ignoring case, width and "
        f"spacing ({LOOSE}); or by a CSV of source_plan_id,target_plan_id",
    )
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="JOB.yaml",
        help="write a job (images downloaded next to it) instead of running",
    )
    add_connection_arguments(parser)
    add_side_arguments(parser, "from", "the source side")
    add_side_arguments(parser, "to", "the target side")
    add_run_arguments(parser)


def from_args(args: argparse.Namespace, console: Console) -> MigrationResult | MigrationJobResult:
    """Migrate between the projects named on the command line, or listed in ``--projects``."""
    if args.projects is not None:
        if args.source is not None or args.target is not None:
            raise UsageError("--projects lists the pairs: drop --from and --to")
    elif args.source is None or args.target is None:
        raise UsageError("name the projects: --from SRC --to DST, or --projects MAP.csv")
    mapping = None if args.match in ("name", LOOSE) else Path(args.match)
    return migrate(
        source=None if args.source is None else check_project(args.source, "--from"),
        target=None if args.target is None else check_project(args.target, "--to"),
        projects=args.projects,
        mapping=mapping,
        loose=args.match == LOOSE,
        output=args.output,
        settings=settings_from_args(args, RunSettings()),
        source_side=side_from_args(args, "from"),
        target_side=side_from_args(args, "to"),
        console=console,
        signals=True,
    )


def migrate(
    *,
    source: str | None = None,
    target: str | None = None,
    projects: Path | None = None,
    mapping: Path | None = None,
    loose: bool = False,
    output: Path | None = None,
    settings: RunSettings | None = None,
    source_side: Side | None = None,
    target_side: Side | None = None,
    console: Console | None = None,
    signals: bool = False,
) -> MigrationResult | MigrationJobResult:
    """Copy the thumbnails of project ``source``'s plans to their pairs in ``target``, or of
    every pair the CSV ``projects`` lists (``source_project,target_project``).

    Plans pair by name and type (``loose``: ignoring case, Unicode width and spacing), or by
    the CSV ``mapping`` (one pair only). ``source_side``/``target_side`` override the shared
    endpoint, region and credentials of ``settings`` for that side. Every project is listed
    before anything changes. With ``output``, write a job for review (images downloaded next
    to it) instead of running; else run it under one report (default
    ``migrate-SRC-DST.results.jsonl``, or ``migrate-MAP.results.jsonl``).
    """
    if output == STDOUT:
        raise UsageError("migrate -o writes its images next to the job: name a file, not -")
    shared = settings or RunSettings()
    console = console or Quiet()
    from_settings = (source_side or Side()).settings(shared)
    to_settings = (target_side or Side()).settings(shared)
    split = _where(from_settings) != _where(to_settings)
    pairs = _project_pairs(source, target, projects, mapping, split=split)
    if output is None and to_settings.report is None:
        name = projects.stem if projects else f"{pairs[0].source[:8]}-{pairs[0].target[:8]}"
        to_settings = replace(to_settings, report=Path(f"migrate-{name}.results.jsonl"))
    to_side = connect(to_settings, None, console)
    from_side = connect(from_settings, None, console) if split else to_side
    listed = anyio.run(partial(_list_all, pairs, from_side, to_side, to_settings, projects))
    normalise = loose_name if loose else exact_name
    planned: list[PairPlan] = []
    for line, (source_plans, target_plans) in zip(pairs, listed, strict=True):
        for project, plans in ((line.source, source_plans), (line.target, target_plans)):
            if not plans and projects is None:
                raise UsageError(f"project {project} has no plans; nothing to migrate")
            if not plans:
                console.warn(f"{projects}:{line.line}: project {project} has no plans")
        if mapping is not None:
            pairing = pair_by_mapping(mapping, source_plans, target_plans)
        else:
            pairing = pair_by_name(source_plans, target_plans, normalise=normalise)
        planned.append(PairPlan(line.source, line.target, pairing, plan_migration(pairing)))
    beside = output if output is not None else to_settings.report
    assert beside is not None
    unpaired_path = beside.with_name(f"{beside.stem}.unpaired.csv")
    write_unpaired(unpaired_path, planned)
    for number, pair in enumerate(planned, 1):
        if len(planned) > 1:
            console.status(f"pair {number}/{len(planned)} {pair.source} -> {pair.target}:")
        for text in summary_lines(pair.pairing, pair.migration):
            console.status(text)
    console.status(f"unpaired plans: {unpaired_path}")
    items = tuple(item for pair in planned for item in pair.migration.items)
    if not items:
        raise UsageError("no paired source plan has a thumbnail; nothing to migrate")
    if output is None:
        job = Job(path=beside, settings=to_settings, items=items)
        watch = None
        if len(planned) > 1:

            def watch_pairs(pending: ItemStream) -> PairWatch:
                return PairWatch(planned, pending, console.status)

            watch = watch_pairs
        run = run_job(
            job,
            to_settings,
            console=console,
            connection=to_side,
            source=from_side if split else None,
            watch=watch,
            watch_signals=signals,
            rerun=(),  # its flags are many; the summary names the report, --resume finishes
        )
        lines = () if len(planned) == 1 else tuple(pair_summary(planned, read_report(run.report)))
        return MigrationResult(run, lines)
    return _write_job(output, planned, from_side, to_side, to_settings)


def _where(settings: RunSettings) -> tuple[object, ...]:
    """What makes a side another side: its endpoint, region and credentials."""
    return settings.endpoint, settings.region, settings.auth


def _project_pairs(
    source: str | None,
    target: str | None,
    projects: Path | None,
    mapping: Path | None,
    *,
    split: bool,
) -> tuple[ProjectPair, ...]:
    if projects is not None:
        if mapping is not None:
            raise UsageError("--match MAPPING.csv maps the plans of one pair; not with --projects")
        return read_project_pairs(projects, same_side=not split)
    if source is None or target is None:
        raise UsageError("name the projects: source and target, or a projects file")
    if source == target and not split:
        raise UsageError("--from and --to name the same project")
    return (ProjectPair(0, source, target),)


Listing = tuple[tuple[PlanSummary, ...], tuple[PlanSummary, ...]]


async def _list_all(
    pairs: Sequence[ProjectPair],
    from_side: Connection,
    to_side: Connection,
    settings: RunSettings,
    projects: Path | None,
) -> list[Listing]:
    """Every project of every pair, listed before anything changes; unknown ones are errors."""
    async with AsyncExitStack() as stack:
        target = await stack.enter_async_context(open_session(to_side, settings))
        source = target
        if from_side is not to_side:
            source = await stack.enter_async_context(open_session(from_side, settings))
        listed: list[Listing] = []
        problems: list[Problem] = []
        for pair in pairs:
            found: list[tuple[PlanSummary, ...]] = []
            for side, (api, sender), project in (
                ("source", source, pair.source),
                ("target", target, pair.target),
            ):
                try:
                    plans = await list_project(
                        api, sender, project, max_pages=settings.max_list_pages
                    )
                    found.append(plans)
                except ProjectNotFound:
                    if projects is None:
                        flag = "--from" if side == "source" else "--to"
                        raise UsageError(
                            f"{flag} {project}: the {side} project does not exist"
                        ) from None
                    problems.append(
                        Problem(
                            str(projects), pair.line, "", f"{side} project {project} does not exist"
                        )
                    )
                    found.append(())
            listed.append((found[0], found[1]))
        if problems:
            raise JobFileError(problems)
        return listed


def _write_job(
    output: Path,
    planned: Sequence[PairPlan],
    from_side: Connection,
    to_side: Connection,
    settings: RunSettings,
) -> MigrationJobResult:
    """Download the source images next to ``output`` and write the job that sets them."""
    folder = output.with_name(f"{output.stem}.images")
    with os_errors(folder, "create the images folder"):  # before any download
        folder.mkdir(parents=True, exist_ok=True)

    async def fetching() -> list[Entry]:
        async with open_session(from_side, settings) as (api, sender):
            entries: list[Entry] = []
            for pair in planned:
                entries += await fetch_images(
                    api, sender, pair.migration, folder, base=output.parent
                )
            return entries

    entries = anyio.run(fetching)
    header = [
        f"Copies thumbnails from project {pair.source} to project {pair.target}."
        for pair in planned
    ]
    comments = [why for pair in planned for why in pair.migration.nothing]
    # The job runs against the target: its endpoint is the one recorded.
    text = render_job(entries, header=header, comments=comments, endpoint=to_side.endpoint)
    written = write_job(output, text)
    return MigrationJobResult(output, len(entries), folder, written.kept)
