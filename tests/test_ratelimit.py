"""The rate governor, driven by a fake clock whose sleep advances time."""

from __future__ import annotations

import math

import pytest

from batchthumb.ratelimit import RateGovernor, ThrottlePolicy

pytestmark = pytest.mark.anyio


class FakeTime:
    """A monotonic clock that only moves when someone sleeps."""

    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


def governor(time: FakeTime, **kwargs: object) -> RateGovernor:
    return RateGovernor(clock=time.clock, sleep=time.sleep, jitter=lambda: 1.0, **kwargs)  # type: ignore[arg-type]


async def starts(gov: RateGovernor, count: int) -> list[float]:
    return [await gov.acquire() for _ in range(count)]


def most_in_any_second(times: list[float]) -> int:
    return max(sum(1 for t in times if s <= t < s + 1.0 - 1e-9) for s in times)


async def test_burst_one_spaces_starts_evenly_from_the_first() -> None:
    """With burst 1 there is no initial flood: starts are exactly 1/rate apart."""
    time = FakeTime()
    times = await starts(governor(time, rate=4.0, burst=1), 9)
    assert times == pytest.approx([i * 0.25 for i in range(9)])


async def test_no_second_ever_holds_more_than_rate_plus_burst() -> None:
    """Over a long run the mean rate is the configured one and no window exceeds rate + burst."""
    time = FakeTime()
    times = await starts(governor(time, rate=100.0, burst=5), 2000)
    assert most_in_any_second(times) <= 105
    mean = (len(times) - 5) / (times[-1] - times[0])
    assert mean == pytest.approx(100.0, rel=0.01)


async def test_burst_lets_that_many_start_at_once() -> None:
    """A burst of 3 starts three requests immediately, then paces the rest."""
    time = FakeTime()
    times = await starts(governor(time, rate=2.0, burst=3), 5)
    assert times == pytest.approx([0.0, 0.0, 0.0, 0.5, 1.0])


async def test_unlimited_rate_never_waits() -> None:
    """Rate 0 means no cap: every acquire returns at once."""
    time = FakeTime()
    gov = governor(time, rate=0.0)
    assert await starts(gov, 100) == [0.0] * 100
    assert gov.rate is None


async def test_retry_after_pauses_every_worker_for_that_long() -> None:
    """A throttle with Retry-After holds the next start back until the server's time."""
    time = FakeTime()
    gov = governor(time, rate=10.0)
    await gov.acquire()
    gov.on_throttle(started_at=0.0, retry_after=3.0)
    assert await gov.acquire() == pytest.approx(3.0)


async def test_throttle_without_retry_after_pauses_with_growing_backoff() -> None:
    """Without Retry-After the pause starts at the policy's and doubles while throttling lasts."""
    time = FakeTime()
    gov = governor(time, rate=10.0, policy=ThrottlePolicy(pause=0.5))
    started = await gov.acquire()
    gov.on_throttle(started_at=started, retry_after=None)
    second = await gov.acquire()
    assert second == pytest.approx(0.5)
    gov.on_throttle(started_at=second, retry_after=None)
    assert await gov.acquire() - second == pytest.approx(1.0, abs=0.2)


async def test_cut_lowers_the_rate_to_just_under_what_the_server_accepted() -> None:
    """An unlimited run that gets throttled settles below the rate the server took in the last second."""
    time = FakeTime()
    gov = governor(time, rate=0.0, policy=ThrottlePolicy(decrease=0.9))
    for _ in range(50):  # the server accepted 50 in the last second
        await gov.acquire()
        gov.on_success()
        time.now += 0.01
    gov.on_throttle(started_at=time.now, retry_after=None)
    assert gov.rate == pytest.approx(45.0)
    assert gov.stats.rate_cuts == 1


async def test_answers_to_requests_sent_before_a_cut_do_not_cut_again() -> None:
    """Many 429s for requests already in flight count as one congestion event."""
    time = FakeTime()
    gov = governor(time, rate=100.0)
    for _ in range(8):
        gov.on_throttle(started_at=0.0, retry_after=None)
    assert gov.stats.rate_cuts == 1
    assert gov.stats.throttled == 8


