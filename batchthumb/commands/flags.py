"""The command-line flags shared by the commands that connect or run, and their settings.

:func:`settings_from_args` turns them into a :class:`~batchthumb.model.RunSettings`: the only
bridge from ``argparse`` to a run's settings.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from batchthumb.errors import UsageError
from batchthumb.jobfile import load_auth
from batchthumb.model import (
    MAX_LIST_PAGES,
    MAXIMA,
    MIB,
    PROJECT_ID,
    REGION,
    RunSettings,
    Side,
    endpoint_for_region,
    parse_duration,
)


def _number(
    parse: Callable[[str], float], *, low: float, above: bool = False, name: str | None = None
) -> Any:
    """An argparse type: a finite number at least ``low`` (greater than it with ``above``),
    and at most the setting ``name``'s maximum (:data:`~batchthumb.model.MAXIMA`)."""
    kind = "a whole number" if parse is int else "a number"
    high = MAXIMA[name] if name is not None else float("inf")

    def check(text: str) -> float:
        try:
            value = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text[:40]!r} is not {kind}") from None
        if (value <= low if above else value < low) or value != value:
            bound = f"greater than {low:g}" if above else f"{low:g} or more"
            raise argparse.ArgumentTypeError(f"must be {bound}, not {text[:40]}")
        if value > high:
            raise argparse.ArgumentTypeError(f"must be at most {high:,g}, not {text[:40]}")
        return value

    return check


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
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
        "--concurrency",
        type=_number(int, low=1, name="concurrency"),
        help="requests in flight at most (1 to 512)",
    )
    parser.add_argument(
        "--rate",
        type=_number(float, low=0, name="rate"),
        help="requests started per second at most, up to 10000; 0 = no cap",
    )
    parser.add_argument(
        "--burst",
        type=_number(int, low=1, name="burst"),
        help="requests that may start at once (token bucket size; at most 1000)",
    )
    parser.add_argument(
        "--retries",
        type=_number(int, low=0, name="retries"),
        help="extra attempts for retryable failures (at most 100)",
    )
    parser.add_argument(
        "--timeout",
        type=_number(float, low=0, above=True, name="timeout"),
        help="seconds per attempt, once connected (at most 3600)",
    )
    parser.add_argument(
        "--max-answer-mb",
        type=_number(float, low=0, above=True, name="max_answer_mb"),
        metavar="MB",
        help="largest JSON answer read, compressed or decoded (default 4); larger ones fail",
    )
    parser.add_argument(
        "--max-list-pages",
        type=_number(int, low=1, name="max_list_pages"),
        metavar="N",
        help=f"most pages of 200 plans listed per project (default 500, at most {MAX_LIST_PAGES})",
    )
    parser.add_argument(
        "--backoff",
        type=_number(float, low=0, name="backoff"),
        metavar="SECONDS",
        help="base delay before a retry, doubled each time (default 1, at most 60; 0 = at once)",
    )
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        help="a bar on a terminal, a status line every 10 s elsewhere (default on)",
    )


def add_side_arguments(parser: argparse.ArgumentParser, prefix: str, side: str) -> None:
    """``--PREFIX-endpoint``/``--PREFIX-region`` and ``--PREFIX-auth`` for one side of a
    migration; each defaults to the shared ``--endpoint``/``--region``/``--auth``."""
    where = parser.add_mutually_exclusive_group()
    where.add_argument(f"--{prefix}-endpoint", metavar="URL", help=f"API base URL of {side}")
    where.add_argument(f"--{prefix}-region", metavar="REGION", help=f"region of {side}")
    parser.add_argument(
        f"--{prefix}-auth",
        type=Path,
        metavar="FILE",
        help=f"YAML file with the `auth:` section {side} signs in with",
    )


def side_from_args(args: argparse.Namespace, prefix: str) -> Side:
    """The side the ``--PREFIX-*`` flags describe (all None: the shared settings)."""
    auth = getattr(args, f"{prefix}_auth")
    region = getattr(args, f"{prefix}_region")
    return Side(
        endpoint=getattr(args, f"{prefix}_endpoint"),
        region=None if region is None else _region(region, f"--{prefix}-region"),
        auth=None if auth is None else load_auth(auth),
    )


