"""The command line: parse arguments, wire the pieces, print, and map errors to exit codes.

This is the only module that prints for the user and decides how the process exits.
"""

from __future__ import annotations

import argparse
import itertools
import signal
import sys
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import anyio

from batchthumb import __version__
from batchthumb.errors import (
    EXIT_ABORTED,
    EXIT_INCOMPLETE,
    EXIT_INTERRUPTED,
    EXIT_LOCKED,
    EXIT_OK,
    EXIT_SOME_FAILED,
    EXIT_USAGE,
    BatchthumbError,
    JobFileError,
    UsageError,
)
from batchthumb.model import DEFAULT_BREAKER

if TYPE_CHECKING:
    from batchthumb.auth import AuthConfig
    from batchthumb.execute import Connection, RunOptions, RunPlan
    from batchthumb.jobwriter import Entry
    from batchthumb.model import Job, PlanSummary, Settings
    from batchthumb.runner import Stop

TIME_LIMIT = "time limit reached"
EXIT_CODES = f"""\
exit codes:
  {EXIT_OK}    every item succeeded (or was already done)
  {EXIT_SOME_FAILED}    some items failed; the report says which and why
  {EXIT_USAGE}    invalid usage, job file or credentials (nothing was sent), or a report
       that cannot be read or written (the run stops at once)
  {EXIT_ABORTED}    aborted: credentials rejected, or items kept failing the same way
  {EXIT_INCOMPLETE}    --max-duration reached; run again with --resume to finish
  {EXIT_LOCKED}   another run holds the report's lock
  {EXIT_INTERRUPTED}  interrupted (SIGINT or SIGTERM); run again with --resume to finish
"""


def _number(parse: Callable[[str], float], *, low: float, above: bool = False) -> Any:
    """An argparse type: a finite number at least ``low`` (greater than it with ``above``)."""
    kind = "a whole number" if parse is int else "a number"

    def check(text: str) -> float:
        try:
            value = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {kind}") from None
        if (value <= low if above else value < low) or not value < float("inf"):
            bound = f"greater than {low:g}" if above else f"{low:g} or more"
            raise argparse.ArgumentTypeError(f"must be {bound}, not {text}")
        return value

    return check


_positive_int = _number(int, low=1)
_non_negative_int = _number(int, low=0)
_non_negative = _number(float, low=0)
_positive = _number(float, low=0, above=True)


