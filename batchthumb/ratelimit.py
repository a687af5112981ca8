"""The rate governor: one pacer shared by every worker, riding a rate limit it does not know.

Starts are paced with GCRA (a token bucket kept as one "theoretical arrival time"), so with
``burst=1`` there is never a flood, and in any one-second window at most ``rate + burst``
requests start. How fast it paces follows the server, as TCP and the AWS SDK's adaptive mode
do:

- **Slow start.** A run begins at ``start_rate`` and doubles every ``doubling`` seconds, so an
  unknown limit meets a probe, not every worker at once, while an unlimited server is at full
  speed within half a second (past ``unlimited`` the pacing stops). Over a long round trip
  the rate is not what holds a first wave back (at 50 ms, 32 workers are all in flight before
  the first answer), so the slow start also has a congestion window, as TCP's does: at most
  ``start_window`` requests in flight, one more per success (twice as many each round trip),
  and never more than ``start_share`` of the requests accepted so far. What the first wave
  costs is what is in flight when the limit is met: at most that share of what went through.
  The first request goes alone: against a bucket of 1, a second sent beside it is refused,
  and so is any sent behind that before its answer.
  A configured ``rate`` needs no probing, so it starts with no window.
- **Cut.** A throttled answer to a request started after the last cut sets the maximum to the
  rate the server *accepted*, counted over the last ``span`` (a second: a count over a few
  milliseconds is not a rate per second), and cuts to ``beta`` times that. Answers to
  requests sent before the cut say nothing about the new rate: they cut nothing. After a cut
  one request is in flight until one is accepted, then one more per success: a window that is
  closed until it resets refuses that one probe, not every worker's request.
- **Named limit.** A 429 naming its limit per second (APIG's ``limit:XX,time:1 second``) needs
  no guess: the maximum is XX (or the rate refused, if lower), and the run rides at
  ``stated_beta`` of it, not back up to it (at the limit itself, requests that bunch by a few
  milliseconds are refused); if XX of the run's successes fall within that second, the next
  start waits until the oldest leaves it. A limit per minute is no rate (its allowance may go
  at once), and a name that leaves the run throttled for a whole span is not the run's share
  (the limit is shared): both are cut as above.
- **Recovery.** The rate then climbs along a cubic back to that maximum in ``recovery``
  seconds (longer for slow limits, the time ``probe_every`` requests take, times the requests
  in flight, since a refused probe costs a 429 for each; after the first cut, whose maximum
  is a guess, ``first_probe_every``; below a named limit, which is exact but may rise, and
  which only a probe finds risen, ``named_probe_every``), whatever the depth of the cut, and
  flattens near it. Past it, it grows again within ``recovery`` seconds however long the
  approach took (a maximum measured low, or a limit that rose, is not held for eight more
  seconds), then doubles each ``recovery``. The first start after a cut waits one interval
  at the new rate: the server has just refused one, so its bucket is empty.
- **Pause.** Throttling that persists with no success in between (a window that is full until
  it resets) pauses every worker, for a time that doubles while it lasts; ``Retry-After``, when
  the server sends it, sets the pause instead (capped). A window the server named per minute
  began no later than the first success since the last pause, so a pause ends when it has
  reset, if sooner, and pauses grow to ``named_pause_share`` of it, not to ``max_pause``
  (each probe before the reset costs a 429).
- **A minute's allowance.** A window named per minute that this run's own successes filled is
  closed until it resets: nothing to cut, so the run pauses at once and probes halfway between
  the earliest the reset can come (after the last refusal) and the latest (a minute after the
  window's first success), down to ``named_pause_share`` of it. Once a reset is found, each
  minute sends what the server named and one probe past it: refused, the run waits for the
  next reset, a minute after the last refusal before this one at the earliest; accepted, the
  limit rose, and the run stops counting.
"""

from __future__ import annotations

import math
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio

