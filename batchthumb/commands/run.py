"""``batchthumb run``: set the thumbnails a job file lists (or show what would be sent)."""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio

from batchthumb.auth import describe_auth, load_credentials
from batchthumb.check import Row, Status, compare_job, counts_line, format_row
from batchthumb.client import IamTokens, make_transport
from batchthumb.commands import Done
from batchthumb.commands.flags import (
    add_connection_arguments,
    add_run_arguments,
    settings_from_args,
)
from batchthumb.console import Console, Quiet
from batchthumb.errors import BatchthumbError, UsageError
from batchthumb.jobfile import load_job
from batchthumb.jobrun import RunResult, headline, plan_run, run_job
from batchthumb.model import Item, Job, RunSettings
from batchthumb.output import open_output
from batchthumb.session import Connection, connect

DESCRIPTION = "Set the thumbnails a job file lists. Flags win over the job file."
PREVIEW = 20  # requests a dry run shows


@dataclass(frozen=True, slots=True)
class DryRunResult(Done):
    """What a run would send: nothing was sent."""

    lines: tuple[str, ...]

    def stdout_lines(self) -> list[str]:
        """The plan, the report, the credentials, the first requests."""
        return list(self.lines)


def register(parser: argparse.ArgumentParser) -> None:
    """``run JOB.yaml`` with the connection and run flags."""
    parser.description = DESCRIPTION
    parser.add_argument("job", type=Path, metavar="JOB.yaml")
    add_connection_arguments(parser)
    add_run_arguments(parser)
    parser.add_argument(
        "--dry-run", action="store_true", help="validate and show what would be sent; send nothing"
    )
    parser.add_argument(
        "--no-check",
        action="store_true",
        help="with --dry-run: do not compare with the API first (no request at all)",
    )
    parser.add_argument(
        "--sandbox",
        action="store_true",
        help="run against a local sandbox of the API (no account needed)",
    )


def from_args(args: argparse.Namespace, console: Console) -> RunResult | DryRunResult:
    """Load the job, put the flags on its settings, and run it (or dry-run it)."""
    try:
        job = load_job(args.job)
        settings = settings_from_args(args, job.settings)
    except BatchthumbError:
        # The job's own log settings are unknown: log the failure as the flags say.
        flags = RunSettings(log_file=args.log_file, log_json=bool(args.log_json))
        with open_output(flags, console):
            raise
    if args.dry_run:
        for warning in job.warnings:
            console.warn(str(warning))
        return dry_run(
            job=job,
            settings=settings,
            sandbox=args.sandbox,
            console=console,
            compare=not args.no_check,
        )
    return run(
        job=job,
        settings=settings,
        console=console,
        sandbox=args.sandbox,
        signals=True,
        rerun=rerun_from_args(args, settings.report_for(job.path)),
    )


# The flags that say where a run goes and how it gets in: the hint to finish a job repeats them.
_CONNECTION_FLAGS = ("endpoint", "region", "auth", "ca_bundle")


def rerun_from_args(args: argparse.Namespace, report: Path) -> tuple[str, ...]:
    """``batchthumb run JOB --report R`` with the connection flags as given."""
    command = ["batchthumb", "run", str(args.job), "--report", str(report)]
    for name in _CONNECTION_FLAGS:
        value = getattr(args, name)
        if value is not None:
            command += [f"--{name.replace('_', '-')}", str(value)]
    switches = (("--insecure", args.insecure), ("--sandbox", args.sandbox))
    command += [flag for flag, on in switches if on]
    return tuple(command)


def run(
    *,
    job: Job,
    settings: RunSettings | None = None,
    console: Console | None = None,
    sandbox: bool = False,
    signals: bool = False,
    rerun: Sequence[str] | None = None,
) -> RunResult:
    """Run ``job`` with ``settings`` (default: the job's own) and return what it did.

    ``sandbox`` runs against an embedded sandbox that knows the job's plans. ``signals``
    (main thread only) makes SIGINT/SIGTERM stop the run gracefully, as the CLI does.
    ``rerun`` is the command line the summary's hint repeats to finish the job.
    """
    settings = settings or job.settings
    with open_output(settings, console or Quiet()) as output:  # logs a failure to connect too
        for warning in job.warnings:
            output.warn(str(warning))
        connection = None if sandbox else connect(settings, job.auth, output)
        return run_job(
            job, settings, console=output, connection=connection, watch_signals=signals,
            rerun=rerun,
        )  # fmt: skip


