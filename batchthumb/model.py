"""The values batchthumb works with: jobs, items, attempts and outcomes. No I/O here."""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from batchthumb.errors import Problem

# Documented constraint (update-thumbnail.md): project_id is [A-Za-z0-9]{32}.
PROJECT_ID = re.compile(r"[A-Za-z0-9]{32}")
# The docs give no pattern for plan_id; the list call returns 32-character ids (facts §1).
PLAN_ID = re.compile(r"[A-Za-z0-9]{32}")
# The documented pattern /v1/upload/%s/\d{6}/[a-zA-Z0-9]+.[a-zA-Z], read strictly and anchored.
IMG_URL = re.compile(r"/v1/upload/(?P<project>[A-Za-z0-9]{32})/\d{6}/[A-Za-z0-9]+\.[A-Za-z]+")

ITEM_KEYS = ("project_id", "plan_id", "img_url")

DEFAULT_CONCURRENCY = 8
DEFAULT_RETRIES = 6
DEFAULT_TIMEOUT = 30.0


def field_problem(name: str, value: str) -> str | None:
    """What is wrong with one item field's value, or None if it is well-formed."""
    if name == "project_id" and not PROJECT_ID.fullmatch(value):
        return "must be 32 letters or digits (the CodeArts Req project id)"
    if name == "plan_id" and not PLAN_ID.fullmatch(value):
        return "must be 32 letters or digits (the plan id)"
    if name == "img_url" and not IMG_URL.fullmatch(value):
        return "must look like /v1/upload/<32 letters or digits>/<yyyymm>/<name>.<ext>"
    return None


def endpoint_for_region(region: str) -> str:
    """The documented CodeArts Req endpoint of a region (facts §3)."""
    return f"https://projectman-ext.{region}.myhuaweicloud.com"


class Outcome(enum.StrEnum):
    """What happened to an item in a run."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class Item:
    """One plan whose thumbnail a job sets; ``line`` is where the job file names it."""

    project_id: str
    plan_id: str
    img_url: str
    line: int = 0

    @property
    def key(self) -> tuple[str, str]:
        """The identity of an item across runs and edits of the job file."""
        return (self.project_id, self.plan_id)


@dataclass(frozen=True, slots=True)
class Settings:
    """How a job runs: where to, how fast, how patiently, and where the report goes."""

    endpoint: str | None = None
    concurrency: int = DEFAULT_CONCURRENCY
    rate: float = 0.0  # requests started per second; 0 = no cap, slowed only by throttling
    burst: int = 1
    retries: int = DEFAULT_RETRIES
    timeout: float = DEFAULT_TIMEOUT
    report: Path | None = None


class ItemSource(Protocol):
    """Items that can be counted and iterated more than once: a tuple, or a file read lazily."""

    def __len__(self) -> int:
        """How many items there are."""
        ...

    def __iter__(self) -> Iterator[Item]:
        """The items, in job order, from the start."""
        ...


@dataclass(frozen=True, slots=True)
class Job:
    """A validated job file."""

    path: Path
    settings: Settings
    items: ItemSource
    warnings: tuple[Problem, ...] = ()

    @property
    def report_path(self) -> Path:
        """Where the report goes when neither the job nor the command line says."""
        if self.settings.report is not None:
            return self.settings.report
        return self.path.with_name(f"{self.path.stem}.results.jsonl")


class Verdict(enum.Enum):
    """How the runner should treat the answer to one attempt."""

    OK = "ok"
    RETRY = "retry"  # server error, timeout, dropped connection
    THROTTLED = "throttled"  # the whole run must slow down
    PERMANENT = "permanent"  # the request itself is wrong; retrying changes nothing
    REJECTED = "rejected"  # credentials refused: the run cannot go on


@dataclass(frozen=True, slots=True)
class Attempt:
    """The answer to one request, classified by the API layer."""

    verdict: Verdict
    http_status: int | None = None
    error_code: str | None = None
    error: str | None = None
    request_id: str | None = None
    retry_after: float | None = None  # seconds the server asked us to wait
    ambiguous: bool = False  # sent, but no answer: the server may have applied it


@dataclass(frozen=True, slots=True)
class ItemResult:
    """One line of the report: the final outcome of an item in this run."""

    project_id: str
    plan_id: str
    img_url: str
    outcome: Outcome
    http_status: int | None
    error_code: str | None
    error: str | None
    attempts: int
    elapsed_ms: int
    finished_at: str
    request_id: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        """The item this result belongs to."""
        return (self.project_id, self.plan_id)


@dataclass(slots=True)
class Tally:
    """Running counts for progress and the summary."""

    total: int = 0
    succeeded: int = 0
    failed: int = 0
    skipped: int = 0
    error_codes: dict[str, int] = field(default_factory=dict)

    @property
    def done(self) -> int:
        """Items finished in this run, skipped ones included."""
        return self.succeeded + self.failed + self.skipped

    def add(self, result: ItemResult) -> None:
        """Count one finished item."""
        if result.outcome is Outcome.SUCCEEDED:
            self.succeeded += 1
        elif result.outcome is Outcome.SKIPPED:
            self.skipped += 1
        else:
            self.failed += 1
            code = result.error_code or (
                f"HTTP {result.http_status}" if result.http_status else "no answer"
            )
            self.error_codes[code] = self.error_codes.get(code, 0) + 1


def pending(items: Iterable[Item], finished: frozenset[tuple[str, str]]) -> Iterable[Item]:
    """The items not already finished, in job order."""
    return (item for item in items if item.key not in finished)
