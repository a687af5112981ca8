"""Running a job: deciding what is left to do, then wiring journal, API and runner together."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from batchthumb.auth import Credentials, Redactor, StaticToken
from batchthumb.client import open_api
from batchthumb.logs import JsonEvents
from batchthumb.model import Item, ItemSource, Job, Settings
from batchthumb.progress import choose_progress
from batchthumb.ratelimit import RateGovernor, ThrottlePolicy
from batchthumb.report import Journal, JournalState, compact, drop_torn_tail, read_journal
from batchthumb.runner import Events, NoEvents, RetryPolicy, RunSummary, Stop, run_batch


@dataclass(frozen=True, slots=True)
class RunOptions:
    """How to run a job, beyond its settings: report handling, progress, policies."""

    report: Path
    resume: bool = False
    retry_failed: bool = False
    progress: bool = True
    backoff: float = 1.0
    throttle: ThrottlePolicy = field(default_factory=ThrottlePolicy)


@dataclass(frozen=True, slots=True)
class Remaining:
    """The items of a job still to send, filtered as they stream by and counted once."""

    source: ItemSource
    keys: frozenset[tuple[str, str]]
    wanted: bool  # True: only the items in ``keys``; False: all but those
    count: int

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[Item]:
        keys, wanted = self.keys, self.wanted
        return (item for item in self.source if (item.key in keys) is wanted)


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
    keys = journal.failed if options.retry_failed else journal.succeeded
    wanted = options.retry_failed
    # Counted in one streaming pass: a large job is never held as a list of pending items.
    count = sum((item.key in keys) is wanted for item in job.items)
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
) -> RunSummary:
    """Send the plan's items and journal every outcome; compact the journal after a resume."""
    appending = options.resume or options.retry_failed
    if appending and options.report.exists():
        drop_torn_tail(options.report, plan.journal)
    elif options.report.exists():
        options.report.write_bytes(b"")  # a fresh run starts a fresh report
    redact = Redactor(credentials.secrets)
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
    async with open_api(
        endpoint, credentials, concurrency=settings.concurrency, timeout=settings.timeout
    ) as api:
        with Journal(options.report, redact=redact) as journal:
            summary = await run_batch(
                plan.pending,
                api=api,
                governor=governor,
                journal=journal,
                concurrency=settings.concurrency,
                retry=RetryPolicy(retries=settings.retries, backoff=options.backoff),
                progress=progress,
                stop=stop,
                events=events,
            )
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
