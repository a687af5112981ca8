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
from typing import TYPE_CHECKING, TextIO

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

if TYPE_CHECKING:
    from batchthumb.auth import Credentials
    from batchthumb.execute import RunOptions, RunPlan
    from batchthumb.model import Job, Settings
    from batchthumb.runner import Stop

TIME_LIMIT = "time limit reached"
EXIT_CODES = f"""\
exit codes:
  {EXIT_OK}    every item succeeded (or was already done)
  {EXIT_SOME_FAILED}    some items failed; the report says which and why
  {EXIT_USAGE}    invalid usage, job file, report or credentials; nothing was sent
  {EXIT_ABORTED}    aborted: credentials rejected, or items kept failing the same way
  {EXIT_INCOMPLETE}    --max-duration reached; run again with --resume to finish
  {EXIT_LOCKED}   another run holds the report's lock
  {EXIT_INTERRUPTED}  interrupted (SIGINT or SIGTERM); run again with --resume to finish
"""


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {text}")
    return value


def _positive(text: str) -> float:
    value = float(text)
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be greater than 0, not {text}")
    return value


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
    run.add_argument(
        "--endpoint", help="API base URL, e.g. https://projectman-ext.cn-north-4.myhuaweicloud.com"
    )
    run.add_argument(
        "--report", type=Path, help="results report (JSON lines); default from the job"
    )
    run.add_argument("--concurrency", type=_positive_int, help="requests in flight at most")
    run.add_argument(
        "--rate", type=_non_negative, help="requests started per second at most; 0 = no cap"
    )
    run.add_argument(
        "--burst", type=_positive_int, help="requests that may start at once (token bucket size)"
    )
    run.add_argument(
        "--retries", type=_non_negative_int, help="extra attempts for retryable failures"
    )
    run.add_argument("--timeout", type=_positive, help="seconds per attempt, once connected")
    run.add_argument("--resume", action="store_true", help="skip items the report records as done")
    run.add_argument(
        "--retry-failed",
        action="store_true",
        help="send only the items the report records as failed",
    )
    run.add_argument(
        "--dry-run", action="store_true", help="validate and show what would be sent; send nothing"
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bar or status lines")
    run.add_argument(
        "--sandbox",
        action="store_true",
        help="run against a local sandbox of the API (no account needed)",
    )
    run.add_argument(
        "--backoff",
        type=_non_negative,
        default=1.0,
        metavar="SECONDS",
        help="base delay before a retry, doubled each time (default 1; 0 = retry at once)",
    )
    run.add_argument(
        "--lock-wait",
        type=_non_negative,
        default=0.0,
        metavar="SECONDS",
        help="wait this long for another run on the same report (default: exit 75 at once)",
    )
    run.add_argument(
        "--max-duration",
        type=_duration,
        metavar="TIME",
        help="stop starting items after this long (e.g. 90s, 30m, 2h), then exit 4",
    )
    run.add_argument(
        "--log-json",
        action="store_true",
        help="one JSON object per event (start, retry, throttled, item_failed, summary)",
    )
    run.add_argument(
        "--log-file", type=Path, metavar="PATH", help="where --log-json goes (default: stderr)"
    )
    run.set_defaults(handler=_cmd_run)

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


def _cmd_run(args: argparse.Namespace) -> int:
    from batchthumb.execute import RunOptions, plan_run
    from batchthumb.jobfile import load_job
    from batchthumb.ratelimit import ThrottlePolicy
    from batchthumb.report import report_lock

    if args.resume and args.retry_failed:
        raise UsageError("--resume and --retry-failed do not go together; pick one")
    job = load_job(args.job)
    _print_warnings(job.warnings)
    overrides = {
        name: getattr(args, name)
        for name in ("endpoint", "concurrency", "rate", "burst", "retries", "timeout")
        if getattr(args, name) is not None
    }
    settings = replace(job.settings, **overrides)
    options = RunOptions(
        report=args.report or job.report_path,
        resume=args.resume,
        retry_failed=args.retry_failed,
        progress=not args.no_progress,
        backoff=args.backoff,
        throttle=ThrottlePolicy(pause=args.backoff / 2),
    )
    if args.dry_run:
        _print_dry_run(job, plan_run(job, options), settings, options)
        return EXIT_OK
    endpoint, credentials = _connection(args, settings)
    with report_lock(options.report, wait=args.lock_wait):
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
                    endpoint,
                    credentials,
                    args.max_duration,
                    log,
                ),
                backend_options=_backend_options(),
            )


def _backend_options() -> dict[str, object]:
    """uvloop when it is installed (the ``uvloop`` extra): less CPU per request."""
    import importlib.util

    return {"use_uvloop": True} if importlib.util.find_spec("uvloop") else {}


def _connection(
    args: argparse.Namespace, settings: Settings
) -> tuple[str | None, Credentials | None]:
    """The endpoint and credentials of a real run; (None, None) for the embedded sandbox."""
    from batchthumb.auth import token_from_env

    if args.sandbox:
        return None, None
    if settings.endpoint is None:
        raise UsageError(
            "no endpoint: set `endpoint:` or `region:` in the job, pass --endpoint, "
            "or rehearse with --sandbox"
        )
    return settings.endpoint, token_from_env()


def _headline(job: Job, plan: RunPlan, settings: Settings) -> str:
    from batchthumb.progress import format_duration

    estimate = plan.estimate(settings)
    took = f", about {format_duration(estimate)} at {settings.rate:g}/s" if estimate else ""
    return (
        f"{len(plan.pending)} of {len(job.items)} plans to set, {plan.skipped} already done{took}"
    )


def _print_dry_run(job: Job, plan: RunPlan, settings: Settings, options: RunOptions) -> None:
    print(f"dry run: {_headline(job, plan, settings)}")
    print(f"report: {options.report}")
    for item in itertools.islice(plan.pending, 20):
        print(f"  PUT /v3/plan/{item.project_id}/management/{item.plan_id}/img  {item.img_url}")
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
async def _target(
    job: Job, endpoint: str | None, credentials: Credentials | None
) -> AsyncIterator[tuple[str, Credentials]]:
    """Where requests go: the given endpoint, or an embedded sandbox when neither is given."""
    if endpoint is not None and credentials is not None:
        yield endpoint, credentials
        return
    from batchthumb.execute import embedded_sandbox

    async with embedded_sandbox(job) as (url, token):
        print(f"batchthumb: sandbox at {url}", file=sys.stderr)
        yield url, token


async def _run_async(
    job: Job,
    plan: RunPlan,
    settings: Settings,
    options: RunOptions,
    endpoint: str | None,
    credentials: Credentials | None,
    max_duration: float | None,
    log: TextIO | None,
) -> int:
    from batchthumb.execute import execute
    from batchthumb.runner import Stop
    from batchthumb.summary import format_summary

    stop = Stop()
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(_watch_signals, stop)
        if max_duration is not None:
            tasks.start_soon(_stop_at_deadline, stop, max_duration)
        async with _target(job, endpoint, credentials) as (url, creds):
            summary = await execute(
                plan,
                settings=settings,
                endpoint=url,
                credentials=creds,
                options=options,
                stop=stop,
                stderr=sys.stderr,
                log=log,
            )
        tasks.cancel_scope.cancel()
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