from batchthumb.model import StatedLimit

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    """How the governor probes, brakes and recovers."""

    start_rate: float = 50.0  # requests per second the slow start begins at
    start_window: int = 1  # requests in flight the slow start begins with; +1 per success
    start_share: float = 0.2  # ... up to this share of the requests accepted so far
    window_nap: float = 0.002  # seconds between looks at a full window
    doubling: float = 0.03  # seconds in which the slow start doubles the rate
    unlimited: float = 10_000.0  # past this rate in slow start, nothing is paced at all
    beta: float = 0.85  # a cut leaves this share of the rate the server accepted
    first_beta: float = 0.5  # the cut that ends the slow start, whose count is less sure
    span: float = 1.0  # seconds over which the accepted rate is counted
    recovery: float = 1.0  # seconds to regain the rate before a cut, at least
    probe_every: float = 150.0  # ... and at least this many requests: each probe costs a 429
    first_probe_every: float = 60.0  # ... after the first cut, whose maximum is a guess
    named_probe_every: float = 50.0  # ... below a named limit, which only a probe finds risen
    stated_beta: float = 0.97  # a cut to a limit the server named leaves this share of it
    max_recovery: float = 8.0  # ... and at most this many seconds
    min_rate: float = 0.2  # requests per second; never slower than this
    pause: float = 0.25  # first pause while throttling persists; doubles while it lasts
    max_pause: float = 5.0
    named_pause_share: float = 1 / 6  # ... or this share of a window named per minute
    max_retry_after: float = 300.0  # a server asking for more is capped, not obeyed blindly
    frequent: float = 0.1  # a share of 429s over the span that cuts even with Retry-After
    min_answers: int = 20  # ... out of at least this many answers


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
        self._burst = burst
        self._policy = policy or ThrottlePolicy()
        self._clock = clock
        self._sleep = sleep
        self._jitter = jitter
        self._tat = -math.inf  # when the bucket is next empty (GCRA)
        self._paused_until = -math.inf
        # Slow start until the first cut: the rate doubles from ``start_rate`` from here.
        self._slow_start = True
        self._started = math.inf  # when the first request started
        # After a cut, the cubic climbs from ``_low`` back to ``_high`` in ``_recovery`` s.
        self._cut_at = -math.inf
        self._answered_to = -math.inf  # requests started before this were already answered
        self._high = math.inf
        self._low = math.inf
        self._step = math.inf  # how far past ``_high`` the probing climbs in one recovery
        self._recovery = self._policy.recovery
        self._rate = self._ceiling  # never read before ``_current_rate`` works it out
        self._rate_at = -math.inf  # when ``_rate`` was last worked out
        self._resumed = -math.inf  # when the last pause for persistent throttling ended
        self._episode = -math.inf  # when the last cut came
        self._congested = -math.inf  # when the cuts of this congested spell began
        self._epoch = 0  # counts cuts, pauses and climbs: slots booked before one are void
        self._booked_rate = 0.0  # the rate slots were booked at since the last epoch
        self._last_start = -math.inf  # the latest start handed out
        self._streak = 0  # throttles since the last success, each after a cut or pause
        # The first success since the last pause (or ever): a window it fell in began no later.
        self._window_opened = math.inf
        self._reopening = True  # the next success is the first since a pause
        self._in_window = 0  # successes since ``_window_opened``
        self._minute: StatedLimit | None = None  # the last limit the server named per minute
        self._reset_floor = -math.inf  # a full minute window had not reset by then
        self._accepted: deque[float] = deque()  # success times within the last span
        self._throttles: deque[float] = deque()  # throttle times within the last span
        self._in_flight = 0  # started and not yet answered
        # The congestion window (requests in flight at most): what a first wave can cost is
        # what is in flight when the limit is met. A configured rate needs no probing.
        self._window = float(self._policy.start_window) if rate <= 0 else math.inf
        self._successes = 0
        self._throttled = 0
        self._cuts = 0

    @property
    def rate(self) -> float | None:
        """The current rate cap, or None while nothing limits it."""
        rate = self._current_rate(self._clock())
        return None if math.isinf(rate) else rate

    @property
    def stats(self) -> GovernorStats:
        """Throttling counts and the settled rate, for the summary."""
        return GovernorStats(self._throttled, self._cuts, self.rate)

    def _current_rate(self, now: float) -> float:
        """The pacing rate at ``now``: the slow start's, the cubic's, never above the cap."""
        if now - self._rate_at < 0.001:  # close enough: spare the arithmetic per request
            return self._rate
        policy = self._policy
        if self._slow_start:
            if self._ceiling < math.inf:
                rate = self._ceiling  # the user knows the limit: no need to probe for it
            elif self._started == math.inf:
                rate = policy.start_rate
            else:
                doublings = (now - self._started) / policy.doubling
                rate = math.inf if doublings > 64 else policy.start_rate * 2.0**doublings
                if rate > policy.unlimited:
                    rate = math.inf
        else:
            progress = (now - self._cut_at) / self._recovery - 1.0
            if progress < 0:  # concave: fast at first, flat near the old maximum
                rate = self._high - (self._high - self._low) * (-progress) ** 3
            else:
                # Past the old maximum with no throttle: the limit rose (or was measured low).
                # Probe above it slowly at first, then faster, within ``recovery`` seconds
                # however long the approach took, then find it as in the slow start.
                progress = (now - self._cut_at - self._recovery) / policy.recovery
                if progress < 1:
                    rate = self._high + self._step * progress**3
                else:
                    rate = (self._high + self._step) * 2.0 ** min(progress - 1, 64)
            since_pause = (now - self._resumed) / policy.doubling
            if since_pause < 16:  # after a pause, one probe first, then quickly back up
                rate = min(rate, max(policy.start_rate, self._low / 8) * 2.0**since_pause)
        rate = min(rate, self._ceiling)
        self._rate, self._rate_at = rate, now
        if rate > self._booked_rate * 1.25:
            # Slots booked at a much lower rate would hold the climb back: book them again,
            # from the last start at the new rate (never two starts closer than it allows).
            self._booked_rate = rate
            self._tat = min(self._tat, self._last_start + 1.0 / rate)
            self._epoch += 1
        return rate

    def try_acquire(self) -> float | None:
        """Start one more request now if nothing holds it back (its start time), else None.

        The runner's fast path: with no cap and no pause it spares a cancel scope per request.
        """
        now = self._clock()
        if now < self._paused_until:
            return None
        if self._started == math.inf:
            self._started = now
        if self._in_flight >= self._window or self._minute_is_full():
            return None
        rate = self._current_rate(now)
        if math.isinf(rate):
            self._in_flight += 1
            return now
        interval = 1.0 / rate
        tat = max(self._tat, now)
        if tat - (self._burst - 1) * interval > now:
            return None
        self._tat = tat + interval
        self._last_start = now
        self._in_flight += 1
        return now

    async def acquire(self) -> float:
        """Wait until one more request may start; return its start time."""
        while True:
            now = self._clock()
            if now < self._paused_until:
                await self._sleep(self._paused_until - now)
                continue
            if self._started == math.inf:
                self._started = now
            if self._in_flight >= self._window or self._minute_is_full():
                # The window is full: an answer frees it within a round trip (or, for a
                # minute's allowance, the answer to the one probe past it pauses the run).
                await self._sleep(self._policy.window_nap)
                continue
            rate = self._current_rate(now)
            if math.isinf(rate):
                self._in_flight += 1
                return now
            slot = self._reserve(now, rate)
            if slot <= now:
                self._last_start = max(self._last_start, now)
                self._in_flight += 1
                return now
            epoch = self._epoch
            # Wake now and then: a cut, a pause or a climb voids the slot (booked at the old
            # rate), and a worker asleep for seconds would not notice the rate doubling.
            nap = self._policy.doubling
            while epoch == self._epoch and (now := self._clock()) < slot:
                await self._sleep(min(slot - now, nap))
            if epoch == self._epoch and self._in_flight < self._window:
                if self._minute_is_full():
                    continue
                self._last_start = max(self._last_start, slot)
                self._in_flight += 1
                return slot

    def _minute_is_full(self) -> bool:
        """Whether this run has sent a minute window the server named all it allows, and one more.

        The one more is a probe: accepted, the limit rose (or was not this window's), and the
        run no longer counts; refused, it pauses the run until the window resets.
        """
        minute = self._minute
        return minute is not None and self._in_window + self._in_flight > minute.requests

    def _reserve(self, now: float, rate: float) -> float:
        interval = 1.0 / rate
        tat = max(self._tat, now)
        self._tat = tat + interval
        return max(now, tat - (self._burst - 1) * interval)

    def on_answer(self) -> None:
        """Note a request that ended neither accepted nor throttled (an error, a cancel)."""
        self._in_flight = max(0, self._in_flight - 1)

    def on_success(self) -> None:
        """Note a request the server accepted."""
        now = self._clock()
        self._in_flight = max(0, self._in_flight - 1)
        self._successes += 1
        self._window += 1  # twice as many in flight each round trip, as in TCP's slow start
        if self._slow_start and math.isfinite(self._window):  # infinite: a configured rate
            # A first wave refuses what is in flight when it meets the limit: keep that a small
            # share of what went through, so 32 workers at 50 ms do not all meet it at once.
            policy = self._policy
            most = max(policy.start_window, int(policy.start_share * self._successes))
            self._window = min(self._window, most)
        self._streak = 0
        if self._reopening:
            self._window_opened, self._reopening, self._in_window = now, False, 1
            if self._minute is not None:  # it reset after the floor: the next one a window on
                self._reset_floor += self._minute.seconds
        else:
            self._in_window += 1
            if self._minute is not None and self._in_window > self._minute.requests:
                self._minute = None  # more than it named went through: it no longer holds
        accepted = self._accepted
        accepted.append(now)
        horizon = now - self._policy.span
        while accepted[0] < horizon:  # ``now`` itself stays: the deque is never emptied
            accepted.popleft()

    def on_throttle(
        self, *, started_at: float, retry_after: float | None, stated: StatedLimit | None = None
    ) -> None:
        """Slow the whole run down: the server throttled a request started at ``started_at``.

        ``stated`` is the limit the answer named, if it named one.
        """
        now = self._clock()
        policy = self._policy
        self._in_flight = max(0, self._in_flight - 1)
        self._throttled += 1
        if retry_after is not None:  # the server says when: wait that long, whatever else
            wait = min(max(retry_after, 0.0), policy.max_retry_after)
            self._pause_until(now + wait)
        throttles = self._throttles
        throttles.append(now)
        while throttles[0] < now - policy.span:
            throttles.popleft()
        if started_at <= self._answered_to:
            return  # sent before the last cut or pause, which already answered it
        answers = len(throttles) + len(self._accepted)
        if retry_after is not None and (
            answers < policy.min_answers or len(throttles) < policy.frequent * answers
        ):
            return  # a rare 429 that says when to come back asks for a pause, not a cut
        self._answered_to = now
        self._streak += 1
        minute = stated if stated is not None and stated.seconds > policy.span else None
        if minute is not None:
            self._minute = minute
        # A minute window full of this run's successes is closed until it resets, which is a
        # minute after its first success at the latest: no rate would be accepted before, so
        # there is nothing to cut, only a reset to find.
        resets = self._window_opened + minute.seconds if minute is not None else math.inf
        full_of_ours = minute is not None and self._in_window >= minute.requests and now < resets
        if full_of_ours:
            self._reset_floor = max(self._reset_floor, started_at)  # it had not reset by then
        if self._streak == 1 and not full_of_ours:
            self._cut(now, stated)
        elif retry_after is None:
            # Still throttled after a cut with nothing accepted: the server is closed (a full
            # window), so wait, longer each time, rather than cut towards nothing.
            longest = policy.max_pause
            if minute is not None:  # probe a window named per minute less often, then at its reset
                longest = max(longest, minute.seconds * policy.named_pause_share)
            if full_of_ours:
                # It resets after the floor and by ``resets``: probe halfway, down to ``longest``.
                earliest = max(now, self._reset_floor)
                until = resets if resets - earliest <= longest else (earliest + resets) / 2
            else:
                full = min(longest, policy.pause * 2.0 ** (self._streak - 2))
                until = now + full / 2 + self._jitter() * full / 2
                if now < resets < until:
                    until = resets
            self._reopening = True
            # The cubic stands still while paused, and resumes with a probe.
            self._cut_at += until - max(now, self._resumed)
            self._resumed = self._episode = until  # still congested until the pause ends
            self._rate_at = -math.inf
            self._pause_until(until)

    def _pause_until(self, until: float) -> None:
        if until > self._paused_until:
            self._paused_until = until
            self._tat = until
            self._epoch += 1
            self._booked_rate = 0.0

    def _cut(self, now: float, stated: StatedLimit | None = None) -> None:
        """Set the maximum to the accepted rate and cut below it; start the cubic's climb."""
        policy = self._policy
        accepted = self._accepted
        horizon = now - policy.span
        while accepted and accepted[0] < horizon:
            accepted.popleft()
        current = self._current_rate(now)
        if now - self._episode > policy.span:
            self._congested = now  # the first throttle after a span without any
        self._episode = now
        # A limit per second the server named is no guess: ride just below it. Not one per
        # minute (its allowance may go at once), and not once throttled for a whole span
        # (the name is then not what this run may have: the limit is shared).
        named = None
        spell_is_new = now - self._congested < policy.span
        if stated is not None and stated.seconds <= policy.span and spell_is_new:
            named = stated.requests / stated.seconds
        if named is not None:
            measured = named
        elif self._slow_start:
            # Over the time there was: the slow start paced the first requests, so this is a
            # rate over real time, not the count of a first burst taken for a rate per second.
            # At least a tenth of a second: a refusal sooner means a small limit, and one
            # success in 20 ms is not 50/s.
            counted = len(accepted) / min(policy.span, max(now - self._started, 0.1))
            measured = counted if accepted else current
        elif not accepted:
            measured = current  # nothing accepted to count: go by the rate refused
        elif not spell_is_new:
            # Throttled for a whole span: what the server took over it is what it allows.
            measured = len(accepted) / policy.span
        else:
            # Newly throttled: the server took all that was sent until now, at a rate still
            # climbing (a count over the span would lag behind it), so the rate it refused
            # is the measure, and repeated cuts bring it down geometrically.
            measured = current
        measured = min(measured, current)
        if math.isinf(measured):  # unpaced, and nothing accepted to count: start low
            measured = policy.start_rate
        first = self._slow_start and named is None
        if named is not None:
            beta = policy.stated_beta
        else:
            beta = policy.first_beta if first else policy.beta
        self._slow_start = False
        # One request in flight until one is accepted, then one more per success: a window
        # that is closed (or a pause's end that comes too soon) refuses one probe, not every
        # worker's request. The rate soon paces alone again.
        self._window = 1.0
        self._high = max(measured, policy.min_rate)
        self._low = max(self._high * beta, policy.min_rate)
        self._step = max(self._high - self._low, self._high * (1 - policy.beta))
        if named is not None:
            # A named limit is exact: climb back to just under it, not up to it, where requests
            # that bunch by a few milliseconds are refused (a bucket of 1 refuses any two
            # closer than its interval). Probing past it later finds a limit that rose.
            self._high = min(self._high, max(named * beta, policy.min_rate))
        # The first cut's maximum is a guess from under a second, too high or too low: it is
        # regained over fewer requests, so that a limit above it (or one that rose) is found
        # in seconds. A later one was measured, and probing above it costs a 429 each time.
        if named is not None:
            probes = policy.named_probe_every
        else:
            probes = policy.first_probe_every if first else policy.probe_every
        # A probe that is refused costs a 429 for each request still in flight (several at a
        # long round trip): the probes are spaced by what they cost.
        cost = 1 + self._in_flight
        self._recovery = min(policy.max_recovery, max(policy.recovery, probes * cost / self._high))
        self._cut_at = now
        self._rate_at = -math.inf
        # Slots booked at the old rate are void, and the server has just refused one: its
        # bucket is empty, so the next start waits an interval at the new rate, not none.
        frees = self._window_frees(stated)
        self._tat = max(now, self._paused_until, frees) + 1.0 / self._low
        self._epoch += 1
        self._booked_rate = self._low
        self._cuts += 1

    def _window_frees(self, stated: StatedLimit | None) -> float:
        """When a named window has room again, if it is full of this run's successes.

        XX accepted within the named time means no more until the oldest of them leaves it:
        the next start waits for that, not for a pause that guesses (and probes) too soon.
        """
        if stated is None or stated.seconds > self._policy.span:
            return -math.inf
        allowed = max(1, int(stated.requests))
        accepted = self._accepted
        if len(accepted) < allowed:
            return -math.inf
        return accepted[-allowed] + stated.seconds  # in the past when the window is not full
