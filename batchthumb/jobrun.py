"""Running one job: the report's lock, what is left to do, the snapshot, the runner, the stops.

:func:`run_job` is the whole of a run, shared by ``run`` and ``migrate``; it never prints (it
talks through a :class:`~batchthumb.console.Console`) and never exits: it returns a
:class:`RunResult`, or raises a :class:`~batchthumb.errors.BatchthumbError`.
"""

from __future__ import annotations

import importlib.util
import shlex
import signal
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, TextIO

import anyio

from batchthumb.auth import Redactor
from batchthumb.client import PlanApi, open_api
from batchthumb.console import Console, Quiet
from batchthumb.errors import (
    EXIT_ABORTED,
    EXIT_INCOMPLETE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_SOME_FAILED,
    BatchthumbError,
)
from batchthumb.gallery import write_gallery
from batchthumb.history import remembered_uploads, rotate
from batchthumb.jobwriter import Entry, render_job, write_job
from batchthumb.model import Item, ItemResult, ItemStream, Job, RunSettings, Tally
from batchthumb.output import RunOutput, open_output
from batchthumb.progress import Silent, choose_progress, format_duration
from batchthumb.report import (
    Journal,
    ReportState,
    compact,
    drop_torn_tail,
    key_digest,
    read_report,
    report_lock,
)
from batchthumb.runner import Key, Recorder, RunSummary, Uploads, run_batch
from batchthumb.sending import Channel, Sender, Stop
from batchthumb.session import Connection, embedded_sandbox, make_sender
from batchthumb.snapshot import Snapshot
from batchthumb.summarize import ReportFile
from batchthumb.summary import format_summary

TIME_LIMIT = "time limit reached"

# Given the items about to be sent, what to call with each result once it is recorded
# (a migration of many project pairs says when each pair is done).
Watch = Callable[[ItemStream], Callable[[ItemResult], None]]


@dataclass(frozen=True, slots=True)
class RunResult:
    """What a run did: the counts before it, the runner's summary, and what is left to do."""

    report: Path
    total: int  # items in the job
    skipped: int  # already done according to the report
    summary: RunSummary | None  # None: nothing was left to send
    configured_rate: float
    unfinished: int = 0  # items the report does not record as done once the run is over
    unattempted: int = 0  # --retry-failed: items the report records neither done nor failed
    rerun: tuple[str, ...] = ()  # the command line that runs this job again (no --resume)
    quiet: bool = False  # print the summary only when the job is not done
    json_only: bool = False  # stderr holds JSON events only: the summary is one of them

    @property
    def exit_code(self) -> int:
        """0 every item done, 1 some failed, 3 aborted, 4 out of time or never attempted,
        130 interrupted."""
        summary = self.summary
        if summary is not None:
            if summary.aborted:
                return EXIT_ABORTED
            if summary.stopped == TIME_LIMIT:
                return EXIT_INCOMPLETE
            if summary.stopped:
                return EXIT_INTERRUPTED
            if summary.tally.failed:
                return EXIT_SOME_FAILED
        return EXIT_INCOMPLETE if self.unfinished else EXIT_OK

    def stdout_lines(self) -> list[str]:
        """Nothing: a run's output is its report."""
        return []

    def stderr_lines(self) -> list[str]:
        """The summary, why the run gave up if it did, the report, and how to finish."""
        if self.json_only or (self.quiet and self.exit_code == EXIT_OK):
            return []
        return self.lines()

    def lines(self) -> list[str]:
        """The whole summary, whoever reads it (stderr, the log file)."""
        lines = []
        if self.summary is not None:
            lines.append(
                format_summary(
                    self.summary, configured_rate=self.configured_rate, skipped=self.skipped
                )
            )
            if self.summary.aborted:
                lines.append(f"batchthumb: aborted: {self.summary.aborted}")
        if self.unattempted:
            lines.append(
                f"batchthumb: {self.unattempted} items were never attempted (the run that "
                "wrote the report stopped before them); --retry-failed does not send them"
            )
        lines.append(f"report: {self.report}")
        finish = self.finish_command()
        if finish:
            lines.append(f"to finish: {finish}")
        elif self.unfinished:  # a caller that gave no command line (migrate: many flags)
            lines.append("to finish: run the same command again with --resume")
        return lines

    def finish_command(self) -> str | None:
        """The command that finishes the job: ``--resume`` when items were never sent, else
        ``--retry-failed`` for the failed ones; None when nothing is left."""
        if not self.unfinished or not self.rerun:
            return None
        summary = self.summary
        failed_only = (
            summary is not None
            and not summary.stopped
            and not summary.aborted
            and self.unattempted == 0
            and summary.tally.failed == self.unfinished
        )
        flag = "--retry-failed" if failed_only else "--resume"
        return shlex.join((*self.rerun, flag))