async def test_rate_creeps_back_up_while_requests_succeed() -> None:
    """After a cut, each success raises the rate a little, never above the configured cap."""
    time = FakeTime()
    gov = governor(time, rate=20.0, policy=ThrottlePolicy(decrease=0.5, pause=0.0))
    gov.on_throttle(started_at=0.0, retry_after=None)
    lowered = gov.rate
    assert lowered == pytest.approx(10.0)
    for _ in range(200):
        await gov.acquire()
        gov.on_success()
    assert lowered is not None and gov.rate is not None
    assert lowered < gov.rate <= 20.0


async def test_rare_throttles_with_retry_after_only_pause() -> None:
    """A server that rarely asks us to wait is obeyed, but the rate stays where it was."""
    time = FakeTime()
    gov = governor(time, rate=50.0)
    for _ in range(100):
        await gov.acquire()
        gov.on_success()
    gov.on_throttle(started_at=time.now, retry_after=1.0)
    assert gov.rate == 50.0
    assert gov.stats.rate_cuts == 0


async def test_frequent_throttles_with_retry_after_do_lower_the_rate() -> None:
    """When a large share of answers are throttled, Retry-After alone is not enough: the rate drops."""
    time = FakeTime()
    gov = governor(time, rate=50.0, policy=ThrottlePolicy(frequent=0.1, min_answers=20))
    for _ in range(18):
        await gov.acquire()
        gov.on_success()
    for _ in range(2):  # 2 of 20 answers throttled: 10%
        gov.on_throttle(started_at=await gov.acquire(), retry_after=0.0)
    assert gov.rate is not None and gov.rate < 50.0


async def test_a_few_early_throttles_are_not_yet_a_share() -> None:
    """Two 429s with Retry-After among the first answers of a run only pause it."""
    time = FakeTime()
    gov = governor(time, rate=50.0, policy=ThrottlePolicy(frequent=0.1, min_answers=20))
    for _ in range(3):
        await gov.acquire()
        gov.on_success()
    for _ in range(2):
        gov.on_throttle(started_at=await gov.acquire(), retry_after=0.0)
    assert gov.rate == 50.0
    assert gov.stats.rate_cuts == 0


async def test_retry_after_is_capped() -> None:
    """A Retry-After of a day is capped by the policy instead of stalling the run."""
    time = FakeTime()
    gov = governor(time, rate=1.0, policy=ThrottlePolicy(max_retry_after=30.0))
    gov.on_throttle(started_at=-1.0, retry_after=86400.0)
    assert await gov.acquire() == pytest.approx(30.0)


async def test_rate_never_drops_below_the_floor() -> None:
    """Repeated throttling cannot stall the run entirely."""
    time = FakeTime()
    gov = governor(time, rate=1.0, policy=ThrottlePolicy(min_rate=0.5, pause=0.0))
    for step in range(20):
        time.now = float(step)
        gov.on_throttle(started_at=time.now, retry_after=None)
    assert gov.rate == pytest.approx(0.5)
    assert not math.isinf(gov.rate or math.inf)


async def test_throttles_of_one_wave_do_not_grow_the_pause() -> None:
    """Throttled answers to requests already in flight at the last throttle add no pause."""
    time = FakeTime()
    gov = governor(time, rate=0.0, policy=ThrottlePolicy(pause=0.5))
    wave = [await gov.acquire() for _ in range(32)]
    for started in wave:
        gov.on_throttle(started_at=started, retry_after=None)
    assert gov.stats.throttled == 32
    assert await gov.acquire() <= 0.5


async def test_a_throttle_before_any_success_pauses_without_guessing_a_rate() -> None:
    """With no cap and nothing accepted yet there is no rate to cut from: pause only."""
    time = FakeTime()
    gov = governor(time, rate=0.0, policy=ThrottlePolicy(pause=0.5))
    started = await gov.acquire()
    gov.on_throttle(started_at=started, retry_after=None)
    assert gov.rate is None
    assert await gov.acquire() == pytest.approx(0.5)


async def test_a_cut_counts_the_last_second_exactly_after_old_successes_are_dropped() -> None:
    """Thousands of successes (old ones dropped in bulk) still give the exact last-second count."""
    time = FakeTime()
    gov = governor(time, rate=0.0, policy=ThrottlePolicy(decrease=0.5))
    times = [i * 0.002 for i in range(5000)]  # 500 a second for 10 s
    for when in times:
        time.now = when
        gov.on_success()
    gov.on_throttle(started_at=time.now, retry_after=None)
    accepted = sum(1 for when in times if when >= time.now - 1.0)
    assert gov.rate == pytest.approx(accepted * 0.5)
