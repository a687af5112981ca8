"""The values batchthumb works with: jobs, items, run settings, attempts, outcomes. No I/O here."""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import NamedTuple, Protocol

from batchthumb.errors import Problem, UsageError

# Documented constraint (update-thumbnail.md): project_id is [A-Za-z0-9]{32}.
PROJECT_ID = re.compile(r"[A-Za-z0-9]{32}")
# The docs give no pattern for plan_id; the list call returns 32-character ids (facts §1).
PLAN_ID = re.compile(r"[A-Za-z0-9]{32}")
# A region name as Huawei Cloud spells them (cn-north-4, ap-southeast-1); it becomes part of a
# host name, so nothing else may pass.
REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d+")
# The documented pattern /v1/upload/%s/\d{6}/[a-zA-Z0-9]+.[a-zA-Z], anchored and bounded. What
# %s holds is unproven (facts §0: upload examples answer another id than the request's
# project); the download page allows 1 to 32 characters there, so any such id is accepted.
IMG_URL = re.compile(r"/v1/upload/[A-Za-z0-9]{1,32}/\d{6}/[A-Za-z0-9]{1,64}\.[A-Za-z]{1,8}")

ITEM_KEYS = ("project_id", "plan_id", "img_url")

# The SDK's environment variables for an access key pair (what `auth: aksk` reads by default).
AK_ENV = "HUAWEICLOUD_SDK_AK"
SK_ENV = "HUAWEICLOUD_SDK_SK"

# What a server's answer may cost at most (issue 10). Each breach fails the request and says
# which limit; none of them can be met by an honest answer.
MIB = 1024 * 1024
# A JSON answer, compressed and decoded: a page of 200 plans is some 100 KB. Configurable
# (--max-answer-mb), should a project's plans carry unusually large fields.
DEFAULT_MAX_ANSWER_BYTES = 4 * MIB
# A downloaded image: the 5 MB upload limit (facts §2.1) plus a margin; a larger one could
# not be uploaded again anyway.
MAX_IMAGE_ANSWER_BYTES = 6 * MIB
# Server text (error_msg, a bad answer quoted) kept in the report and in messages.
MAX_ERROR_CHARS = 500
# Pages of one project's plan list: 100,000 plans at 200 a page. A list that goes on is
# refused, not followed. Configurable (--max-list-pages) up to the documented 9,999.
DEFAULT_MAX_LIST_PAGES = 500
MAX_LIST_PAGES = 9999
# A listed plan's name, type or img_url longer than this makes the page unexpected, so a
# hostile list cannot fill memory through them.
MAX_PLAN_FIELD_CHARS = 1024

# The largest value each setting takes, in the job file and on the command line (README,
# "Limits"). Past them a value is a typo or an attack: it costs memory, file descriptors or
# hours, and never speed, since the API's own rate limit comes first.
MAXIMA: dict[str, float] = {
    "concurrency": 512,  # each worker holds a connection: a file descriptor of the 1024 usual
    "rate": 10_000,  # requests per second; one machine sends about 8,000 at most
    "burst": 1_000,
    "retries": 100,
    "timeout": 3_600,  # seconds per attempt
    "backoff": 60,  # seconds; retry delays are capped at 60 anyway
    "lock_wait": 86_400,  # a day
    "max_duration": 7 * 86_400,  # a week
    "max_answer_mb": 1_024,
    "max_list_pages": MAX_LIST_PAGES,
    "history": 100,  # reports kept beside the report
    "breaker": 100_000,
}


def field_problem(name: str, value: str) -> str | None:
    """What is wrong with one item field's value, or None if it is well-formed."""
    if name == "project_id" and not PROJECT_ID.fullmatch(value):
        return "must be 32 letters or digits (the CodeArts Req project id)"
    if name == "plan_id" and not PLAN_ID.fullmatch(value):
        return "must be 32 letters or digits (the plan id)"
    if name == "img_url" and not IMG_URL.fullmatch(value):
        return "must look like /v1/upload/<id>/<yyyymm>/<name>.<ext>"
    return None


