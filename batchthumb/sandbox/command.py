"""The ``batchthumb sandbox`` subcommand: serve a local CodeArts Req stand-in until stopped.

Cheap to import (argparse only); the server loads when the command runs. On start it prints
exactly one line, ``batchthumb sandbox listening on http://HOST:PORT``, for scripts to read.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from batchthumb.sandbox.server import Sandbox

READY_LINE = "batchthumb sandbox listening on {url}"


def _probability(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"a probability is between 0 and 1, got {text}")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {text}")
    return value


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {text}")
    return value


def _schedule(text: str) -> tuple[tuple[float, float], ...]:
    from batchthumb.sandbox.limits import parse_schedule

    try:
        return parse_schedule(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _burst(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"a bucket holds at least 1 request, got {text}")
    return value


def _pair(separator: str, what: str) -> Callable[[str], tuple[str, str]]:
    def parse(text: str) -> tuple[str, str]:
        left, sep, right = text.partition(separator)
        if not sep or not left or not right:
            raise argparse.ArgumentTypeError(f"expected {what}")
        return left, right

    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``sandbox`` options to ``parser``."""
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument(
        "--port", type=int, default=8080, help="port to listen on; 0 picks a free one"
    )
    parser.add_argument("--seed", metavar="FILE", help="YAML file of projects, plans and images")
    parser.add_argument(
        "--token",
        action="append",
        default=[],
        metavar="TOKEN",
        help="accept this X-Auth-Token (repeatable); without any, every token of 10 to 32768 "
        "characters is accepted",
    )
    parser.add_argument(
        "--aksk",
        action="append",
        default=[],
        metavar="AK:SK",
        type=_pair(":", "AK:SK"),
        help="accept SDK-HMAC-SHA256 requests signed with this key pair (repeatable)",
    )
    parser.add_argument(
        "--iam-user",
        action="append",
        default=[],
        metavar="DOMAIN/NAME:PASSWORD",
        type=_pair(":", "DOMAIN/NAME:PASSWORD"),
        help="let POST /v3/auth/tokens issue tokens to this user, scoped to cn-north-4",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="a PUT only takes URLs uploaded to the same project through the sandbox",
    )
    parser.add_argument(
        "--record-headers",
        metavar="FILE",
        help="for tests: on exit, write the headers of every request received (credentials "
        "included) to FILE as JSON lines",
    )
    parser.add_argument(
        "--autocreate",
        action="store_true",
        help="create unknown projects and plans on first use (default: 400, as the API)",
    )
    parser.add_argument(
        "--list-bare",
        action="store_true",
        help='list elements as bare plans (default: {"result": plan, "status": "success"}, '
        "as documented)",
    )
    parser.add_argument(
        "--no-project-id-check",
        action="store_true",
        help="accept AK/SK calls without a known X-Project-Id (the SDK always sends one)",
    )
    parser.add_argument(
        "--non-member",
        action="append",
        default=[],
        metavar="PROJECT_ID",
        help="answer every call on this project 400 PM.02150010, not a member (repeatable)",
    )
    parser.add_argument(
        "--no-download-permission",
        action="store_true",
        help="answer DownloadImageFile 400 PM.02174103, as for an IAM user without "
        "codeartsreq:attachment:download",
    )
    parser.add_argument(
        "--list-without-img",
        action="store_true",
        help="list plans without their img_url (thumbnails unknown to the client)",
    )
    faults = parser.add_argument_group("faults")
    faults.add_argument(
        "--latency",
        type=_non_negative,
        default=0.0,
        help="seconds added to every request (PUT, list, upload, download, IAM)",
    )
    faults.add_argument(
        "--jitter",
        type=_non_negative,
        default=0.0,
        metavar="S",
        help="add up to S seconds more to each request, at random (seeded by --seed-random)",
    )
    faults.add_argument("--p500", type=_probability, default=0.0, help="share of PUTs with 500")
    faults.add_argument("--p503", type=_probability, default=0.0, help="share of PUTs with 503")
    faults.add_argument("--p429", type=_probability, default=0.0, help="share of PUTs with 429")
    faults.add_argument("--retry-after", help="Retry-After value sent with random 429s")
    faults.add_argument(
        "--p-pm-throttle",
        type=_probability,
        default=0.0,
        help="share of PUTs with 400 PM.02153001",
    )
    faults.add_argument(
        "--p-drop", type=_probability, default=0.0, help="share of PUTs dropped unanswered"
    )
    faults.add_argument(
        "--p-drop-after-apply",
        type=_probability,
        default=0.0,
        help="share of PUTs applied and then dropped unanswered",
    )
    faults.add_argument(
        "--throttle-code",
        choices=("APIGW.0308", "APIG.0308"),
        default="APIGW.0308",
        help="how 429s spell the throttling code (the gateway's docs use both)",
    )
    limits = parser.add_argument_group(
        "rate limit", "a gateway limit: 429 with the throttling code above it"
    )
    limits.add_argument(
        "--rate-limit",
        type=_schedule,
        metavar="RATE[@S,...]",
        help="requests per second; a schedule such as 100@0,25@3 changes it S seconds after "
        "the first request",
    )
    limits.add_argument(
        "--limit-shape",
        choices=("bucket", "fixed", "sliding"),
        default="bucket",
        help="token bucket (default), fixed windows, or a sliding window",
    )
    limits.add_argument(
        "--limit-burst",
        type=_burst,
        metavar="N",
        help=(
            "requests the bucket holds (default: a tenth of a second of the rate in force, "
            "at least 1)"
        ),
    )
    limits.add_argument(
        "--limit-window",
        type=_positive,
        default=1.0,
        metavar="S",
        help="window length for fixed and sliding windows: 1 (default) or 60 as the gateway",
    )
    limits.add_argument(
        "--limit-align",
        choices=("first", "clock"),
        default="first",
        help="fixed windows start at the first request (default) or on the clock's whole "
        "seconds or minutes",
    )
    limits.add_argument(
        "--limit-scope",
        choices=("per-api", "shared"),
        default="per-api",
        help="count PUT, list, upload and download apart (default, as the gateway) or together",
    )
    limits.add_argument(
        "--limit-retry-after",
        choices=("none", "seconds", "date"),
        default="none",
        help="send Retry-After with the limit's 429s: not at all (default), in seconds, or "
        "as an HTTP date",
    )
    faults.add_argument(
        "--fail-first", type=_count, default=0, metavar="N", help="answer the first N PUTs 503"
    )
    faults.add_argument(
        "--seed-random", type=int, metavar="N", help="seed the random faults, for repeatable runs"
    )


