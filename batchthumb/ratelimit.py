"""The rate governor: one token bucket shared by every worker, slowed down by throttling.

Starts are paced with GCRA (a token bucket kept as one "theoretical arrival time"), so with
``burst=1`` there is never an initial flood, and in any one-second window at most
``rate + burst`` requests start. When the server throttles, the governor pauses every worker,
lowers the rate multiplicatively (to just under what the server was actually accepting) and
then raises it again additively while requests succeed.
"""

from __future__ import annotations

import math
import random
import time
from bisect import bisect_left
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio

Clock = Callable[[], float]
_TRIM_MIN = 1024  # successes kept before the first bulk drop of old ones
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    """How hard the governor brakes on throttling and how fast it recovers."""

    decrease: float = 0.9  # the new rate, as a share of what the server was accepting
    recovery: float = 0.02  # rate regained per second, as a share of the rate at the last cut
    min_rate: float = 0.2  # requests per second; never slower than this
    pause: float = 0.5  # first pause without Retry-After; doubles while throttling goes on
    max_pause: float = 60.0
    max_retry_after: float = 300.0  # a server asking for more is capped, not obeyed blindly
    window: float = 10.0  # seconds over which throttling counts as "frequent"
    frequent: float = 0.1  # share of answers throttled in the window that means "too fast"
    min_answers: int = 20  # fewer answers than this in the window say nothing about a share


@dataclass(frozen=True, slots=True)
class GovernorStats:
    """What the summary says about throttling."""

    throttled: int
    rate_cuts: int
    rate: float | None  # the rate the run settled at; None = never limited


class RateGovernor:
    """Paces request starts for all workers of a run."""

    def __init__(
        self,
        *,
        rate: float = 0.0,
        burst: int = 1,
        policy: ThrottlePolicy | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = anyio.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._ceiling = rate if rate > 0 else math.inf
        self._rate = self._ceiling
        self._burst = burst
        self._policy = policy or ThrottlePolicy()
        self._clock = clock
        self._sleep = sleep
        self._jitter = jitter
        self._tat = -math.inf  # when the bucket is next empty (GCRA)
        self._paused_until = -math.inf
        self._last_cut = -math.inf
        self._last_throttle = -math.inf
        self._streak = 0  # throttles since the last success
        self._step = 0.0  # additive increase, requests per second per second
        # Times of successes and of throttles, oldest first, kept for at least the window:
        # appending is all a success costs; they are counted (by bisection) only when a
        # throttle comes, and old ones are dropped in bulk now and then.
        self._successes: list[float] = []
        self._throttles: list[float] = []
        self._keep = max(self._policy.window, 1.0)  # seconds of history the counts look at
        self._trim_at = _TRIM_MIN
        self._first_answer = math.inf
        self._throttled = 0
        self._cuts = 0

    @property
    def rate(self) -> float | None:
        """The current rate cap, or None while nothing limits it."""
        return None if math.isinf(self._rate) else self._rate

    @property
    def stats(self) -> GovernorStats:
        """Throttling counts and the settled rate, for the summary."""
        return GovernorStats(self._throttled, self._cuts, self.rate)

    def try_acquire(self) -> float | None:
        """Start one more request now if nothing holds it back (its start time), else None.

        The runner's fast path: with no cap and no pause it spares a cancel scope per request.
        """
        now = self._clock()
        if now < self._paused_until:
            return None
        if math.isinf(self._rate):
            return now
        interval = 1.0 / self._rate
        tat = max(self._tat, now)
        if tat - (self._burst - 1) * interval > now:
            return None
        self._tat = tat + interval
        return now

    async def acquire(self) -> float:
        """Wait until one more request may start; return its start time."""
        while True:
            now = self._clock()
            if now < self._paused_until:
                await self._sleep(self._paused_until - now)
                continue
            if math.isinf(self._rate):
                return now
            slot = self._reserve(now)
            if slot <= now:
                return now
            await self._sleep(slot - now)
            if self._clock() >= self._paused_until:
                return slot
            # Throttled while we waited: our slot is void, queue again behind the pause.

    def _reserve(self, now: float) -> float:
        interval = 1.0 / self._rate
        tat = max(self._tat, now)
        self._tat = tat + interval
        return max(now, tat - (self._burst - 1) * interval)

    def on_success(self) -> None:
        """Note a request the server accepted; creep back towards the configured rate."""
        now = self._clock()
        self._streak = 0
        successes = self._successes
        successes.append(now)
        if len(successes) >= self._trim_at:
            del successes[: bisect_left(successes, now - self._keep)]
            self._trim_at = 2 * len(successes) + _TRIM_MIN
        if self._first_answer == math.inf:
            self._first_answer = now
        if self._rate < self._ceiling:
            self._rate = min(self._ceiling, self._rate + self._step / self._rate)

    def on_throttle(self, *, started_at: float, retry_after: float | None) -> None:
        """Slow the whole run down: the server throttled a request started at ``started_at``."""
        now = self._clock()
        policy = self._policy
        self._throttled += 1
        share, answers = self._note_throttle(now)
        if started_at <= self._last_throttle:
            # In flight when the last throttle came: the same wave, already paused for.
            # Doubling the pause for each of them made 32 workers pause for a minute.
            return
        self._last_throttle = now
        self._streak += 1
        if retry_after is not None:
            pause = min(max(retry_after, 0.0), policy.max_retry_after)
        else:
            full = min(policy.max_pause, policy.pause * 2.0 ** (self._streak - 1))
            pause = full / 2 + self._jitter() * full / 2
        self._paused_until = max(self._paused_until, now + pause)
        self._tat = max(self._tat, self._paused_until)
        # A server that says when to come back, rarely, is not asking us to slow down.
        frequent = share >= policy.frequent and answers >= policy.min_answers
        too_fast = retry_after is None or frequent
        # Answers to requests sent before the last cut say nothing about the new rate.
        if too_fast and started_at > self._last_cut:
            self._cut(now)

    def _note_throttle(self, now: float) -> tuple[float, int]:
        """Note a throttled answer: the share of the window's answers throttled, and their count."""
        if self._first_answer == math.inf:
            self._first_answer = now
        throttles = self._throttles
        throttles.append(now)
        if len(throttles) >= _TRIM_MIN:
            del throttles[: bisect_left(throttles, now - self._keep)]
        since = now - self._policy.window
        throttled_count = len(throttles) - bisect_left(throttles, since)
        answers = throttled_count + len(self._successes) - bisect_left(self._successes, since)
        return throttled_count / answers, answers

    def _cut(self, now: float) -> None:
        successes = self._successes
        # What the server took in the last second.
        accepted = float(len(successes) - bisect_left(successes, now - 1.0))
        # A count over less than a second of answers says little unless it is large.
        telling = accepted >= 5 or (accepted and now - self._first_answer >= 1.0)
        current = min(self._rate, accepted) if telling else self._rate
        if math.isinf(current):
            return  # nothing to go by yet: the growing pause alone slows the run
        self._rate = max(self._policy.min_rate, current * self._policy.decrease)
        self._step = max(self._policy.recovery * self._rate, self._policy.min_rate / 10)
        self._last_cut = now
        self._cuts += 1