def endpoint_for_region(region: str) -> str:
    """The documented CodeArts Req endpoint of a region (facts §3)."""
    return f"https://projectman-ext.{region}.myhuaweicloud.com"


DURATION_UNITS = {"s": 1, "m": 60, "h": 3600}


def parse_duration(text: str) -> float:
    """Seconds in ``90s``, ``30m``, ``2h`` or ``45``; ValueError saying what is wrong."""
    number, unit = (text[:-1], text[-1]) if text[-1:] in DURATION_UNITS else (text, "s")
    try:
        value = float(number) * DURATION_UNITS[unit]
    except ValueError:
        raise ValueError(f"{text[:40]!r} is not a duration like 90s, 30m or 2h") from None
    if not value > 0:
        raise ValueError(f"must be greater than 0, not {text[:40]}")
    if not value <= MAXIMA["max_duration"]:
        raise ValueError(f"must be at most 7 days (168h), not {text[:40]}")
    return value


# -- what the auth: section says (references to secrets, never secrets) ----------------------


@dataclass(frozen=True, slots=True)
class TokenAuth:
    """A token in an environment variable or a file (``auth: {token_env|token_file: ...}``)."""

    env: str | None = None
    file: Path | None = None


@dataclass(frozen=True, slots=True)
class IamAuth:
    """An IAM user whose password is in ``password_env`` (``auth: {iam: {...}}``)."""

    domain: str
    user: str
    password_env: str
    endpoint: str | None = None  # default: the region's, else the global one
    project: str | None = None  # the IAM project (region) name; default: the job's region


@dataclass(frozen=True, slots=True)
class AkSkAuth:
    """An access key pair from the SDK's environment variables or profile file."""

    ak_env: str = AK_ENV
    sk_env: str = SK_ENV
    credentials_file: Path | None = None  # default: $HUAWEICLOUD_SDK_CREDENTIALS_FILE or ~/...
    # Where the IAM project id is looked up when none is configured (facts §4.3).
    iam_endpoint: str | None = None  # default: $HUAWEICLOUD_SDK_IAM_ENDPOINT, the region's, ...
    project: str | None = None  # the IAM project (region) name; default: the job's region


AuthConfig = TokenAuth | IamAuth | AkSkAuth


