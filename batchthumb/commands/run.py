"""``batchthumb run``: set the thumbnails a job file lists (or show what would be sent)."""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from batchthumb.auth import describe_auth, load_credentials
from batchthumb.client import IamTokens, make_transport
from batchthumb.commands import Done
from batchthumb.commands.flags import (
    add_connection_arguments,
    add_run_arguments,
    settings_from_args,
)
from batchthumb.console import Console, Quiet
from batchthumb.errors import BatchthumbError
from batchthumb.jobfile import load_job
from batchthumb.jobrun import RunResult, headline, plan_run, run_job
from batchthumb.model import Job, RunSettings
from batchthumb.output import open_output
from batchthumb.session import connect

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
        return dry_run(job=job, settings=settings, sandbox=args.sandbox)
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
    *, job: Job, settings: RunSettings | None = None, sandbox: bool = False
) -> DryRunResult:
    """What :func:`run` would send, without sending anything."""
    settings = settings or job.settings
    report = settings.report_for(job.path)
    plan = plan_run(job, settings, report)
    auth = settings.auth or job.auth
    if not sandbox:
        # Read and checked as a run would (a token with a line break is refused here too);
        # nothing is sent: an IAM token is only fetched when a run starts.
        load_credentials(auth, issue=IamTokens(make_transport()), region=settings.region)
    lines = [
        f"dry run: {headline(job, plan, settings)}",
        f"report: {report}",
        "credentials: " + ("the sandbox's own token" if sandbox else describe_auth(auth)),
    ]
    for item in itertools.islice(plan.pending, PREVIEW):
        lines.append(
            f"  PUT /v3/plan/{item.project_id}/management/{item.plan_id}/img  {item.thumbnail}"
        )
    if len(plan.pending) > PREVIEW:
        lines.append(f"  ... and {len(plan.pending) - PREVIEW} more")
    lines.append("nothing was sent")
    return DryRunResult(tuple(lines))


__all__ = ["DryRunResult", "RunResult", "dry_run", "from_args", "register", "run"]