@dataclass(frozen=True, slots=True)
class Remaining:
    """The items of a job still to send, filtered as they stream by and counted once."""

    items: ItemStream
    keys: AbstractSet[bytes]  # key digests (report.key_digest)
    wanted: bool  # True: only the items in ``keys``; False: all but those
    count: int

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[Item]:
        keys, wanted = self.keys, self.wanted
        return (item for item in self.items if (key_digest(item.key) in keys) is wanted)


@dataclass(frozen=True, slots=True)
class RunPlan:
    """What a run is about to do, known before the first request."""

    pending: ItemStream
    skipped: int  # already done according to the report
    recorded: ReportState  # what the report says was done, when resuming
    unattempted: int = 0  # --retry-failed: items neither done nor failed (not sent)
    projects: int = 0  # projects the pending items name: what the snapshot lists
    # Uploads earlier reports of the history record, trusted once a plan is seen showing them.
    remembered: dict[Key, str] = field(default_factory=dict)

    def estimate(self, settings: RunSettings) -> float | None:
        """Seconds the run should take at the configured rate, if it has one."""
        if settings.rate <= 0:
            return None
        return max(0, len(self.pending) - settings.burst) / settings.rate


def plan_run(job: Job, settings: RunSettings, report: Path) -> RunPlan:
    """Read the report (when resuming) and its history, and pick the items still to send."""
    remembered = remembered_uploads(report)
    if not (settings.resume or settings.retry_failed):
        return RunPlan(
            job.items, 0, ReportState(), projects=len(job.projects), remembered=remembered
        )
    recorded = read_report(report)
    done = failed = 0
    projects: set[str] = set()
    # Counted in one streaming pass: a large job is never held as a list of pending items.
    for item in job.items:
        digest = key_digest(item.key)
        was_done, was_failed = digest in recorded.done, digest in recorded.failed
        done += was_done
        failed += was_failed
        if was_failed if settings.retry_failed else not was_done:
            projects.add(item.project_id)
    if settings.retry_failed:
        pending = Remaining(job.items, recorded.failed, True, failed)
        unattempted = len(job.items) - done - failed
    else:
        pending = Remaining(job.items, recorded.done, False, len(job.items) - done)
        unattempted = 0
    return RunPlan(pending, done, recorded, unattempted, len(projects), remembered)


def headline(job: Job, plan: RunPlan, settings: RunSettings) -> str:
    """``N of M plans to set, K already done[, U never attempted][, about T at R/s]``."""
    estimate = plan.estimate(settings)
    took = f", about {format_duration(estimate)} at {settings.rate:g}/s" if estimate else ""
    never = f", {plan.unattempted} never attempted" if plan.unattempted else ""
    verb = "retry" if settings.retry_failed else "set"
    return (
        f"{len(plan.pending)} of {len(job.items)} plans to {verb}, {plan.skipped} already done"
        f"{never}{took}"
    )


def rerun_command(job: Job, settings: RunSettings, report: Path) -> tuple[str, ...]:
    """``batchthumb run JOB --report R [--endpoint E]``: this job again, as it was run."""
    command = ["batchthumb", "run", str(job.path), "--report", str(report)]
    if settings.endpoint is not None and settings.endpoint != job.settings.endpoint:
        command += ["--endpoint", settings.endpoint]
    return tuple(command)