class Outcome(enum.StrEnum):
    """What happened to an item in a run."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class LocalImage:
    """An image file on disk, checked when the job was read: type, size and content hash."""

    path: Path
    sha256: str
    size: int
    ext: str  # the type its magic bytes say: png, jpg, gif, bmp or webp

    @property
    def cache_key(self) -> str:
        """What identifies its upload in a project: the content, not the name."""
        return f"sha256:{self.sha256}"


@dataclass(frozen=True, slots=True)
class SourceImage:
    """An image already uploaded to another project, to be copied (downloaded, uploaded)."""

    project_id: str
    img_url: str

    @property
    def cache_key(self) -> str:
        """What identifies its copy in a target project: the source URL."""
        return f"source:{self.img_url}"


ItemImage = LocalImage | SourceImage


@dataclass(frozen=True, slots=True)
class Item:
    """One plan whose thumbnail a job sets; ``line`` is where the job file names it.

    The thumbnail is ``img_url`` when it is already uploaded, else ``image``, which the run
    uploads to the item's project first.
    """

    project_id: str
    plan_id: str
    img_url: str | None
    line: int = 0
    image: ItemImage | None = None

    def __post_init__(self) -> None:
        if (self.img_url is None) == (self.image is None):
            raise ValueError("an item has either img_url or image, not both or neither")

    @property
    def thumbnail(self) -> str:
        """The thumbnail as a user would name it: the URL, the file, or the source URL."""
        if self.img_url is not None:
            return self.img_url
        if isinstance(self.image, LocalImage):
            return str(self.image.path)
        assert self.image is not None
        return f"copy of {self.image.img_url}"

    @property
    def key(self) -> tuple[str, str]:
        """The identity of an item across runs and edits of the job file."""
        return (self.project_id, self.plan_id)


@dataclass(frozen=True, slots=True)
class RunSettings:
    """How a job runs: where to, how fast, how patiently, what it keeps, and what it shows."""

    # Where requests go and how fast (the job file's `settings:`; flags win).
    endpoint: str | None = None
    region: str | None = None  # also picks the IAM endpoint and project for `auth: iam`
    concurrency: int = 8
    rate: float = 0.0  # requests started per second; 0 = no cap, slowed only by throttling
    burst: int = 1
    retries: int = 6
    timeout: float = 30.0  # seconds per attempt, once connected
    # What a server's answers may cost (issue 10).
    max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES  # a JSON answer, compressed or decoded
    max_list_pages: int = DEFAULT_MAX_LIST_PAGES  # pages of one project's plan list
    backoff: float = 1.0  # base delay before a retry, doubled each time; 0 = retry at once
    breaker: int = 25  # items in a row failing the same permanent way that stop a run; 0 = never
    # Credentials and transport.
    auth: AuthConfig | None = None  # None: the job's `auth:`, else $BATCHTHUMB_TOKEN
    ca_bundle: Path | None = None  # extra CA certificates (PEM); verification stays on
    insecure: bool = False  # allow plain http:// to hosts other than loopback
    # The report, and what is kept before the first change.
    report: Path | None = None  # None: JOB.results.jsonl next to the job file
    resume: bool = False  # skip the items the report records as done
    retry_failed: bool = False  # send only the items the report records as failed
    snapshot: bool = True  # list each project first: previous_img_url, "already set", undo
    backup: Path | None = None  # write the previous thumbnails as a job file first
    history: int = 5  # earlier reports that changed something, kept as REPORT.1..N for undo
    # Bounds: waiting for the report's lock, and the run's own duration.
    lock_wait: float = 0.0
    max_duration: float | None = None  # start nothing new after this many seconds
    # What the run shows and logs.
    progress: bool = True  # a bar on a terminal, status lines elsewhere
    log_json: bool = False  # JSON-lines events
    log_file: Path | None = None  # JSON events with log_json, else the human lines; appended
    quiet: bool = False  # print nothing unless something failed
    verbose: bool = False  # also show each retry and throttling
    gallery: Path | None = None  # after the run, write its before/after gallery here

    def __post_init__(self) -> None:
        if self.resume and self.retry_failed:
            raise UsageError("--resume and --retry-failed do not go together; pick one")
        if self.backup is not None and not self.snapshot:
            raise UsageError("--backup needs the snapshot; drop --no-snapshot")
        if self.quiet and self.verbose:
            raise UsageError("--quiet and --verbose do not go together; pick one")
        if self.history < 1:
            raise UsageError("--history must be 1 or more: the last changing report is kept")

    def report_for(self, job_path: Path) -> Path:
        """The report of a run of the job at ``job_path``: ``report``, else next to the job."""
        if self.report is not None:
            return self.report
        return job_path.with_name(f"{job_path.stem}.results.jsonl")


@dataclass(frozen=True, slots=True)
class Side:
    """One side of a migration, where it differs from the shared settings: its endpoint or
    region, and its credentials (another region or account signs in on its own)."""

    endpoint: str | None = None
    region: str | None = None  # sets the endpoint too, unless ``endpoint`` is given
    auth: AuthConfig | None = None

    def __post_init__(self) -> None:
        if self.region is not None and not REGION.fullmatch(self.region):
            # It becomes part of the endpoint's host name: nothing but a region may pass.
            raise UsageError(f"region {self.region!r} is not a region name like cn-north-4")

    def settings(self, shared: RunSettings) -> RunSettings:
        """``shared`` with this side's endpoint, region and credentials on top."""
        changes: dict[str, object] = {}
        if self.region is not None:
            changes["region"] = self.region
            changes["endpoint"] = endpoint_for_region(self.region)
        if self.endpoint is not None:
            changes["endpoint"] = self.endpoint.rstrip("/")
        if self.auth is not None:
            changes["auth"] = self.auth
        return replace(shared, **changes)  # type: ignore[arg-type]