def _duration(text: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600}
    number, unit = (text[:-1], text[-1]) if text[-1:] in units else (text, "s")
    try:
        value = float(number) * units[unit]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration like 90s, 30m or 2h"
        ) from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be greater than 0, not {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The ``batchthumb`` argument parser with all its subcommands."""
    parser = argparse.ArgumentParser(
        prog="batchthumb",
        description="Set Huawei Cloud CodeArts Req plan thumbnails in bulk from a YAML job file.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"batchthumb {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run",
        help="set the thumbnails a job file lists",
        description="Set the thumbnails a job file lists. Flags win over the job file.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("job", type=Path, metavar="JOB.yaml")
    _add_connection_arguments(run)
    _add_run_arguments(run)
    run.add_argument(
        "--dry-run", action="store_true", help="validate and show what would be sent; send nothing"
    )
    run.add_argument(
        "--sandbox",
        action="store_true",
        help="run against a local sandbox of the API (no account needed)",
    )
    run.set_defaults(handler=_cmd_run)

    export = commands.add_parser(
        "export",
        help="write a job file that sets every plan's current thumbnail (a backup)",
        description="List every plan of a project and write a job that sets each current "
        "thumbnail; plans without one are listed as comments.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    export.add_argument("--project", required=True, metavar="ID", help="the project to export")
    export.add_argument("--type", choices=("gantt", "mind"), help="only plans of this type")
    export.add_argument("--search", metavar="TEXT", help="only plans whose name contains TEXT")
    export.add_argument("-o", "--output", type=Path, required=True, metavar="FILE")
    _add_connection_arguments(export)
    export.set_defaults(handler=_cmd_export)

    migrate = commands.add_parser(
        "migrate",
        help="copy thumbnails from one project's plans to another's",
        description="Pair the plans of two projects (by name and type, or a CSV mapping), "
        "then copy each paired source plan's thumbnail: download, upload to the target "
        "project, set. With -o, write a job for review instead.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    migrate.add_argument("--from", dest="source", required=True, metavar="SRC")
    migrate.add_argument("--to", dest="target", required=True, metavar="DST")
    migrate.add_argument(
        "--match",
        default="name",
        metavar="name|MAPPING.csv",
        help="pair by name and type (default), or by a CSV of source_plan_id,target_plan_id",
    )
    migrate.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="JOB.yaml",
        help="write a job (images downloaded next to it) instead of running",
    )
    _add_connection_arguments(migrate)
    _add_run_arguments(migrate)
    migrate.set_defaults(handler=_cmd_migrate)

    undo = commands.add_parser(
        "undo",
        help="write the job that restores what a run changed",
        description="Write a job restoring previous_img_url for every plan a report records "
        "as changed. Plans that had no thumbnail cannot be cleared through the API; they are "
        "listed as comments.",
    )
    undo.add_argument("report", type=Path, metavar="REPORT")
    undo.add_argument("-o", "--output", type=Path, required=True, metavar="JOB.yaml")
    undo.set_defaults(handler=_cmd_undo)

    validate = commands.add_parser("validate", help="check a job file; send nothing")
    validate.add_argument("job", type=Path, metavar="JOB.yaml")
    validate.set_defaults(handler=_cmd_validate)

    sandbox = commands.add_parser(
        "sandbox",
        help="serve a local sandbox of the CodeArts Req plan API",
        description="Serve a local stand-in for the CodeArts Req plan API until Ctrl-C.",
    )
    _add_sandbox_arguments(sandbox)
    sandbox.set_defaults(handler=_cmd_sandbox)
    return parser


def _add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    """Where to connect, how to authenticate, how fast: shared by every command that connects."""
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--endpoint", help="API base URL, e.g. https://projectman-ext.cn-north-4.myhuaweicloud.com"
    )
    where.add_argument(
        "--region", help="region such as cn-north-4: sets the API endpoint and IAM's, unless given"
    )
    parser.add_argument(
        "--auth",
        type=Path,
        metavar="FILE",
        help="YAML file with an `auth:` section (references to secrets); wins over the job's",
    )
    parser.add_argument(
        "--ca-bundle",
        type=Path,
        metavar="PATH",
        help="trust these CA certificates (PEM), e.g. a corporate proxy's; verification stays on",
    )
    parser.add_argument(
        "--insecure",
        action="store_true",
        help="allow plain http:// to hosts other than loopback (credentials unencrypted!)",
    )
    parser.add_argument(
        "--report", type=Path, help="results report (JSON lines); default from the job"
    )
    parser.add_argument("--concurrency", type=_positive_int, help="requests in flight at most")
    parser.add_argument(
        "--rate", type=_non_negative, help="requests started per second at most; 0 = no cap"
    )
    parser.add_argument(
        "--burst", type=_positive_int, help="requests that may start at once (token bucket size)"
    )
    parser.add_argument(
        "--retries", type=_non_negative_int, help="extra attempts for retryable failures"
    )
    parser.add_argument("--timeout", type=_positive, help="seconds per attempt, once connected")
    parser.add_argument(
        "--backoff",
        type=_non_negative,
        default=1.0,
        metavar="SECONDS",
        help="base delay before a retry, doubled each time (default 1; 0 = retry at once)",
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bar or status lines"
    )


def _add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """How a run that changes plans is journaled, resumed, bounded and logged."""
    parser.add_argument(
        "--resume", action="store_true", help="skip items the report records as done"
    )
    parser.add_argument(
        "--retry-failed",
        action="store_true",
        help="send only the items the report records as failed",
    )
    parser.add_argument(
        "--lock-wait",
        type=_non_negative,
        default=0.0,
        metavar="SECONDS",
        help="wait this long for another run using the same report",
    )
    parser.add_argument(
        "--max-duration",
        type=_duration,
        metavar="DURATION",
        help="start nothing new after this long (90s, 30m, 2h); exit 4",
    )
    parser.add_argument("--log-json", action="store_true", help="log events as JSON lines")
    parser.add_argument(
        "--log-file", type=Path, metavar="FILE", help="where --log-json goes (default stderr)"
    )
    parser.add_argument(
        "--breaker",
        type=_non_negative_int,
        default=DEFAULT_BREAKER,
        metavar="N",
        help="stop (exit 3) after N items in a row fail the same permanent way (0 = never)",
    )
    parser.add_argument(
        "--backup",
        type=Path,
        metavar="FILE",
        help="write the plans' current thumbnails as a job file before the first change",
    )
    parser.add_argument(
        "--no-snapshot",
        action="store_true",
        help="skip listing each project first (no previous_img_url, no undo, no --backup)",
    )


def _connect(args: argparse.Namespace, settings: Settings, auth: AuthConfig | None) -> Connection:
    """Resolve the connection flags against the job's settings; nothing is sent yet."""
    from batchthumb.auth import AkSk, IamPassword, load_credentials
    from batchthumb.client import IamProjects, IamTokens, check_url, make_transport
    from batchthumb.execute import Connection
    from batchthumb.jobfile import load_auth

    endpoint = settings.endpoint
    if endpoint is None:
        raise UsageError(
            "no endpoint: set `endpoint:` or `region:` in the job, pass --endpoint or --region, "
            "or rehearse with --sandbox"
        )
    _warn(check_url(endpoint, insecure=args.insecure))
    transport = make_transport(ca_bundle=args.ca_bundle)
    if args.auth is not None:
        auth = load_auth(args.auth)
    credentials = load_credentials(
        auth, issue=IamTokens(transport), lookup=IamProjects(transport), region=settings.region
    )
    if isinstance(credentials, IamPassword):
        iam = credentials.identity.endpoint
        _warn(check_url(iam, insecure=args.insecure, what="IAM endpoint"))
    elif isinstance(credentials, AkSk) and credentials.project_source is not None:
        iam = credentials.project_source.endpoint
        _warn(check_url(iam, insecure=args.insecure, what="IAM endpoint"))
    return Connection(endpoint.rstrip("/"), credentials, transport)


def _say(message: str) -> None:
    print(f"batchthumb: {message}", file=sys.stderr, flush=True)


def _warn(message: str | None) -> None:
    if message:
        print(f"warning: {message}", file=sys.stderr)


def _add_sandbox_arguments(parser: argparse.ArgumentParser) -> None:
    from batchthumb.sandbox.command import add_arguments

    add_arguments(parser)


def _cmd_sandbox(args: argparse.Namespace) -> int:
    from batchthumb.sandbox.command import run

    exit_code: int = run(args)
    return exit_code


def _cmd_validate(args: argparse.Namespace) -> int:
    from batchthumb.jobfile import load_job

    job = load_job(args.job)
    _print_warnings(job.warnings)
    projects = len({item.project_id for item in job.items})
    print(f"{args.job}: OK, {len(job.items)} items in {projects} project(s)")
    return EXIT_OK


def _print_warnings(warnings: Sequence[object]) -> None:
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)


