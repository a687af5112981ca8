"""A simulated run: workers, a rate governor and a sandbox limiter on one virtual clock.

Deterministic and instant: time moves only when every worker waits, to the earliest wake-up.
Each worker starts a request when the governor lets it; the request reaches the server half a
round trip later, is held there for the sandbox's ``latency``, meets the limiter, and its answer
comes back after the other half, as over a network. Each half may take up to ``jitter`` seconds
more (seeded), so answers come back out of order as they do over real sockets, and a request
sent before a window resets may meet the next window.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections.abc import Callable, Coroutine, Generator
from dataclasses import dataclass, field
from typing import Any

from batchthumb.client import stated_limit
from batchthumb.model import RunSettings
from batchthumb.ratelimit import RateGovernor, ThrottlePolicy
from batchthumb.sandbox.limits import Limiter, RateLimit, RetryAfter


class _Wake:
    """Awaited by a simulated coroutine: resume it at virtual time ``at``."""

    __slots__ = ("at",)

    def __init__(self, at: float) -> None:
        self.at = at

    def __await__(self) -> Generator[_Wake, None, None]:
        yield self


@dataclass(slots=True)
class VirtualTime:
    """A clock that jumps from one wake-up to the next; ``sleep`` is its only way forward."""

    now: float = 0.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        await _Wake(self.now + max(0.0, seconds))


@dataclass(slots=True)
class Outcome:
    """What the server saw of a simulated run."""

    arrivals: list[float] = field(default_factory=list)  # every request, when it arrived
    accepted: list[float] = field(default_factory=list)  # accepted ones, when they arrived
    throttled: int = 0

    @property
    def span(self) -> float:
        """First to last accepted arrival, seconds."""
        return self.accepted[-1] - self.accepted[0]

    @property
    def sent_span(self) -> float:
        """First to last arrival of any request, seconds (what the benchmark measures)."""
        return max(self.arrivals) - min(self.arrivals)

    def accepted_between(self, start: float, end: float) -> int:
        """How many requests were accepted in [start, end)."""
        return sum(1 for t in self.accepted if start <= t < end)


def retry_after_header(limit: RateLimit | None) -> Callable[[float], float | None]:
    """What the client reads from the sandbox's Retry-After: whole seconds, or nothing."""
    if limit is None or limit.retry_after is RetryAfter.NONE:
        return lambda wait: None
    return lambda wait: float(max(1, math.ceil(wait - 1e-9)))


def simulate(
    limit: RateLimit | None,
    *,
    items: int,
    workers: int = 8,
    round_trip: float = 0.002,
    latency: float = 0.0,
    jitter: float = 0.0,
    seed: int = 0,
    rate: float = 0.0,
    burst: int = 1,
    policy: ThrottlePolicy | None = None,
    retry_after: Callable[[float], float | None] | None = None,
    states_limit: bool = False,
    start: float = 0.0,
) -> tuple[Outcome, RateGovernor]:
    """Send ``items`` requests through ``workers`` against ``limit`` (None: unlimited).

    ``states_limit``: the client reads the limit each 429 names, as from APIG's; by default
    it names none, so the governor has only what the server accepted to go by. ``start``: the
    virtual time of the first request (the phase of windows aligned to the clock).
    """
    vt = VirtualTime(now=start)
    # By default the policy the CLI runs with (its pause follows --backoff), not the bare one.
    policy = policy or ThrottlePolicy(pause=RunSettings().backoff / 2)
    governor = RateGovernor(
        rate=rate, burst=burst, policy=policy, clock=vt.clock, sleep=vt.sleep, jitter=lambda: 0.5
    )
    limiter = None if limit is None else Limiter(limit)
    told = retry_after or retry_after_header(limit)

    outcome = Outcome()
    queue = iter(range(items))
    noise = random.Random(seed)
    leg = round_trip / 2

    async def worker() -> None:
        for _ in queue:
            while True:
                started = governor.try_acquire()
                if started is None:
                    started = await governor.acquire()
                await vt.sleep(leg + jitter * noise.random())
                outcome.arrivals.append(vt.now)
                if latency:
                    await vt.sleep(latency)
                wait = None if limiter is None else limiter.admit(vt.now)
                stated = None
                if wait is not None and limiter is not None and states_limit:
                    # What the client reads from the 429's message, by its own parser.
                    stated = stated_limit(limiter.message(vt.now))
                if wait is None:
                    outcome.accepted.append(vt.now - latency)
                await vt.sleep(leg + jitter * noise.random())
                if wait is None:
                    governor.on_success()
                    break
                outcome.throttled += 1
                governor.on_throttle(started_at=started, retry_after=told(wait), stated=stated)

    run([worker() for _ in range(workers)], vt)
    return outcome, governor


STUCK = 100_000  # wake-ups at one virtual instant: far more than any run's workers need


def run(coroutines: list[Coroutine[Any, Any, None]], vt: VirtualTime) -> None:
    """Drive ``coroutines`` to the end on virtual time (never on a real event loop).

    Virtual time never waits, so no deadline could stop workers that sleep zero forever: past
    ``STUCK`` wake-ups with the clock standing still, the run fails instead of hanging.
    """
    order = itertools.count()
    ready = [(vt.now, next(order), c) for c in coroutines]
    heapq.heapify(ready)
    still = 0
    while ready:
        at, _, coroutine = heapq.heappop(ready)
        still = still + 1 if at <= vt.now else 0
        if still > STUCK:
            raise RuntimeError(f"the simulation is stuck at {vt.now} s: no worker moves time on")
        vt.now = max(vt.now, at)
        try:
            wake = coroutine.send(None)
        except StopIteration:
            continue
        heapq.heappush(ready, (wake.at, next(order), coroutine))