class ItemStream(Protocol):
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
    settings: RunSettings  # what the job file says; a run replaces fields on top
    items: ItemStream
    warnings: tuple[Problem, ...] = ()
    auth: AuthConfig | None = None  # None: $BATCHTHUMB_TOKEN

    @property
    def projects(self) -> frozenset[str]:
        """The projects the items name; job and items files know them from validation."""
        known = getattr(self.items, "projects", None)
        if isinstance(known, frozenset):
            return known
        return frozenset(item.project_id for item in self.items)

    @property
    def report_path(self) -> Path:
        """Where the report goes when the command line does not say."""
        return self.settings.report_for(self.path)


class Verdict(enum.Enum):
    """How the runner should treat the answer to one attempt."""

    OK = "ok"
    RETRY = "retry"  # server error, timeout, dropped connection
    THROTTLED = "throttled"  # the whole run must slow down
    PERMANENT = "permanent"  # the request itself is wrong; retrying changes nothing
    REJECTED = "rejected"  # credentials refused: the run cannot go on
    FORBIDDEN = "forbidden"  # the identity lacks a role or permission: the run cannot go on


class StatedLimit(NamedTuple):
    """The limit a throttling answer names (``limit:XX,time:1 second``): XX per that time."""

    requests: float
    seconds: float


@dataclass(frozen=True, slots=True)
class Attempt:
    """The answer to one request, classified by the API layer."""

    verdict: Verdict
    http_status: int | None = None
    error_code: str | None = None
    error: str | None = None
    request_id: str | None = None
    retry_after: float | None = None  # seconds the server asked us to wait
    limit: StatedLimit | None = None  # the limit a throttling answer named
    ambiguous: bool = False  # sent, but no answer: the server may have applied it


@dataclass(frozen=True, slots=True)
class ItemResult:
    """One line of the report: the final outcome of an item in this run.

    ``previous_img_url`` is the plan's thumbnail before the run, when known
    (``previous_known``); None then means it had none.
    """

    project_id: str
    plan_id: str
    img_url: str | None
    outcome: Outcome
    http_status: int | None
    error_code: str | None
    error: str | None
    attempts: int
    elapsed_ms: int
    finished_at: str
    request_id: str | None = None
    previous_img_url: str | None = None
    previous_known: bool = False

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
    examples: dict[str, str] = field(default_factory=dict)  # error code -> its first plan

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
            code = failure_label(result)
            self.error_codes[code] = self.error_codes.get(code, 0) + 1
            self.examples.setdefault(code, result.plan_id)


def failure_label(result: ItemResult) -> str:
    """A short name for why an item failed: the server's code, its status, or the transport's."""
    if result.error_code:
        return result.error_code
    if result.http_status:
        return f"HTTP {result.http_status}"
    # No answer at all: "cannot connect", "connection lost", "no answer within 30 s".
    return re.split(r"[:;]", result.error or "no answer", maxsplit=1)[0]


@dataclass(frozen=True, slots=True)
class PlanSummary:
    """One plan as the list call returns it; ``img_known`` is False when it omits img_url."""

    project_id: str
    plan_id: str
    name: str
    type: str
    img_url: str | None
    img_known: bool = True


@dataclass(frozen=True, slots=True)
class PlanPage:
    """One page of a project's plan list, and how many plans match in all."""

    plans: tuple[PlanSummary, ...]
    total: int | None  # None: the answer did not say