def dry_run(
    *,
    job: Job,
    settings: RunSettings | None = None,
    sandbox: bool = False,
    console: Console | None = None,
    compare: bool = False,
) -> DryRunResult:
    """What :func:`run` would send, without sending a PUT or an upload.

    With ``compare`` (the CLI's default; a script asks for it) and credentials at hand (not
    with ``sandbox``: an embedded sandbox starts empty, so it would say every plan changes),
    the pending items are compared with the API first, with list calls only, as
    ``batchthumb check`` does: the plans that already show their thumbnail are the ones the
    run would skip.
    """
    settings = settings or job.settings
    report = settings.report_for(job.path)
    plan = plan_run(job, settings, report)
    auth = settings.auth or job.auth
    if not sandbox:
        # Read and checked as a run would (a token with a line break is refused here too).
        # Nothing is sent for it; an IAM token is fetched only to compare, below.
        load_credentials(auth, issue=IamTokens(make_transport()), region=settings.region)
    lines = [
        f"dry run: {headline(job, plan, settings)}",
        f"report: {report}",
        "credentials: " + ("the sandbox's own token" if sandbox else describe_auth(auth)),
    ]
    connection, why = None, "--sandbox starts an empty sandbox"
    if not compare:
        why = "not asked to (--no-check)"
    elif not settings.snapshot:
        why = "--no-snapshot: the run sends every plan without looking first"
    elif not sandbox:
        try:
            connection = connect(settings, job.auth, console or Quiet())
        except UsageError as exc:
            why = f"no endpoint at hand: {exc}"
    compared: list[str] = []
    if connection is not None:
        try:
            compared = _compared(job, settings, plan.pending, connection)
        except BatchthumbError as exc:  # a dry run still shows the plan when the API cannot
            why = f"the API could not be asked: {exc}"
    if compared:
        lines += compared
        lines.append("nothing was changed")
    else:
        lines.append(f"not compared with the API ({why})")
        lines += _put_lines(plan.pending, len(plan.pending))
        lines.append("nothing was sent")
    return DryRunResult(tuple(lines))


def _put_lines(items: Iterable[Item], count: int) -> list[str]:
    lines = [
        f"  PUT /v3/plan/{item.project_id}/management/{item.plan_id}/img  {item.thumbnail}"
        for item in itertools.islice(items, PREVIEW)
    ]
    if count > PREVIEW:
        lines.append(f"  ... and {count - PREVIEW} more")
    return lines


def _compared(
    job: Job, settings: RunSettings, items: Iterable[Item], connection: Connection
) -> list[str]:
    """The dry run's lines after comparing ``items`` with the API (list calls only)."""
    shown: dict[Status, list[Row]] = {status: [] for status in Status}

    def keep(row: Row) -> None:
        if len(shown[row.status]) < PREVIEW:
            shown[row.status].append(row)

    result = anyio.run(compare_job, job, settings, connection, keep, items)
    counts = result.counts
    lines = [
        f"endpoint: {connection.endpoint} (compared with {result.requests} list calls)",
        f"would skip {counts[Status.IN_SYNC]} plans that already show their thumbnail:",
    ]
    lines += [f"  {format_row(row)}" for row in shown[Status.IN_SYNC]]
    sends = counts[Status.WOULD_CHANGE] + counts[Status.UNKNOWN] + counts[Status.MISSING]
    lines.append(f"would send {sends} PUTs:")
    rows = [*shown[Status.WOULD_CHANGE], *shown[Status.UNKNOWN], *shown[Status.MISSING]]
    lines += [f"  {format_row(row)}" for row in rows[:PREVIEW]]
    if sends > PREVIEW:
        lines.append(f"  ... and {sends - PREVIEW} more")
    lines.append(counts_line(result))
    return lines


__all__ = ["DryRunResult", "RunResult", "dry_run", "from_args", "register", "run"]
