"""The run: a fixed pool of workers in one task group, pulling items from a shared stream.

Each worker takes the next item, waits for the rate governor, sends, classifies, retries what is
worth retrying, and journals the outcome. A million items never become a million tasks. The
runner never prints and never exits; it returns a :class:`RunSummary`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any, Protocol, TypeVar

import anyio

from batchthumb.model import Attempt, Item, ItemResult, Outcome, Tally, Verdict
from batchthumb.progress import Progress, Silent
from batchthumb.ratelimit import GovernorStats, RateGovernor

_T = TypeVar("_T")


class ThumbnailApi(Protocol):
    """What the runner needs of the API."""

    async def set_thumbnail(self, project_id: str, plan_id: str, img_url: str) -> Attempt:
        """Set one plan's thumbnail; classify the answer."""
        ...


class Recorder(Protocol):
    """Where finished items go (the journal)."""

    def record(self, result: ItemResult) -> None:
        """Keep one result durably before the next item counts."""
        ...


class Events(Protocol):
    """Notable moments of a run, for machine-readable logs."""

    def emit(self, event: str, **fields: Any) -> None:
        """Record one event."""
        ...


class NoEvents:
    """Discards events."""

    def emit(self, event: str, **fields: Any) -> None:
        """Nothing to record."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently a failed attempt is tried again."""

    retries: int = 6
    backoff: float = 1.0  # base delay in seconds; 0 means never wait (tests)
    max_backoff: float = 60.0
    breaker: int = 25  # this many items in a row failing the same way stop the run; 0 = never