def _check_project(value: str, flag: str) -> str:
    from batchthumb.model import PROJECT_ID

    if not PROJECT_ID.fullmatch(value):
        raise UsageError(f"{flag} {value!r}: a project id is 32 letters or digits")
    return value


def _cmd_export(args: argparse.Namespace) -> int:
    from batchthumb.execute import open_session
    from batchthumb.export import export_job
    from batchthumb.jobwriter import write_text
    from batchthumb.model import Settings
    from batchthumb.plans import list_project

    project = _check_project(args.project, "--project")
    settings = _settings(args, Settings())
    connection = _connect(args, settings, None)

    async def listing() -> tuple[PlanSummary, ...]:
        async with open_session(connection, settings) as (api, sender):
            return await list_project(api, sender, project, plan_type=args.type, search=args.search)

    plans = anyio.run(listing)
    text, count = export_job(plans, project_id=project, endpoint=connection.endpoint)
    write_text(args.output, text)
    print(
        f"{args.output}: {count} of {len(plans)} plans with a thumbnail "
        f"({len(plans) - count} listed as comments)"
    )
    return EXIT_OK


def _cmd_undo(args: argparse.Namespace) -> int:
    from batchthumb.export import undo_job
    from batchthumb.jobwriter import write_text

    text, restored, cannot = undo_job(args.report)
    write_text(args.output, text)
    extra = f"; {cannot} cannot be restored (see the comments)" if cannot else ""
    print(f"{args.output}: restores {restored} plans{extra}")
    return EXIT_OK