def run_job(
    job: Job,
    settings: RunSettings,
    *,
    console: Console | None = None,
    connection: Connection | None = None,
    source: Connection | None = None,
    watch: Watch | None = None,
    watch_signals: bool = False,
    rerun: Sequence[str] | None = None,
) -> RunResult:
    """Run a job under its report's lock; ``connection`` None means an embedded sandbox.

    ``source``: where a migration's source images are downloaded from, when that is another
    endpoint or account than ``connection`` (its own session, credentials and pacing).

    With ``watch_signals`` (the CLI), the first SIGINT or SIGTERM stops gracefully and the
    second at once; only in the main thread, the only one Python delivers signals to.
    ``rerun`` is the command line that runs the job again, for the summary's hint (default:
    :func:`rerun_command`).
    """
    report = settings.report_for(job.path)
    with open_output(settings, console or Quiet()) as output:
        with report_lock(report, wait=settings.lock_wait, on_wait=output.status):
            plan = plan_run(job, settings, report)
            if plan.recorded.torn_line:
                output.warn(
                    f"{report}:{plan.recorded.torn_line}: ignoring a torn last line "
                    "(the previous run was killed while writing it)"
                )
            output.status(f"{headline(job, plan, settings)}; report: {report}")
            summary = None
            if len(plan.pending):
                run = partial(
                    _run_in_loop, job, plan, settings, report, connection, output,
                    watch_signals, source, watch,
                )  # fmt: skip
                summary = anyio.run(run, backend_options=_backend_options())
        tally = summary.tally if summary is not None else Tally()
        result = RunResult(
            report,
            len(job.items),
            plan.skipped,
            summary,
            settings.rate,
            unfinished=len(job.items) - plan.skipped - tally.succeeded - tally.skipped,
            unattempted=plan.unattempted,
            rerun=tuple(rerun) if rerun is not None else rerun_command(job, settings, report),
            quiet=settings.quiet,
            json_only=output.json_on_console,
        )
        output.log_only(result.lines())
        output.emit(
            "result",
            exit_code=result.exit_code,
            unfinished=result.unfinished,
            unattempted=result.unattempted or None,
            report=str(report),
            finish=result.finish_command(),
        )
    return result


def _backend_options() -> dict[str, object]:
    """uvloop when it is installed (the ``uvloop`` extra): less CPU per request."""
    return {"use_uvloop": True} if importlib.util.find_spec("uvloop") else {}


@asynccontextmanager
async def _target(
    job: Job, connection: Connection | None, console: Console
) -> AsyncIterator[Connection]:
    """Where requests go: the given connection, or an embedded sandbox when there is none."""
    if connection is not None:
        yield connection
        return
    async with embedded_sandbox(job) as sandbox:
        console.status(f"sandbox at {sandbox.endpoint}")
        yield sandbox


async def _run_in_loop(
    job: Job,
    plan: RunPlan,
    settings: RunSettings,
    report: Path,
    connection: Connection | None,
    output: RunOutput,
    watch_signals: bool,
    source: Connection | None,
    watch: Watch | None,
) -> RunSummary:
    stop = Stop()
    async with _target(job, connection, output) as target:
        # Fetch the first IAM token here, outside any task group, so a wrong password is one
        # clear message (exit 3) rather than an exception group.
        await target.credentials.prepare()
        if source is not None:
            await source.credentials.prepare()
        failure: BatchthumbError | None = None
        async with anyio.create_task_group() as tasks:
            if watch_signals and threading.current_thread() is threading.main_thread():
                tasks.start_soon(_watch_signals, stop, output)
            if settings.max_duration is not None:
                tasks.start_soon(_stop_at_deadline, stop, settings.max_duration, output)
            try:
                summary = await run_plan(
                    plan,
                    settings=settings,
                    report=report,
                    connection=target,
                    stop=stop,
                    console=output,
                    source=source,
                    watch=watch,
                )
            except BatchthumbError as exc:  # raised below, not wrapped in an exception group
                failure = exc
            tasks.cancel_scope.cancel()
        if failure is not None:
            raise failure
        if settings.gallery is not None and not summary.aborted:
            # Here, while the target is still there: an embedded sandbox ends with the run.
            made = await write_gallery([ReportFile(report)], settings.gallery, target, settings)
            output.status(f"gallery of {made.plans} plans: {made.index}")
    return summary


async def _stop_at_deadline(stop: Stop, seconds: float, console: Console) -> None:
    await anyio.sleep(seconds)
    console.status("--max-duration reached: finishing requests in flight")
    stop.request(TIME_LIMIT)


