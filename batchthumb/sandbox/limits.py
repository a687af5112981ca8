"""The sandbox's rate limits, in the shapes real API gateways use.

Huawei's APIG limits each API on its own (or a group of them together), per user, in windows of
a second or a minute, and answers ``429 APIGW.0308`` (or ``APIG.0308``) above the limit, with a
message such as ``limit:50,time:1 second``. How big its bursts are, and whether it sends
``Retry-After``, is not documented, so each of those is a choice here:

- ``bucket``: a token bucket refilled at the rate, holding ``burst`` tokens (default: a tenth of
  a second of the rate in force, at least 1; not a full second, which would hide a client's
  first wave);
- ``fixed``: a counter per window of ``window`` seconds (1 or 60), reset on the window's tick;
  the first request sets the phase;
- ``sliding``: at most ``rate * window`` requests in any ``window`` seconds (a log of them).

The rate may follow a schedule (``100@0,25@3``: 100/s from the first request, 25/s from 3 s
later). ``per_api`` counts PUT, list, upload, download, create and info apart, as the gateway
does; otherwise one limit covers them all. Everything runs on the clock passed to
:meth:`Limiter.admit`, so tests drive it without sleeping.
"""

from __future__ import annotations

import enum
import math
from collections import deque
from dataclasses import dataclass, field
from email.utils import formatdate

THROTTLE_CODES = ("APIGW.0308", "APIG.0308")
THROTTLE_MSG = (
    "The throttling threshold has been reached: policy user over ratelimit,limit:{limit},"
    "time:{time}"
)


class Shape(enum.Enum):
    """How a limit counts requests."""

    BUCKET = "bucket"
    FIXED = "fixed"
    SLIDING = "sliding"


class RetryAfter(enum.Enum):
    """What the 429 says about when to come back."""

    NONE = "none"
    SECONDS = "seconds"
    DATE = "date"


def parse_schedule(text: str) -> tuple[tuple[float, float], ...]:
    """``"100@0,25@3"`` (rate@seconds, or a bare rate) -> ``((0.0, 100.0), (3.0, 25.0))``.

    Raises ValueError naming the bad part.
    """
    steps: list[tuple[float, float]] = []
    for part in text.split(","):
        rate_text, at, start_text = part.strip().partition("@")
        try:
            rate = float(rate_text)
            start = float(start_text) if at else 0.0
        except ValueError:
            raise ValueError(f"{part.strip()!r} is not RATE or RATE@SECONDS") from None
        if not rate > 0 or not math.isfinite(rate):
            raise ValueError(f"{part.strip()!r}: the rate must be a positive number")
        if start < 0 or (steps and start <= steps[-1][0]):
            raise ValueError(f"{part.strip()!r}: times must start at 0 and increase")
        steps.append((start, rate))
    if not steps or steps[0][0] != 0:
        raise ValueError("the schedule must give the rate from 0 s (e.g. 100@0,25@3)")
    return tuple(steps)


@dataclass(frozen=True, slots=True)
class RateLimit:
    """A server-side rate limit: its shape, its rate (or schedule) and how it answers."""

    schedule: tuple[tuple[float, float], ...]
    shape: Shape = Shape.BUCKET
    burst: int | None = None  # bucket size; None = a tenth of a second of the rate in force
    window: float = 1.0  # seconds, for fixed and sliding windows
    aligned: bool = False  # fixed windows start on the clock's whole windows, not the first request
    per_api: bool = True
    retry_after: RetryAfter = RetryAfter.NONE

    def __post_init__(self) -> None:
        if not self.schedule or self.schedule[0][0] != 0:
            raise ValueError("a rate limit needs a rate from 0 s")
        if self.burst is not None and self.burst < 1:
            raise ValueError(f"a bucket holds at least 1 request, got {self.burst}")
        if not self.window > 0:
            raise ValueError(f"a window lasts more than 0 s, got {self.window}")

    @classmethod
    def per_second(cls, rate: float, **kwargs: object) -> RateLimit:
        """A constant ``rate`` per second."""
        return cls(((0.0, float(rate)),), **kwargs)  # type: ignore[arg-type]

    def rate_at(self, elapsed: float) -> float:
        """The rate per second ``elapsed`` seconds after the first request."""
        rate = self.schedule[0][1]
        for start, step_rate in self.schedule:
            if elapsed < start:
                break
            rate = step_rate
        return rate

    def capacity(self, elapsed: float = 0.0) -> int:
        """Requests a bucket holds ``elapsed`` seconds after the first request.

        By default a tenth of a second of the rate in force: a gateway whose limit is raised
        (or lowered) sizes its bursts by the new one.
        """
        if self.burst is not None:
            return self.burst
        return max(1, round(self.rate_at(elapsed) / 10))

    def allowed(self, elapsed: float) -> int:
        """Requests a window admits ``elapsed`` seconds after the first request."""
        return max(1, math.floor(self.rate_at(elapsed) * self.window + 1e-9))

    def message(self, elapsed: float) -> str:
        """The APIGW.0308 message naming the limit in force."""
        if self.shape is Shape.BUCKET:
            return THROTTLE_MSG.format(limit=f"{self.rate_at(elapsed):g}", time="1 second")
        if self.window == 60:
            period = "1 minute"
        elif self.window == 1:
            period = "1 second"
        else:
            period = f"{self.window:g} seconds"
        return THROTTLE_MSG.format(limit=self.allowed(elapsed), time=period)


