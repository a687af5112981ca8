"""Sending one request of a run: pacing, retries, throttling, the abort rule, and stopping.

Every request of a run (PUTs, uploads, downloads, list calls) to one endpoint goes through one
:class:`Sender`, so the runner, the plan listing and the migration share it; they import it from
here, below all of them. A migration between regions or accounts has two: a :class:`Channel`
per side, each with its own rate limit and throttling, since each side's gateway has its own.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol, TypeVar

import anyio

from batchthumb.model import Attempt, PlanPage, Verdict
from batchthumb.ratelimit import RateGovernor

_T = TypeVar("_T")


class ThumbnailApi(Protocol):
    """What the runner needs of the API."""

    async def set_thumbnail(self, project_id: str, plan_id: str, img_url: str) -> Attempt:
        """Set one plan's thumbnail; classify the answer."""
        ...

    async def upload_image(
        self, project_id: str, data: bytes, filename: str
    ) -> tuple[Attempt, str | None]:
        """Upload image bytes to a project; the answer and, on success, the new img_url."""
        ...

    async def download_image(self, project_id: str, img_url: str) -> tuple[Attempt, bytes | None]:
        """Download an image of a project; the answer and, on success, its bytes."""
        ...

    async def list_plans(
        self,
        project_id: str,
        *,
        page_no: int,
        page_size: int,
        plan_type: str | None = None,
        search: str | None = None,
    ) -> tuple[Attempt, PlanPage | None]:
        """One page of a project's plans."""
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


# An item gives up after this many 429s per allowed retry (retries count other failures).
THROTTLE_PATIENCE = 5


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently a failed attempt is tried again."""

    retries: int
    backoff: float  # base delay in seconds; 0 means never wait (tests)
    max_backoff: float = 60.0
    breaker: int = 0  # items in a row failing the same way that stop the run; 0 = never


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


@dataclass(slots=True)
class Sender:
    """Sends one request until it succeeds, fails for good, or the run stops.

    Every request of a run goes through here, so PUTs, uploads, downloads and list calls share
    one rate governor, one retry policy, one throttling response, and one abort rule.
    """

    governor: RateGovernor
    retry: RetryPolicy
    stop: Stop = field(default_factory=Stop)
    events: Events = field(default_factory=NoEvents)
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep
    jitter: Callable[[], float] = random.random
    requests: int = 0
    aborted: str | None = None

    async def send(
        self, request: Callable[[], Awaitable[tuple[Attempt, _T]]], *, subject: str
    ) -> tuple[Attempt, _T, int] | None:
        """The final answer, its value and the attempts it took; None if the run stopped."""
        values: list[_T] = []

        async def attempt() -> Attempt:
            answer, value = await request()
            values.append(value)
            return answer

        sent = await self.send_attempt(attempt, subject=subject)
        if sent is None:
            return None
        return sent[0], values[-1], sent[1]

    async def send_attempt(
        self, request: Callable[..., Awaitable[Attempt]], *args: Any, subject: str
    ) -> tuple[Attempt, int] | None:
        """``request(*args)`` until it is final: the last answer and the attempts it took.

        None if the run stopped. Takes the arguments rather than a closure: every PUT of a run
        comes through here, and a closure per item was a measurable share of the client's CPU.
        """
        attempts = 0
        throttles = 0
        while True:
            started = None if self.stop.requested else self.governor.try_acquire()
            if started is None:
                started = await self.stop.wait(self.governor.acquire)
            if started is None:
                return None
            attempts += 1
            self.requests += 1
            try:
                attempt = await request(*args)
            except BaseException:
                self.governor.on_answer()  # cancelled or failed: no longer in flight
                raise
            verdict = attempt.verdict
            if verdict is Verdict.OK:
                self.governor.on_success()
                return attempt, attempts
            if verdict is not Verdict.THROTTLED:
                self.governor.on_answer()
            if verdict is Verdict.REJECTED or verdict is Verdict.FORBIDDEN:
                self.abort(attempt)
                return attempt, attempts
            if verdict is Verdict.PERMANENT:
                return attempt, attempts
            if verdict is Verdict.THROTTLED:
                throttles += 1
                self.governor.on_throttle(
                    started_at=started, retry_after=attempt.retry_after, stated=attempt.limit
                )
                self.events.emit("throttled", subject=subject, **_attempt_fields(attempt))
            # A 429 is the whole run's wait (the governor's), not this item's failure: a window
            # closed for a minute must not fail the items that probe it. Bounded all the same.
            retries = self.retry.retries
            if attempts - throttles > retries or throttles > THROTTLE_PATIENCE * retries:
                return attempt, attempts
            throttled = verdict is Verdict.THROTTLED or None  # None: left out of the event
            self.events.emit(
                "retry", subject=subject, attempt=attempts, throttled=throttled,
                **_attempt_fields(attempt),
            )  # fmt: skip
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

    def abort(self, attempt: Attempt) -> None:
        """Give up the run: the server refused the credentials or the permission."""
        if self.aborted is None:
            if attempt.verdict is Verdict.FORBIDDEN:
                code = f" {attempt.error_code}" if attempt.error_code else ""
                self.aborted = (
                    f"permission refused (HTTP {attempt.http_status}{code}): {attempt.error}"
                )
            elif attempt.http_status is None:  # refused before sending: renewal failed
                self.aborted = f"the credentials could not be renewed: {attempt.error}"
            else:
                code = f" {attempt.error_code}" if attempt.error_code else ""
                detail = f": {attempt.error}" if attempt.error else ""
                self.aborted = (
                    f"the server rejected the credentials (HTTP {attempt.http_status}{code}"
                    f"{detail})"
                )
        self.stop.request("aborted")


@dataclass(frozen=True, slots=True)
class Channel:
    """One side of a migration: an API and the sender that paces the requests to it."""

    api: ThumbnailApi
    sender: Sender


def _attempt_fields(attempt: Attempt) -> dict[str, Any]:
    return {
        "http_status": attempt.http_status,
        "error_code": attempt.error_code,
        "error": attempt.error,
        "retry_after": attempt.retry_after,
    }