async def _watch_signals(stop: Stop, console: Console) -> None:
    """First SIGINT/SIGTERM: graceful stop; the second: stop at once."""
    signals_seen = 0
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            signals_seen += 1
            name = signal.Signals(signum).name
            if signals_seen == 1:
                console.status(
                    f"{name}: finishing requests in flight, then stopping "
                    "(send it again to stop at once)"
                )
                stop.request("interrupted")
            else:
                stop.force("interrupted")


async def run_plan(
    plan: RunPlan,
    *,
    settings: RunSettings,
    report: Path,
    connection: Connection,
    stop: Stop,
    console: Console,
    log: TextIO | None = None,
    source: Connection | None = None,
    watch: Watch | None = None,
) -> RunSummary:
    """Send the plan's items and journal every outcome; compact the report after a resume.

    ``connection.credentials`` (and ``source``'s) must be prepared already: a refused password
    is the caller's to report, outside any task group. With ``source``, source images are
    downloaded through a second session with its own credentials and its own sender (rate
    limit, throttling), sharing the run's stop; nothing of one side is sent to the other.
    ``console`` is the run's
    :class:`~batchthumb.output.RunOutput`, or any console (then ``log``, if given, gets the
    JSON events).

    Unless ``settings.snapshot`` is off, one paginated listing per project records each plan's
    current thumbnail (``previous_img_url``), journaled before that project's first change:
    the workers list each project when its first item comes (:mod:`batchthumb.snapshot`), so
    listings and PUTs overlap. With ``settings.backup`` every project is listed first (the
    backup is written before any change). A project that cannot be listed fails its own items;
    refused credentials abort the run.
    """
    if not isinstance(console, RunOutput):
        console = RunOutput(console, replace(settings, log_json=log is not None), log)
    output = console
    appending = settings.resume or settings.retry_failed
    credentials = connection.credentials
    sides = [credentials] if source is None else [credentials, source.credentials]
    # Read at each use: tokens renewed during the run are masked too.
    output.redact = Redactor(lambda: [secret for side in sides for secret in side.secrets])
    # A log that cannot be written stops the run gracefully: what is in flight is journaled.
    output.on_log_error = lambda exc: stop.request("the log cannot be written")
    # No more workers, nor pooled connections, than there are items to send.
    workers = max(1, min(settings.concurrency, len(plan.pending)))
    output.emit(
        "start",
        items=len(plan.pending),
        skipped=plan.skipped,
        endpoint=connection.endpoint,
        **({} if source is None else {"source_endpoint": source.endpoint}),
        concurrency=settings.concurrency,
        workers=workers,
        rate=settings.rate,
        report=str(report),
    )
    output.check_log()  # before the report is touched: a log that fails at once changes nothing
    _prepare_report(report, plan, appending=appending, keep=settings.history)
    stream = output.stream
    progress = (
        Silent()
        if stream is None
        else choose_progress(
            stream, enabled=settings.progress, total=len(plan.pending), skipped=plan.skipped
        )
    )
    sender = make_sender(settings, stop=stop, events=output)
    async with AsyncExitStack() as stack:
        api = await stack.enter_async_context(_api(connection, settings, workers))
        downloads = None
        if source is not None:
            source_api = await stack.enter_async_context(_api(source, settings, workers))
            downloads = Channel(source_api, make_sender(settings, stop=stop, events=output))
        with Journal(report, redact=output.redact) as journal:
            journal.record_start(
                endpoint=connection.endpoint,
                items=len(plan.pending),
                resumed=settings.resume,
                retry_failed=settings.retry_failed,
            )
            began = time.monotonic()
            started_at = _now()
            listings = None
            # The projects in job order, read apart from the workers' stream (see snapshot).
            ahead = (item.project_id for item in plan.pending)
            if settings.snapshot:
                listings = Snapshot(
                    api, sender, journal, output, progress, known=plan.recorded,
                    total=plan.projects, ahead=ahead, max_pages=settings.max_list_pages,
                )  # fmt: skip
            try:
                if listings is not None and settings.backup is not None:
                    # The backup is written before the first change: every project listed first.
                    if not await listings.list_all(ahead, concurrency=settings.concurrency):
                        progress.close()
                        summary = _unstarted(sender, time.monotonic() - began)
                        journal.record_run(run_facts(summary, settings, started_at=started_at))
                        return summary
                    write_backup(
                        settings.backup, plan.pending, listings.previous,
                        endpoint=connection.endpoint, console=output,
                    )  # fmt: skip
                uploads = Uploads(done=dict(plan.recorded.uploads), remembered=plan.remembered)
                recorder: Recorder = journal
                if watch is not None:
                    recorder = _Watched(journal, watch(plan.pending))
                summary = await run_batch(
                    plan.pending,
                    api=api,
                    sender=sender,
                    journal=recorder,
                    concurrency=workers,
                    progress=progress,
                    uploads=uploads,
                    previous=listings.previous if listings is not None else None,
                    listings=listings,
                    downloads=downloads,
                )
            finally:
                ahead.close()  # a job file read for it is closed at once
            # The summary's time includes the listings made before the run (--backup).
            summary = replace(summary, elapsed=max(summary.elapsed, time.monotonic() - began))
            journal.record_run(run_facts(summary, settings, started_at=started_at))
    if appending and plan.recorded.lines:
        compact(report)
    output.emit(
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
        errors=summary.tally.error_codes or None,
        report=str(report),
    )
    output.check_log()
    return summary