def _cmd_migrate(args: argparse.Namespace) -> int:
    from batchthumb.execute import open_session
    from batchthumb.jobwriter import render_job, write_text
    from batchthumb.migrate import fetch_images, plan_migration, summary_lines, write_unpaired
    from batchthumb.model import Job, Settings
    from batchthumb.plans import list_project, pair_by_mapping, pair_by_name

    source = _check_project(args.source, "--from")
    target = _check_project(args.target, "--to")
    if source == target:
        raise UsageError("--from and --to name the same project")
    settings = _settings(args, Settings())
    connection = _connect(args, settings, None)
    if args.output is None:
        options = _run_options(
            args, args.report or Path(f"migrate-{source[:8]}-{target[:8]}.results.jsonl")
        )

    async def listing() -> tuple[tuple[PlanSummary, ...], tuple[PlanSummary, ...]]:
        async with open_session(connection, settings) as (api, sender):
            return (
                await list_project(api, sender, source),
                await list_project(api, sender, target),
            )

    source_plans, target_plans = anyio.run(listing)
    for project, plans in ((source, source_plans), (target, target_plans)):
        if not plans:
            raise UsageError(f"project {project} has no plans; nothing to migrate")
    if args.match == "name":
        pairing = pair_by_name(source_plans, target_plans)
    else:
        pairing = pair_by_mapping(Path(args.match), source_plans, target_plans)
    migration = plan_migration(pairing)
    beside = args.output if args.output is not None else options.report
    unpaired_path = beside.with_name(f"{beside.stem}.unpaired.csv")
    write_unpaired(unpaired_path, pairing)
    for line in summary_lines(pairing, migration):
        print(f"batchthumb: {line}", file=sys.stderr)
    print(f"batchthumb: unpaired plans: {unpaired_path}", file=sys.stderr)
    if not migration.items:
        raise UsageError("no paired source plan has a thumbnail; nothing to migrate")
    if args.output is not None:
        folder = args.output.with_name(f"{args.output.stem}.images")

        async def fetching() -> list[Entry]:
            async with open_session(connection, settings) as (api, sender):
                return await fetch_images(api, sender, migration, folder, base=args.output.parent)

        entries = anyio.run(fetching)
        header = [f"Copies thumbnails from project {source} to project {target}."]
        write_text(
            args.output,
            render_job(
                entries, header=header, comments=migration.nothing, endpoint=connection.endpoint
            ),
        )
        print(f"{args.output}: {len(entries)} plans; images in {folder}")
        return EXIT_OK
    job = Job(path=options.report, settings=settings, items=migration.items)
    return _run_job(job, settings, options, connection, args)