class Stop:
    """A graceful stop: start nothing new, let what is in flight finish."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self._waits: set[anyio.CancelScope] = set()
        self._runs: set[anyio.CancelScope] = set()

    @property
    def requested(self) -> bool:
        """True once anyone asked the run to stop."""
        return self.reason is not None

    def request(self, reason: str) -> None:
        """Ask the run to stop; waits for pacing or backoff end at once, requests do not."""
        if self.reason is None:
            self.reason = reason
        for scope in self._waits:
            scope.cancel()

    def force(self, reason: str) -> None:
        """Stop at once: cancel requests in flight too (they are not journaled)."""
        self.request(reason)
        for scope in self._runs:
            scope.cancel()

    def bind(self, scope: anyio.CancelScope) -> None:
        """Let :meth:`force` cancel this scope (the runner's workers)."""
        self._runs.add(scope)

    async def wait(self, waiting: Callable[[], Awaitable[_T]]) -> _T | None:
        """Run a wait that a stop interrupts; None if it was interrupted."""
        if self.requested:
            return None
        with anyio.CancelScope() as scope:
            self._waits.add(scope)
            try:
                return await waiting()
            finally:
                self._waits.discard(scope)
        return None


@dataclass(frozen=True, slots=True)
class RunSummary:
    """What a run did, for the summary and the exit code."""

    tally: Tally
    elapsed: float
    requests: int
    governor: GovernorStats
    stopped: str | None = None  # why the run stopped before the end, if it did
    aborted: str | None = None  # why the run gave up, if it did


@dataclass(slots=True)
class _Run:
    api: ThumbnailApi
    governor: RateGovernor
    journal: Recorder
    progress: Progress
    retry: RetryPolicy
    stop: Stop
    events: Events
    clock: Callable[[], float]
    sleep: Callable[[float], Awaitable[None]]
    jitter: Callable[[], float]
    tally: Tally = field(default_factory=Tally)
    requests: int = 0
    aborted: str | None = None
    streak: tuple[object, int] = (None, 0)  # (failure signature, items in a row)

    async def work(self, items: Iterator[Item]) -> None:
        for item in items:
            if self.stop.requested:
                return
            result = await self.process(item)
            if result is None:
                return
            self.journal.record(result)
            self.tally.add(result)
            self.progress.update(self.tally)
            if result.outcome is Outcome.FAILED:
                self.events.emit("item_failed", **_event_fields(result))
            self.trip_breaker(result)

    async def process(self, item: Item) -> ItemResult | None:
        """Send one item until it succeeds, fails for good, or the run stops (None)."""
        began = self.clock()
        attempts = 0
        while True:
            started = None if self.stop.requested else self.governor.try_acquire()
            if started is None:
                started = await self.stop.wait(self.governor.acquire)
            if started is None:
                return None
            attempts += 1
            self.requests += 1
            attempt = await self.api.set_thumbnail(item.project_id, item.plan_id, item.img_url)
            verdict = attempt.verdict
            if verdict is Verdict.OK:
                self.governor.on_success()
                return self.result(item, Outcome.SUCCEEDED, attempt, attempts, began)
            if verdict is Verdict.REJECTED:
                self.abort(attempt)
                return self.result(item, Outcome.FAILED, attempt, attempts, began)
            if verdict is Verdict.PERMANENT:
                return self.result(item, Outcome.FAILED, attempt, attempts, began)
            if verdict is Verdict.THROTTLED:
                self.governor.on_throttle(started_at=started, retry_after=attempt.retry_after)
                self.events.emit("throttled", plan_id=item.plan_id, **_attempt_fields(attempt))
            if attempts > self.retry.retries:
                return self.result(item, Outcome.FAILED, attempt, attempts, began)
            self.events.emit(
                "retry", plan_id=item.plan_id, attempt=attempts, **_attempt_fields(attempt)
            )
            if verdict is Verdict.RETRY:
                delay = self.backoff(attempts, attempt.retry_after)
                if delay > 0 and await self.stop.wait(partial(self.pause, delay)) is None:
                    return None

    async def pause(self, seconds: float) -> bool:
        await self.sleep(seconds)
        return True

    def backoff(self, attempts: int, retry_after: float | None) -> float:
        """Exponential backoff with full jitter, never shorter than the server asked."""
        policy = self.retry
        ceiling = min(policy.max_backoff, policy.backoff * 2.0 ** (attempts - 1))
        delay = self.jitter() * ceiling
        if retry_after is not None and policy.backoff > 0:
            delay = max(delay, min(retry_after, policy.max_backoff))
        return delay

    def result(
        self, item: Item, outcome: Outcome, attempt: Attempt, attempts: int, began: float
    ) -> ItemResult:
        return ItemResult(
            project_id=item.project_id,
            plan_id=item.plan_id,
            img_url=item.img_url,
            outcome=outcome,
            http_status=attempt.http_status,
            error_code=attempt.error_code,
            error=attempt.error,
            attempts=attempts,
            elapsed_ms=round((self.clock() - began) * 1000),
            finished_at=datetime.now(UTC).isoformat(timespec="milliseconds"),
            request_id=attempt.request_id,
        )

    def abort(self, attempt: Attempt) -> None:
        if self.aborted is None:
            code = f" {attempt.error_code}" if attempt.error_code else ""
            detail = f": {attempt.error}" if attempt.error else ""
            self.aborted = (
                f"the server rejected the credentials (HTTP {attempt.http_status}{code}{detail})"
            )
        self.stop.request("aborted")

    def trip_breaker(self, result: ItemResult) -> None:
        """Stop when items keep failing the same permanent way: the job, not the item, is wrong."""
        if self.retry.breaker <= 0:
            return
        status = result.http_status or 0
        if result.outcome is not Outcome.FAILED or not 400 <= status < 500 or status in (408, 429):
            self.streak = (None, 0)
            return
        signature = (result.http_status, result.error_code)
        count = self.streak[1] + 1 if self.streak[0] == signature else 1
        self.streak = (signature, count)
        if count >= self.retry.breaker and self.aborted is None:
            code = f" {result.error_code}" if result.error_code else ""
            self.aborted = (
                f"{count} items in a row failed with HTTP {result.http_status}{code} "
                f"({result.error}); check the endpoint and the job before running again"
            )
            self.stop.request("aborted")


def _attempt_fields(attempt: Attempt) -> dict[str, Any]:
    return {
        "http_status": attempt.http_status,
        "error_code": attempt.error_code,
        "error": attempt.error,
        "retry_after": attempt.retry_after,
    }


def _event_fields(result: ItemResult) -> dict[str, Any]:
    return {
        "project_id": result.project_id,
        "plan_id": result.plan_id,
        "http_status": result.http_status,
        "error_code": result.error_code,
        "error": result.error,
        "attempts": result.attempts,
    }


async def run_batch(
    items: Iterable[Item],
    *,
    api: ThumbnailApi,
    governor: RateGovernor,
    journal: Recorder,
    concurrency: int,
    retry: RetryPolicy | None = None,
    progress: Progress | None = None,
    stop: Stop | None = None,
    events: Events | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    jitter: Callable[[], float] = random.random,
) -> RunSummary:
    """Set every item's thumbnail with ``concurrency`` workers; journal each outcome."""
    run = _Run(
        api=api,
        governor=governor,
        journal=journal,
        progress=progress or Silent(),
        retry=retry or RetryPolicy(),
        stop=stop or Stop(),
        events=events or NoEvents(),
        clock=clock,
        sleep=sleep,
        jitter=jitter,
    )
    began = clock()
    shared = iter(items)  # one iterator for all workers: each item is taken exactly once
    async with anyio.create_task_group() as outer:
        outer.start_soon(run.progress.heartbeat, run.tally)
        async with anyio.create_task_group() as workers:
            run.stop.bind(workers.cancel_scope)
            for _ in range(concurrency):
                workers.start_soon(run.work, shared)
        outer.cancel_scope.cancel()
    run.progress.close()
    stopped = run.stop.reason if run.stop.reason != "aborted" else None
    return RunSummary(
        tally=run.tally,
        elapsed=clock() - began,
        requests=run.requests,
        governor=governor.stats,
        stopped=stopped,
        aborted=run.aborted,
    )