def _api(
    connection: Connection, settings: RunSettings, workers: int
) -> AbstractAsyncContextManager[PlanApi]:
    return open_api(
        connection.endpoint,
        connection.credentials,
        concurrency=workers,
        timeout=settings.timeout,
        transport=connection.transport,
        max_answer_bytes=settings.max_answer_bytes,
    )


@dataclass(frozen=True, slots=True)
class _Watched:
    """The journal, and a watcher told of each result once it is recorded."""

    journal: Recorder
    seen: Callable[[ItemResult], None]

    def record(self, result: ItemResult) -> None:
        self.journal.record(result)
        self.seen(result)

    def record_upload(self, project_id: str, cache_key: str, img_url: str) -> None:
        self.journal.record_upload(project_id, cache_key, img_url)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def run_facts(summary: RunSummary, settings: RunSettings, *, started_at: str) -> dict[str, Any]:
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


def _prepare_report(report: Path, plan: RunPlan, *, appending: bool, keep: int) -> None:
    """Resuming: drop a torn last line. Else start a fresh report, keeping the history."""
    if appending and report.exists():
        drop_torn_tail(report, plan.recorded)
    elif not appending:
        # A run started without --resume by mistake must not destroy what undo needs.
        rotate(report, keep=keep)


def _unstarted(sender: Sender, elapsed: float) -> RunSummary:
    """The summary of a run that stopped or gave up while listing, before any change."""
    reason = sender.stop.reason
    return RunSummary(
        Tally(),
        elapsed,
        sender.requests,
        sender.governor.stats,
        stopped=reason if reason != "aborted" else None,
        aborted=sender.aborted,
    )


def write_backup(
    path: Path,
    items: Iterable[Item],
    previous: Mapping[Key, str | None],
    *,
    endpoint: str,
    console: Console,
) -> None:
    """Write the thumbnails the items are about to replace as a job that restores them.

    When no plan had one there is nothing to restore: no file (an empty job is not a valid
    one), and the console says so.
    """
    entries: list[Entry] = []
    comments: list[str] = []
    for item in items:
        if item.key not in previous:
            comments.append(f"plan {item.plan_id}: previous thumbnail unknown")
        elif previous[item.key] is None:
            comments.append(f"plan {item.plan_id}: had no thumbnail")
        else:
            entries.append(Entry(item.project_id, item.plan_id, img_url=previous[item.key]))
    if not entries:
        console.warn(
            f"--backup: none of the {len(comments)} plans has a thumbnail to back up; "
            f"{path} not written"
        )
        return
    header = ["The thumbnails before the run; `batchthumb run` this file to restore them."]
    written = write_job(
        path, render_job(entries, header=header, comments=comments, endpoint=endpoint)
    )
    kept = f" (the previous one kept as {written.kept})" if written.kept else ""
    console.status(f"backup of {len(entries)} thumbnails: {path}{kept}")