def _cmd_run(args: argparse.Namespace) -> int:
    from batchthumb.execute import plan_run
    from batchthumb.jobfile import load_job

    job = load_job(args.job)
    _print_warnings(job.warnings)
    settings = _settings(args, job.settings)
    options = _run_options(args, args.report or job.report_path)
    if args.dry_run:
        _print_dry_run(job, plan_run(job, options), settings, options, args)
        return EXIT_OK
    connection = None if args.sandbox else _connect(args, settings, job.auth)
    return _run_job(job, settings, options, connection, args)


def _settings(args: argparse.Namespace, base: Settings) -> Settings:
    """The job's settings with the command line's connection and pacing flags on top."""
    from batchthumb.model import endpoint_for_region

    overrides = {
        name: getattr(args, name)
        for name in ("concurrency", "rate", "burst", "retries", "timeout")
        if getattr(args, name) is not None
    }
    if args.endpoint is not None:
        overrides["endpoint"] = args.endpoint.rstrip("/")
    if args.region is not None:
        overrides["region"] = args.region
        overrides["endpoint"] = endpoint_for_region(args.region)
    return replace(base, **overrides)


def _run_options(args: argparse.Namespace, report: Path) -> RunOptions:
    from batchthumb.execute import RunOptions
    from batchthumb.ratelimit import ThrottlePolicy

    if args.resume and args.retry_failed:
        raise UsageError("--resume and --retry-failed do not go together; pick one")
    if args.backup is not None and args.no_snapshot:
        raise UsageError("--backup needs the snapshot; drop --no-snapshot")
    return RunOptions(
        report=report,
        resume=args.resume,
        retry_failed=args.retry_failed,
        progress=not args.no_progress,
        backoff=args.backoff,
        breaker=args.breaker,
        throttle=ThrottlePolicy(pause=args.backoff / 2),
        snapshot=not args.no_snapshot,
        backup=args.backup,
    )


def _run_job(
    job: Job,
    settings: Settings,
    options: RunOptions,
    connection: Connection | None,
    args: argparse.Namespace,
) -> int:
    """Run a job under the report's lock: the shared tail of ``run`` and ``migrate``."""
    from batchthumb.execute import plan_run
    from batchthumb.report import report_lock

    with report_lock(options.report, wait=args.lock_wait, on_wait=_say):
        plan = plan_run(job, options)
        if plan.journal.torn_line:
            print(
                f"warning: {options.report}:{plan.journal.torn_line}: ignoring a torn last line "
                "(the previous run was killed while writing it)",
                file=sys.stderr,
            )
        print(
            f"batchthumb: {_headline(job, plan, settings)}; report: {options.report}",
            file=sys.stderr,
        )
        if not len(plan.pending):
            return EXIT_OK
        with _log_stream(args) as log:
            return anyio.run(
                partial(
                    _run_async,
                    job,
                    plan,
                    settings,
                    options,
                    connection,
                    args.max_duration,
                    log,
                ),
                backend_options=_backend_options(),
            )


def _backend_options() -> dict[str, object]:
    """uvloop when it is installed (the ``uvloop`` extra): less CPU per request."""
    import importlib.util

    return {"use_uvloop": True} if importlib.util.find_spec("uvloop") else {}


def _headline(job: Job, plan: RunPlan, settings: Settings) -> str:
    from batchthumb.progress import format_duration

    estimate = plan.estimate(settings)
    took = f", about {format_duration(estimate)} at {settings.rate:g}/s" if estimate else ""
    return (
        f"{len(plan.pending)} of {len(job.items)} plans to set, {plan.skipped} already done{took}"
    )


def _print_dry_run(
    job: Job, plan: RunPlan, settings: Settings, options: RunOptions, args: argparse.Namespace
) -> None:
    from batchthumb.auth import describe_auth
    from batchthumb.jobfile import load_auth

    auth = load_auth(args.auth) if args.auth is not None else job.auth
    print(f"dry run: {_headline(job, plan, settings)}")
    print(f"report: {options.report}")
    print("credentials: " + ("the sandbox's own token" if args.sandbox else describe_auth(auth)))
    for item in itertools.islice(plan.pending, 20):
        print(f"  PUT /v3/plan/{item.project_id}/management/{item.plan_id}/img  {item.source}")
    if len(plan.pending) > 20:
        print(f"  ... and {len(plan.pending) - 20} more")
    print("nothing was sent")


