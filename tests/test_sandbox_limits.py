"""The sandbox's rate-limit shapes, driven by explicit times: no server, no sleeping."""

from __future__ import annotations

from email.utils import parsedate_to_datetime

import pytest

from batchthumb.sandbox.limits import (
    Limiter,
    Limits,
    RateLimit,
    RetryAfter,
    Shape,
    parse_schedule,
    retry_after_value,
)


def admitted(limiter: Limiter, times: list[float]) -> list[bool]:
    """Which of the requests at ``times`` the limiter lets through."""
    return [limiter.admit(t) is None for t in times]


def test_bucket_default_holds_a_tenth_of_a_second() -> None:
    """A 50/s bucket holds 5 by default: 5 pass at once, then one per 20 ms."""
    limiter = Limiter(RateLimit.per_second(50))
    assert admitted(limiter, [0.0] * 6) == [True] * 5 + [False]
    assert limiter.admit(0.0) == pytest.approx(0.02)
    assert admitted(limiter, [0.019, 0.021, 0.030, 0.041]) == [False, True, False, True]


@pytest.mark.parametrize("burst", [1, 3, 100])
def test_bucket_of_any_size_lets_that_many_through_at_once(burst: int) -> None:
    """A bucket of N lets N through at once and no more; a bucket of 1 holds one."""
    limiter = Limiter(RateLimit.per_second(10, burst=burst))
    assert admitted(limiter, [5.0] * (burst + 1)) == [True] * burst + [False]


def test_a_small_rate_still_holds_one() -> None:
    """The default bucket of a 5/s limit holds 1, never 0."""
    assert RateLimit.per_second(5).capacity() == 1


def test_fixed_one_second_window_resets_on_its_tick() -> None:
    """50 per 1 s window: 50 pass, the 51st waits for the tick a second after the first."""
    limiter = Limiter(RateLimit.per_second(50, shape=Shape.FIXED))
    assert admitted(limiter, [10.0 + i * 0.001 for i in range(51)]) == [True] * 50 + [False]
    assert limiter.admit(10.5) == pytest.approx(0.5)
    assert "limit:50,time:1 second" in limiter.message(10.5)
    assert admitted(limiter, [11.0] * 51) == [True] * 50 + [False]


def test_fixed_one_minute_window_counts_a_minute_of_requests() -> None:
    """5/s in 60 s windows: 300 at once, then nothing until the minute ends; the message says so."""
    limiter = Limiter(RateLimit.per_second(5, shape=Shape.FIXED, window=60.0))
    assert admitted(limiter, [0.0] * 301) == [True] * 300 + [False]
    assert limiter.admit(59.9) == pytest.approx(0.1)
    assert "limit:300,time:1 minute" in limiter.message(59.9)
    assert admitted(limiter, [125.0]) == [True]  # two ticks later, a fresh window


def test_fixed_windows_aligned_to_the_clock_start_on_its_whole_seconds() -> None:
    """Aligned: a first request at 10.7 s is in the window of 10 s, which resets at 11 s."""
    limiter = Limiter(RateLimit.per_second(3, shape=Shape.FIXED, aligned=True))
    assert admitted(limiter, [10.7, 10.8, 10.9, 10.95]) == [True] * 3 + [False]
    assert limiter.admit(10.95) == pytest.approx(0.05)
    assert admitted(limiter, [11.0] * 4) == [True] * 3 + [False]
    minute = Limiter(RateLimit.per_second(1, shape=Shape.FIXED, window=60.0, aligned=True))
    assert admitted(minute, [150.0] * 61) == [True] * 60 + [False]
    assert minute.admit(170.0) == pytest.approx(10.0)  # the minute of 120 s ends at 180 s


def test_sliding_window_counts_the_last_second() -> None:
    """2 in any second: requests at 0 and 0.6 pass, 0.9 not, 1.0 again (0 has left the window)."""
    limiter = Limiter(RateLimit.per_second(2, shape=Shape.SLIDING))
    assert admitted(limiter, [0.0, 0.6, 0.9, 1.0, 1.5]) == [True, True, False, True, False]
    assert limiter.admit(1.5) == pytest.approx(0.1)


def test_a_schedule_changes_the_rate_during_the_run() -> None:
    """100@0,25@3: after 3 s from the first request, a fixed window admits 25 a second."""
    limit = RateLimit(parse_schedule("100@0,25@3"), shape=Shape.FIXED)
    limiter = Limiter(limit)
    assert sum(admitted(limiter, [50.0] * 120)) == 100
    assert sum(admitted(limiter, [53.0] * 120)) == 25
    assert "limit:25," in limiter.message(53.0)


def test_a_schedule_changes_a_buckets_refill() -> None:
    """A bucket's refill follows the schedule: 10/s, then 1/s from 2 s on."""
    limiter = Limiter(RateLimit(parse_schedule("10@0,1@2"), burst=1))
    assert admitted(limiter, [0.0, 0.1, 0.15, 1.9, 2.5, 3.5]) == [
        True,
        True,
        False,
        True,
        False,
        True,
    ]


def test_a_default_bucket_holds_a_tenth_of_the_rate_in_force() -> None:
    """10/s then 40/s from 5 s: the default bucket holds 1, then 4 once the limit is raised."""
    limiter = Limiter(RateLimit(parse_schedule("10@0,40@5")))
    assert admitted(limiter, [0.0, 0.0]) == [True, False]
    assert admitted(limiter, [10.0] * 5) == [True] * 4 + [False]


def test_schedule_text_is_checked() -> None:
    """A schedule needs a rate from 0 s, increasing times and positive rates."""
    assert parse_schedule("50") == ((0.0, 50.0),)
    for bad in ("25@3", "100@0,25@0", "0@0", "x@0", "100@0,25@-1"):
        with pytest.raises(ValueError, match=r"(?i)rate|times|schedule"):
            parse_schedule(bad)


def test_per_api_limits_are_apart_and_a_shared_one_is_not() -> None:
    """Per API, PUT and list have a bucket each; shared, the list finds the PUT's bucket empty."""
    per_api = Limits(RateLimit.per_second(1, burst=1))
    assert per_api.admit("put", 0.0) is None
    assert per_api.admit("list", 0.0) is None
    shared = Limits(RateLimit.per_second(1, burst=1, per_api=False))
    assert shared.admit("put", 0.0) is None
    refused = shared.admit("list", 0.0)
    assert refused is not None and refused[0] == pytest.approx(1.0)


def test_retry_after_in_seconds_or_as_an_http_date() -> None:
    """Retry-After is whole seconds rounded up, an HTTP date as far ahead, or absent."""
    assert retry_after_value(RetryAfter.NONE, 0.3, 0.0) is None
    assert retry_after_value(RetryAfter.SECONDS, 0.02, 0.0) == "1"
    assert retry_after_value(RetryAfter.SECONDS, 2.5, 0.0) == "3"
    date = retry_after_value(RetryAfter.DATE, 2.5, 1_700_000_000.0)
    assert date is not None
    assert parsedate_to_datetime(date).timestamp() == 1_700_000_003.0


def test_bad_limits_are_refused() -> None:
    """A bucket of 0, a window of 0 s or a schedule not starting at 0 is refused."""
    for kwargs in ({"burst": 0}, {"window": 0.0}):
        with pytest.raises(ValueError, match=r"holds at least|lasts more"):
            RateLimit.per_second(5, **kwargs)
    with pytest.raises(ValueError, match="from 0 s"):
        RateLimit(((1.0, 5.0),))