def _region(value: str, flag: str) -> str:
    """``value`` if it is a region name; it becomes part of the endpoint's host name, so
    nothing but a region may pass."""
    if not REGION.fullmatch(value):
        raise UsageError(f"{flag} {value!r} is not a region name like cn-north-4")
    return value


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """How a run that changes plans is reported, resumed, bounded and logged.

    Each has a job-file key of the same name (``--no-snapshot`` is ``snapshot: false``).
    """
    parser.add_argument(
        "--report", type=Path, help="results report (JSON lines); default JOB.results.jsonl"
    )
    parser.add_argument(
        "--history",
        type=_number(int, low=1, name="history"),
        metavar="N",
        help="earlier reports that changed something to keep as REPORT.1..N for undo "
        "(default 5, at most 100)",
    )
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
        type=_number(float, low=0, name="lock_wait"),
        metavar="SECONDS",
        help="wait this long for another run using the same report (at most 86400)",
    )
    parser.add_argument(
        "--max-duration",
        type=_duration,
        metavar="DURATION",
        help="start nothing new after this long (90s, 30m, 2h; at most 168h); exit 4",
    )
    output = parser.add_mutually_exclusive_group()
    output.add_argument(
        "-q", "--quiet", action="store_true", default=None,
        help="print nothing unless something failed (then the summary and the failures)",
    )  # fmt: skip
    output.add_argument(
        "-v", "--verbose", action="store_true", default=None,
        help="also show each retry and throttling",
    )  # fmt: skip
    parser.add_argument(
        "--log-json",
        action=argparse.BooleanOptionalAction,
        help="log events as JSON lines (to --log-file, else stderr, which then holds only JSON)",
    )
    parser.add_argument(
        "--log-file",
        type=Path,
        metavar="FILE",
        help="append the log here: JSON lines with --log-json, else the lines printed, dated",
    )
    parser.add_argument(
        "--breaker",
        type=_number(int, low=0, name="breaker"),
        metavar="N",
        help="stop (exit 3) after N items in a row fail the same permanent way (default 25; "
        "0 = never)",
    )
    parser.add_argument(
        "--backup",
        type=Path,
        metavar="FILE",
        help="write the plans' current thumbnails as a job file before the first change "
        "(an existing FILE is kept as FILE.1)",
    )
    parser.add_argument(
        "--snapshot",
        action=argparse.BooleanOptionalAction,
        help='list each project first: previous_img_url, undo, --backup, "already set" '
        "(default on)",
    )
    parser.add_argument(
        "--gallery",
        type=Path,
        metavar="DIR",
        help="after the run, write a before/after HTML gallery of its report into DIR",
    )


# Flags whose value, when given, replaces the settings field of the same name.
_VALUES = (
    "concurrency", "rate", "burst", "retries", "timeout", "backoff", "breaker", "report",
    "ca_bundle", "backup", "lock_wait", "max_duration", "log_file", "history", "progress",
    "snapshot", "log_json", "quiet", "verbose", "gallery",
)  # fmt: skip
# Switches that set a field when present: (flag's dest, field, value when present).
_SWITCHES = (
    ("insecure", "insecure", True),
    ("resume", "resume", True),
    ("retry_failed", "retry_failed", True),
)


def settings_from_args(args: argparse.Namespace, base: RunSettings) -> RunSettings:
    """``base`` (the job's settings, or the defaults) with the flags given on top."""
    overrides: dict[str, Any] = {
        name: getattr(args, name) for name in _VALUES if getattr(args, name, None) is not None
    }
    for dest, name, value in _SWITCHES:
        if getattr(args, dest, False):
            overrides[name] = value
    # The flag wins over the job file's opposite setting.
    if overrides.get("snapshot") is False and "backup" not in overrides:
        overrides["backup"] = None  # --no-snapshot over the job's `backup:`
    if overrides.get("quiet"):
        overrides["verbose"] = False
    if overrides.get("verbose"):
        overrides["quiet"] = False
    if args.max_answer_mb is not None:
        overrides["max_answer_bytes"] = int(args.max_answer_mb * MIB)
    if args.max_list_pages is not None:
        overrides["max_list_pages"] = args.max_list_pages
    if args.endpoint is not None:
        overrides["endpoint"] = args.endpoint.rstrip("/")
    if args.region is not None:
        overrides["region"] = _region(args.region, "--region")
        overrides["endpoint"] = endpoint_for_region(args.region)
    if args.auth is not None:
        overrides["auth"] = load_auth(args.auth)
    return replace(base, **overrides)


def check_project(value: str, flag: str) -> str:
    """``value`` if it is a project id; else a usage error naming ``flag``."""
    if not PROJECT_ID.fullmatch(value):
        raise UsageError(f"{flag} {value!r}: a project id is 32 letters or digits")
    return value