@contextmanager
def _log_stream(args: argparse.Namespace) -> Iterator[TextIO | None]:
    """Where --log-json events go: --log-file, else stderr; None without --log-json."""
    if not args.log_json:
        yield None
    elif args.log_file is None:
        yield sys.stderr
    else:
        try:
            stream = args.log_file.open("a", encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"{args.log_file}: cannot write the log: {exc.strerror}") from None
        with stream:
            yield stream


@asynccontextmanager
async def _target(job: Job, connection: Connection | None) -> AsyncIterator[Connection]:
    """Where requests go: the given connection, or an embedded sandbox when there is none."""
    if connection is not None:
        yield connection
        return
    from batchthumb.client import make_transport
    from batchthumb.execute import Connection, embedded_sandbox

    async with embedded_sandbox(job) as (url, token):
        print(f"batchthumb: sandbox at {url}", file=sys.stderr)
        yield Connection(url, token, make_transport())


async def _run_async(
    job: Job,
    plan: RunPlan,
    settings: Settings,
    options: RunOptions,
    connection: Connection | None,
    max_duration: float | None,
    log: TextIO | None,
) -> int:
    from batchthumb.execute import execute
    from batchthumb.runner import Stop
    from batchthumb.summary import format_summary

    stop = Stop()
    async with _target(job, connection) as target:
        # Fetch the first IAM token here, outside any task group, so a wrong password is one
        # clear message (exit 3) rather than an exception group.
        await target.credentials.prepare()
        failure: BatchthumbError | None = None
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(_watch_signals, stop)
            if max_duration is not None:
                tasks.start_soon(_stop_at_deadline, stop, max_duration)
            try:
                summary = await execute(
                    plan,
                    settings=settings,
                    endpoint=target.endpoint,
                    credentials=target.credentials,
                    options=options,
                    stop=stop,
                    stderr=sys.stderr,
                    log=log,
                    transport=target.transport,
                    warn=_warn,
                )
            except BatchthumbError as exc:  # raised below, not wrapped in an exception group
                failure = exc
            tasks.cancel_scope.cancel()
        if failure is not None:
            raise failure
    summary_text = format_summary(summary, configured_rate=settings.rate, skipped=plan.skipped)
    print(summary_text, file=sys.stderr)
    if summary.aborted:
        print(f"batchthumb: aborted: {summary.aborted}", file=sys.stderr)
        return EXIT_ABORTED
    if summary.stopped == TIME_LIMIT:
        return EXIT_INCOMPLETE
    if summary.stopped:
        return EXIT_INTERRUPTED
    return EXIT_SOME_FAILED if summary.tally.failed else EXIT_OK


async def _stop_at_deadline(stop: Stop, seconds: float) -> None:
    await anyio.sleep(seconds)
    print("batchthumb: --max-duration reached: finishing requests in flight", file=sys.stderr)
    stop.request(TIME_LIMIT)


async def _watch_signals(stop: Stop) -> None:
    """First SIGINT/SIGTERM: graceful stop; the second: stop at once."""
    signals_seen = 0
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            signals_seen += 1
            name = signal.Signals(signum).name
            if signals_seen == 1:
                print(
                    f"batchthumb: {name}: finishing requests in flight, then stopping "
                    "(send it again to stop at once)",
                    file=sys.stderr,
                    flush=True,
                )
                stop.request("interrupted")
            else:
                stop.force("interrupted")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except JobFileError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        count = len(exc.problems)
        print(
            f"batchthumb: {count} problem{'s' if count > 1 else ''} found; nothing was sent",
            file=sys.stderr,
        )
        return exc.exit_code
    except BatchthumbError as exc:
        print(f"batchthumb: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("batchthumb: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