@dataclass(slots=True)
class Limiter:
    """The state of one limit (one API's, or the shared one)."""

    limit: RateLimit
    _origin: float | None = None  # when the first request came: the schedule's 0 s
    _tokens: float = 0.0
    _at: float = 0.0  # bucket: last refill; fixed: start of the current window
    _count: int = 0  # fixed: requests admitted in the current window
    _log: deque[float] = field(default_factory=deque)  # sliding: admitted, oldest first

    def admit(self, now: float) -> float | None:
        """Count a request at ``now``: None when admitted, else seconds until one would be."""
        limit = self.limit
        if self._origin is None:
            self._origin = self._at = now
            if limit.aligned:  # counted per calendar second or minute, whenever the client came
                self._at = math.floor(now / limit.window) * limit.window
            self._tokens = float(limit.capacity())
        elapsed = now - self._origin
        if limit.shape is Shape.BUCKET:
            rate = limit.rate_at(elapsed)
            self._tokens = min(
                limit.capacity(elapsed), self._tokens + max(0.0, now - self._at) * rate
            )
            self._at = max(self._at, now)
            if self._tokens >= 1.0 - 1e-9:  # float refill must not lose a whole token
                self._tokens -= 1.0
                return None
            return (1.0 - self._tokens) / rate
        if limit.shape is Shape.FIXED:
            if now >= self._at + limit.window:
                self._at += math.floor((now - self._at) / limit.window) * limit.window
                self._count = 0
            if self._count < limit.allowed(self._at - self._origin):
                self._count += 1
                return None
            return self._at + limit.window - now
        log = self._log
        while log and log[0] <= now - limit.window:
            log.popleft()
        if len(log) < limit.allowed(elapsed):
            log.append(now)
            return None
        return log[0] + limit.window - now

    def message(self, now: float) -> str:
        """The message of a 429 sent at ``now``."""
        origin = now if self._origin is None else self._origin
        if self.limit.shape is Shape.FIXED:
            return self.limit.message(self._at - origin)
        return self.limit.message(now - origin)


def retry_after_value(how: RetryAfter, wait: float, wall_now: float) -> str | None:
    """The ``Retry-After`` header for a wait of ``wait`` seconds, or None when not sent."""
    if how is RetryAfter.NONE:
        return None
    seconds = max(1, math.ceil(wait - 1e-9))  # whole seconds: the header has no fractions
    if how is RetryAfter.SECONDS:
        return str(seconds)
    return formatdate(wall_now + seconds, usegmt=True)


class Limits:
    """Every limiter of a sandbox: one per API when the limit is per API, else one shared."""

    def __init__(self, limit: RateLimit) -> None:
        self.limit = limit
        self._limiters: dict[str, Limiter] = {}

    def admit(self, api: str, now: float) -> tuple[float, Limiter] | None:
        """Count a request to ``api``; None when admitted, else (wait, the limiter refusing)."""
        key = api if self.limit.per_api else ""
        limiter = self._limiters.get(key)
        if limiter is None:
            limiter = self._limiters[key] = Limiter(self.limit)
        wait = limiter.admit(now)
        return None if wait is None else (wait, limiter)
