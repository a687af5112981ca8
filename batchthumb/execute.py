"""Running a job: deciding what is left to do, then wiring journal, API and runner together."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from collections.abc import Set as AbstractSet
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from batchthumb.auth import Credentials, Redactor, StaticToken
from batchthumb.client import PlanApi, Transport, open_api
from batchthumb.errors import RunAborted
from batchthumb.jobwriter import Entry, render_job, write_text
from batchthumb.logs import JsonEvents
from batchthumb.model import DEFAULT_BREAKER, Item, ItemSource, Job, Settings, Tally
from batchthumb.plans import list_project, thumbnails
from batchthumb.progress import choose_progress
from batchthumb.ratelimit import RateGovernor, ThrottlePolicy
from batchthumb.report import (
    Journal,
    JournalState,
    compact,
    drop_torn_tail,
    key_digest,
    read_journal,
)
from batchthumb.runner import (
    Events,
    Key,
    NoEvents,
    RetryPolicy,
    RunSummary,
    Sender,
    Stop,
    Uploads,
    run_batch,
)


@dataclass(frozen=True, slots=True)
class Connection:
    """A resolved target: endpoint, credentials (not yet prepared) and transport."""

    endpoint: str
    credentials: Credentials
    transport: Transport


@dataclass(frozen=True, slots=True)
class RunOptions:
    """How to run a job, beyond its settings: report handling, progress, policies."""

    report: Path
    resume: bool = False
    retry_failed: bool = False
    progress: bool = True
    backoff: float = 1.0
    breaker: int = DEFAULT_BREAKER  # items failing alike in a row that stop the run; 0 = never
    throttle: ThrottlePolicy = field(default_factory=ThrottlePolicy)
    snapshot: bool = True  # list each project first, for previous_img_url and "already set"
    backup: Path | None = None  # write the previous state as a job file before any change


@dataclass(frozen=True, slots=True)
class Remaining:
    """The items of a job still to send, filtered as they stream by and counted once."""

    source: ItemSource
    keys: AbstractSet[bytes]  # key digests (report.key_digest)
    wanted: bool  # True: only the items in ``keys``; False: all but those
    count: int

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[Item]:
        keys, wanted = self.keys, self.wanted
        return (item for item in self.source if (key_digest(item.key) in keys) is wanted)


@dataclass(frozen=True, slots=True)
class RunPlan:
    """What a run is about to do, known before the first request."""

    pending: ItemSource
    skipped: int  # already done according to the report
    journal: JournalState

    def estimate(self, settings: Settings) -> float | None:
        """Seconds the run should take at the configured rate, if it has one."""
        if settings.rate <= 0:
            return None
        return max(0, len(self.pending) - settings.burst) / settings.rate


def plan_run(job: Job, options: RunOptions) -> RunPlan:
    """Read the report (when resuming) and pick the items still to send."""
    if not (options.resume or options.retry_failed):
        return RunPlan(job.items, 0, JournalState())
    journal = read_journal(options.report)
    keys = journal.failed if options.retry_failed else journal.done
    wanted = options.retry_failed
    # Counted in one streaming pass: a large job is never held as a list of pending items.
    count = sum((key_digest(item.key) in keys) is wanted for item in job.items)
    pending = Remaining(job.items, keys, wanted, count)
    return RunPlan(pending, len(job.items) - count, journal)


async def execute(
    plan: RunPlan,
    *,
    settings: Settings,
    endpoint: str,
    credentials: Credentials,
    options: RunOptions,
    stop: Stop,
    stderr: TextIO,
    log: TextIO | None = None,
    transport: Transport | None = None,
    warn: Callable[[str], None] = lambda message: None,
) -> RunSummary:
    """Send the plan's items and journal every outcome; compact the journal after a resume.

    ``credentials`` must be prepared (:meth:`~batchthumb.auth.Credentials.prepare`) already:
    a refused password is the caller's to report, outside any task group.

    First, unless ``options.snapshot`` is off, one paginated list call per project records
    each plan's current thumbnail (``previous_img_url``) and, with ``options.backup``, writes
    it as a job file; a project that cannot be listed aborts the run before any change.
    """
    appending = options.resume or options.retry_failed
    if appending and options.report.exists():
        drop_torn_tail(options.report, plan.journal)
    elif options.report.exists():
        # A fresh run starts a fresh report, keeping the last one: a run started without
        # --resume by mistake must not destroy what undo needs.
        options.report.replace(options.report.with_name(options.report.name + ".1"))
    # Read at each use: tokens renewed during the run are masked too.
    redact = Redactor(lambda: credentials.secrets)
    events: Events = NoEvents() if log is None else JsonEvents(log, redact=redact)
    events.emit(
        "start",
        items=len(plan.pending),
        skipped=plan.skipped,
        endpoint=endpoint,
        concurrency=settings.concurrency,
        rate=settings.rate,
        report=str(options.report),
    )
    governor = RateGovernor(rate=settings.rate, burst=settings.burst, policy=options.throttle)
    progress = choose_progress(
        stderr, enabled=options.progress, total=len(plan.pending), skipped=plan.skipped
    )
    sender = Sender(
        governor=governor,
        retry=RetryPolicy(
            retries=settings.retries, backoff=options.backoff, breaker=options.breaker
        ),
        stop=stop,
        events=events,
    )
    async with open_api(
        endpoint,
        credentials,
        concurrency=settings.concurrency,
        timeout=settings.timeout,
        transport=transport,
    ) as api:
        with Journal(options.report, redact=redact) as journal:
            started_at = _now()
            previous: dict[Key, str | None] = {}
            if options.snapshot:
                try:
                    previous = await snapshot(
                        api, sender, plan.pending, journal=journal, known=plan.journal, warn=warn
                    )
                except RunAborted as exc:
                    progress.close()
                    return RunSummary(
                        Tally(), 0.0, sender.requests, governor.stats, aborted=str(exc)
                    )
                if options.backup is not None:
                    write_backup(options.backup, plan.pending, previous, endpoint=endpoint)
            summary = await run_batch(
                plan.pending,
                api=api,
                governor=governor,
                journal=journal,
                concurrency=settings.concurrency,
                progress=progress,
                sender=sender,
                uploads=Uploads(done=dict(plan.journal.uploads)),
                previous=previous,
            )
            journal.record_run(run_facts(summary, settings, started_at=started_at))
    if appending and plan.journal.lines:
        compact(options.report)
    events.emit(
        "summary",
        succeeded=summary.tally.succeeded,
        failed=summary.tally.failed,
        skipped=plan.skipped,
        requests=summary.requests,
        elapsed_s=round(summary.elapsed, 3),
        throttled=summary.governor.throttled,
        settled_rate=summary.governor.rate,
        stopped=summary.stopped,
        aborted=summary.aborted,
    )
    return summary


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def run_facts(summary: RunSummary, settings: Settings, *, started_at: str) -> dict[str, Any]:
    """The run line of the report: what ``batchthumb report`` says about timing and throttling."""
    gov = summary.governor
    return {
        "started_at": started_at,
        "finished_at": _now(),
        "elapsed_ms": round(summary.elapsed * 1000),
        "requests": summary.requests,
        "succeeded": summary.tally.succeeded,
        "failed": summary.tally.failed,
        "skipped": summary.tally.skipped,
        "configured_rate": settings.rate,
        "throttled": gov.throttled,
        "rate_cuts": gov.rate_cuts,
        "settled_rate": gov.rate,
        "stopped": summary.stopped,
        "aborted": summary.aborted,
    }


async def snapshot(
    api: PlanApi,
    sender: Sender,
    items: Iterable[Item],
    *,
    journal: Journal,
    known: JournalState,
    warn: Callable[[str], None],
) -> dict[Key, str | None]:
    """The thumbnail of every plan the items name before the run: one list per project.

    Each project's list is journaled before any change, once: when a resumed run meets a
    project the journal already has, the journaled state wins, since the listing now may
    show changes of the run that was interrupted.
    """
    previous: dict[Key, str | None] = {}
    for project_id in dict.fromkeys(item.project_id for item in items):
        plans = await list_project(api, sender, project_id)
        if any(not p.img_known for p in plans):
            warn(
                f"the plan list of project {project_id} does not show img_url; previous "
                "thumbnails are unknown there, so undo cannot restore them"
            )
        current = thumbnails(plans)
        previous.update(current)
        if project_id not in known.snapshotted and current:
            journal.record_snapshot(project_id, {plan: url for (_, plan), url in current.items()})
    previous.update(known.previous)
    return previous


def write_backup(
    path: Path, items: Iterable[Item], previous: dict[Key, str | None], *, endpoint: str
) -> None:
    """Write the thumbnails the items are about to replace as a job that restores them."""
    entries: list[Entry] = []
    comments: list[str] = []
    for item in items:
        if item.key not in previous:
            comments.append(f"plan {item.plan_id}: previous thumbnail unknown")
        elif previous[item.key] is None:
            comments.append(f"plan {item.plan_id}: had no thumbnail")
        else:
            entries.append(Entry(item.project_id, item.plan_id, img_url=previous[item.key]))
    header = ["The thumbnails before the run; `batchthumb run` this file to restore them."]
    write_text(path, render_job(entries, header=header, comments=comments, endpoint=endpoint))


@asynccontextmanager
async def embedded_sandbox(job: Job) -> AsyncIterator[tuple[str, Credentials]]:
    """A sandbox on a free loopback port that knows every plan the job names."""
    import secrets

    from batchthumb.sandbox import Sandbox, SandboxConfig

    token = secrets.token_urlsafe(32)
    sandbox = Sandbox(SandboxConfig(tokens=frozenset({token}), autocreate=False))
    for number, item in enumerate(job.items, 1):
        if sandbox.plan(item.project_id, item.plan_id) is None:
            sandbox.add_plan(
                item.project_id, name=f"Plan {number}", type="gantt", plan_id=item.plan_id
            )
    async with sandbox.serve(host="127.0.0.1", port=0) as url:
        yield url, StaticToken(token)


@asynccontextmanager
async def open_session(
    connection: Connection,
    settings: Settings,
    *,
    backoff: float = 1.0,
    throttle: ThrottlePolicy | None = None,
) -> AsyncIterator[tuple[PlanApi, Sender]]:
    """An API and a sender paced like a run, for the commands that list before they act.

    The credentials are prepared first (an IAM token fetched), outside any task group, so a
    refused password is one clear error.
    """
    await connection.credentials.prepare()
    governor = RateGovernor(
        rate=settings.rate, burst=settings.burst, policy=throttle or ThrottlePolicy()
    )
    sender = Sender(governor=governor, retry=RetryPolicy(retries=settings.retries, backoff=backoff))
    async with open_api(
        connection.endpoint,
        connection.credentials,
        concurrency=settings.concurrency,
        timeout=settings.timeout,
        transport=connection.transport,
    ) as api:
        yield api, sender