def build_sandbox(args: argparse.Namespace) -> Sandbox:
    """Build the sandbox the parsed options describe (seed file included)."""
    from batchthumb.sandbox.config import IamUser, SandboxConfig
    from batchthumb.sandbox.faults import Fault, Faults
    from batchthumb.sandbox.limits import RateLimit, RetryAfter, Shape
    from batchthumb.sandbox.seed import load_seed
    from batchthumb.sandbox.server import Sandbox

    users = []
    for who, password in args.iam_user:
        domain, _, name = who.partition("/")
        users.append(IamUser(domain=domain, name=name or domain, password=password))
    rate_limit = None
    if args.rate_limit is not None:
        rate_limit = RateLimit(
            args.rate_limit,
            shape=Shape(args.limit_shape),
            burst=args.limit_burst,
            window=args.limit_window,
            aligned=args.limit_align == "clock",
            per_api=args.limit_scope == "per-api",
            retry_after=RetryAfter(args.limit_retry_after),
        )
    config = SandboxConfig(
        tokens=frozenset(args.token),
        iam_users=tuple(users),
        aksk=dict(args.aksk),
        autocreate=args.autocreate,
        strict_urls=args.strict,
        list_wrapped=not args.list_bare,
        require_project_id=not args.no_project_id_check,
        non_member_projects=frozenset(args.non_member),
        download_permission=not args.no_download_permission,
        record_headers=args.record_headers is not None,
        list_img=not args.list_without_img,
        rate_limit=rate_limit,
        throttle_code=args.throttle_code,
    )
    faults = Faults(
        latency=args.latency,
        jitter=args.jitter,
        p500=args.p500,
        p503=args.p503,
        p429=args.p429,
        retry_after=args.retry_after,
        p_pm_throttle=args.p_pm_throttle,
        p_drop=args.p_drop,
        p_drop_after_apply=args.p_drop_after_apply,
        seed=args.seed_random,
    )
    if args.fail_first:
        faults.script(Fault.status(503), times=args.fail_first)
    sandbox = Sandbox(config, faults=faults)
    if args.seed:
        load_seed(args.seed, sandbox)
    return sandbox


async def serve_until_stopped(sandbox: Sandbox, host: str, port: int) -> None:
    """Serve ``sandbox``, print the ready line, and return on SIGINT or SIGTERM."""
    import asyncio
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        # Windows has no add_signal_handler: Ctrl-C arrives as KeyboardInterrupt instead.
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop.set)
    async with sandbox.serve(host, port) as url:
        print(READY_LINE.format(url=url), flush=True)
        await stop.wait()


def run(args: argparse.Namespace) -> int:
    """Run the ``sandbox`` subcommand; returns the exit status (0 after SIGINT/SIGTERM).

    Raises ``SeedError`` for a bad seed file and ``UsageError`` when it cannot listen
    (both ``BatchthumbError``, exit status 2), before anything is printed to stdout.
    """
    import asyncio

    from batchthumb.errors import UsageError

    sandbox = build_sandbox(args)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve_until_stopped(sandbox, args.host, args.port))
    except OSError as exc:  # the port is taken, the address is not local
        raise UsageError(f"sandbox: cannot listen on {args.host}:{args.port}: {exc}") from exc
    if args.record_headers is not None:
        write_headers(Path(args.record_headers), sandbox.stats.headers)
    return 0


def write_headers(path: Path, headers: list[dict[str, str]]) -> None:
    """The recorded headers, one JSON object a line, in arrival order."""
    import json

    from batchthumb.errors import UsageError, os_errors

    with os_errors(path, "write the recorded headers", UsageError):
        path.write_text("".join(json.dumps(h) + "\n" for h in headers), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """Standalone entry point (``python -m batchthumb.sandbox``); errors end with status 2."""
    from batchthumb.errors import BatchthumbError

    parser = argparse.ArgumentParser(
        prog="batchthumb sandbox", description="Serve a local CodeArts Req API stand-in."
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except BatchthumbError as exc:
        print(f"batchthumb sandbox: {exc}", file=sys.stderr)
        return exc.exit_code
