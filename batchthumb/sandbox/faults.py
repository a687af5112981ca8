"""Faults the sandbox injects: scripted and random ones into PUTs, latency into every route.

Scripted faults are deterministic and take precedence over random ones, which draw from a
seeded ``random.Random``. Rate limits are in :mod:`batchthumb.sandbox.limits`.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass, field

from batchthumb.sandbox.limits import THROTTLE_CODES, THROTTLE_MSG

# Sandbox-only codes: the real service's 5xx bodies are not documented.
SANDBOX_500 = "SANDBOX.0500"
SANDBOX_503 = "SANDBOX.0503"
TOKEN_EXPIRED_MSG = "Incorrect IAM authentication information: The token must be updated."
PM_THROTTLE_CODE = "PM.02153001"
PM_THROTTLE_MSG = "访问频率过高,请稍后再试"
THROTTLE_CODE = THROTTLE_CODES[0]

_DEFAULTS: dict[int, tuple[str, str]] = {
    400: ("PM.02152001", "Parameter error."),
    401: ("APIGW.0301", "Incorrect IAM authentication information: decrypt token fail"),
    # Real code for "no permission on this plan" is unknown (facts §5.2); a PM code is likely.
    403: ("PM.02150010", "The user is not a member of the project."),
    404: ("APIGW.0101", "The API does not exist or has not been published in the environment"),
    413: ("APIGW.0201", "Request entity too large"),
    # The limit of random 429s is a placeholder; a rate limit names its own.
    429: (THROTTLE_CODE, THROTTLE_MSG.format(limit=5, time="1 second")),
    500: (SANDBOX_500, "Internal server error (sandbox fault)."),
    502: ("SANDBOX.0502", "Bad gateway (sandbox fault)."),
    503: (SANDBOX_503, "Service unavailable (sandbox fault)."),
    504: ("SANDBOX.0504", "Gateway timeout (sandbox fault)."),
}


def default_error(status: int) -> tuple[str, str]:
    """Return the (error_code, error_msg) the sandbox sends by default with HTTP ``status``."""
    return _DEFAULTS.get(status, (f"SANDBOX.{status:04d}", "Sandbox fault."))


class FaultKind(enum.Enum):
    """What a fault does to a request."""

    STATUS = "status"  # answer with an error status and body
    STATUS_ERROR = "status_error"  # HTTP 200 whose body says "status": "error"
    DROP = "drop"  # close the connection before applying, no answer
    DROP_AFTER_APPLY = "drop_after_apply"  # apply, then close without an answer
    EXPIRE_TOKEN = "expire_token"  # 401 "The token must be updated"


@dataclass(frozen=True, slots=True)
class Fault:
    """One injected fault; build it with the class methods."""

    kind: FaultKind
    http_status: int = 200
    error_code: str = ""
    error_msg: str = ""
    retry_after: str | None = None

    @classmethod
    def status(
        cls,
        code: int,
        error_code: str | None = None,
        error_msg: str | None = None,
        retry_after: str | None = None,
    ) -> Fault:
        """Answer HTTP ``code`` with an error body; codes and messages default per status."""
        if not 400 <= code <= 599:
            raise ValueError(f"a status fault needs a 4xx or 5xx code, got {code}")
        default_code, default_msg = default_error(code)
        return cls(
            FaultKind.STATUS,
            code,
            error_code or default_code,
            error_msg or default_msg,
            retry_after,
        )

    @classmethod
    def pm_throttle(cls) -> Fault:
        """Answer 400 ``PM.02153001`` (the service's own throttling, not a 429)."""
        return cls(FaultKind.STATUS, 400, PM_THROTTLE_CODE, PM_THROTTLE_MSG)

    @classmethod
    def status_error(cls, error_code: str | None = None, error_msg: str | None = None) -> Fault:
        """Answer HTTP 200 with ``{"status": "error", ...}`` and change nothing."""
        return cls(
            FaultKind.STATUS_ERROR,
            200,
            error_code or "SANDBOX.0200",
            error_msg or "The request failed (sandbox fault: HTTP 200 with status error).",
        )

    @classmethod
    def drop(cls) -> Fault:
        """Close the connection without answering and without applying the change."""
        return cls(FaultKind.DROP)

    @classmethod
    def drop_after_apply(cls) -> Fault:
        """Apply the change, then close the connection without answering."""
        return cls(FaultKind.DROP_AFTER_APPLY)

    @classmethod
    def expire_token(cls) -> Fault:
        """Answer 401 ``APIGW.0301`` saying the token must be updated."""
        return cls(FaultKind.EXPIRE_TOKEN, 401, "APIGW.0301", TOKEN_EXPIRED_MSG)


@dataclass(slots=True)
class _Scripted:
    fault: Fault
    remaining: int
    plan_id: str | None


@dataclass(slots=True)
class Faults:
    """The faults a sandbox injects; mutable, tests may change fields between requests.

    ``latency`` seconds are added to every API request (PUT, list, upload, download, IAM),
    plus up to ``jitter`` seconds more, drawn uniformly from their own ``random.Random(seed)``.
    The ``p*`` probabilities apply to PUTs, drawn from ``random.Random(seed)``;
    ``retry_after`` is the ``Retry-After`` value of random 429s.
    """

    latency: float = 0.0
    jitter: float = 0.0
    p500: float = 0.0
    p503: float = 0.0
    p429: float = 0.0
    retry_after: str | None = None
    p_pm_throttle: float = 0.0
    p_drop: float = 0.0
    p_drop_after_apply: float = 0.0
    seed: int | None = None
    _random: random.Random = field(init=False, repr=False)
    _jitter_random: random.Random = field(init=False, repr=False)
    _script: list[_Scripted] = field(init=False, repr=False, default_factory=list)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)
        self._jitter_random = random.Random(self.seed)

    def delay(self) -> float:
        """Seconds to hold the next request: the latency plus its jitter."""
        if self.jitter <= 0:
            return self.latency
        return self.latency + self._jitter_random.random() * self.jitter

    def script(self, fault: Fault, times: int = 1, plan_id: str | None = None) -> None:
        """Give ``fault`` to the next ``times`` PUTs (to any plan, or only to ``plan_id``)."""
        if times < 1:
            raise ValueError(f"times must be at least 1, got {times}")
        self._script.append(_Scripted(fault, times, plan_id))

    @property
    def scripted_remaining(self) -> int:
        """How many scripted faults are still to be given out."""
        return sum(entry.remaining for entry in self._script)

    def take(self, plan_id: str) -> Fault | None:
        """The fault for a PUT to ``plan_id``: the first matching scripted one, else random."""
        for index, entry in enumerate(self._script):
            if entry.plan_id is None or entry.plan_id == plan_id:
                entry.remaining -= 1
                if entry.remaining == 0:
                    del self._script[index]
                return entry.fault
        return self._random_fault()

    def _random_fault(self) -> Fault | None:
        odds = (
            self.p500,
            self.p503,
            self.p429,
            self.p_pm_throttle,
            self.p_drop,
            self.p_drop_after_apply,
        )
        if not any(odds):
            return None
        draw = self._random.random()
        for index, odds_of in enumerate(odds):
            if draw < odds_of:
                return self._random_kind(index)
            draw -= odds_of
        return None

    def _random_kind(self, index: int) -> Fault:
        if index == 0:
            return Fault.status(500)
        if index == 1:
            return Fault.status(503)
        if index == 2:
            return Fault.status(429, retry_after=self.retry_after)
        if index == 3:
            return Fault.pm_throttle()
        if index == 4:
            return Fault.drop()
        return Fault.drop_after_apply()
