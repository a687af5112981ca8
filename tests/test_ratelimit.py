"""The rate governor: unit tests on a fake clock, and simulated runs against sandbox limiters.

The simulations (tests/simulate.py) drive the real governor and the sandbox's real limiters on
virtual time, so "settles within 10% of the limit in 10 s" is checked exactly and instantly.
"""

from __future__ import annotations

import itertools
import math

import pytest

from batchthumb.client import stated_limit
from batchthumb.model import StatedLimit
from batchthumb.ratelimit import RateGovernor, ThrottlePolicy
from batchthumb.sandbox.limits import Limiter, RateLimit, RetryAfter, Shape, parse_schedule
from tests.simulate import VirtualTime, run, simulate

pytestmark = pytest.mark.anyio


class FakeTime:
    """A monotonic clock that only moves when someone sleeps.

    Its sleeps never yield, so no deadline could stop a governor that sleeps forever (zero at a
    time, or with no start ever due): past ``SLEEPS`` the test fails instead of hanging.
    """

    SLEEPS = 100_000  # far more than any test here sleeps

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps = 0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        if self.sleeps > self.SLEEPS:
            raise AssertionError(f"still sleeping after {self.SLEEPS} sleeps, at {self.now} s")
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


def test_the_fast_path_spaces_starts_by_the_rate_too() -> None:
    """try_acquire at rate 4: one start now, none 0.2 s later, the next at 0.25 s."""
    time = FakeTime()
    gov = governor(time, rate=4.0)
    assert gov.try_acquire() == 0.0
    time.now = 0.2
    assert gov.try_acquire() is None
    time.now = 0.25
    assert gov.try_acquire() == 0.25


def test_the_fast_path_lets_a_burst_start_at_once_then_paces() -> None:
    """try_acquire at rate 2 with a burst of 3: three starts at once, a fourth half a second on."""
    time = FakeTime()
    gov = governor(time, rate=2.0, burst=3)
    assert [gov.try_acquire() for _ in range(4)] == [0.0, 0.0, 0.0, None]
    time.now = 0.5
    assert gov.try_acquire() == 0.5


async def test_a_configured_rate_below_one_a_second_is_honoured() -> None:
    """rate 0.5: starts two seconds apart, not the slow start's pace for an unknown limit."""
    time = FakeTime()
    assert await starts(governor(time, rate=0.5), 3) == pytest.approx([0.0, 2.0, 4.0])


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


UNLIMITED_AFTER = 0.6  # seconds: past this, the slow start has left every rate behind


def rate_between(accepted: list[float], start: float, end: float) -> float:
    """Accepted requests per second in [start, end)."""
    return sum(1 for t in accepted if start <= t < end) / (end - start)


# -- pacing ------------------------------------------------------------------------------


async def answered_starts(gov: RateGovernor, count: int) -> list[float]:
    """Start ``count`` requests one after another, each accepted as soon as it starts."""
    times = []
    for _ in range(count):
        times.append(await gov.acquire())
        gov.on_success()
    return times


async def test_slow_start_begins_paced_and_doubles() -> None:
    """With no rate set, the first requests are paced (no flood) and the pace doubles quickly."""
    time = FakeTime()
    gov = governor(time)
    times = await answered_starts(gov, 40)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps[0] == pytest.approx(1 / ThrottlePolicy().start_rate, rel=0.05)
    assert gaps[-1] < gaps[0] / 4
    assert times[-1] < 0.3


def test_the_slow_start_doubles_its_rate_every_doubling() -> None:
    """No limit met: start_rate at the first start, twice that one doubling later, 8x three later."""
    time = FakeTime()
    time.now = 100.0  # a clock far from zero: doublings count from the first start
    gov = governor(time)
    policy = ThrottlePolicy()
    assert gov.rate == policy.start_rate
    gov.try_acquire()
    time.now = 100.0 + policy.doubling
    assert gov.rate == pytest.approx(2 * policy.start_rate)
    time.now = 100.0 + 3 * policy.doubling
    assert gov.rate == pytest.approx(8 * policy.start_rate)
    time.now = 200.0  # long unlimited: past any power of two a float holds
    assert gov.rate is None


def test_a_millisecond_on_the_rate_is_worked_out_again() -> None:
    """The rate is kept for less than a millisecond: at 1 ms the slow start's has grown."""
    time = FakeTime()
    gov = governor(time)
    gov.try_acquire()
    assert gov.rate == ThrottlePolicy().start_rate
    time.now = 0.001
    assert gov.rate == pytest.approx(ThrottlePolicy().start_rate * 2 ** (0.001 / 0.03))


async def test_an_unlimited_run_stops_pacing_within_a_fraction_of_a_second() -> None:
    """Past the slow start no acquire waits and the rate reads as unlimited."""
    time = FakeTime()
    gov = governor(time)
    await answered_starts(gov, 1000)  # the slow start's window grows to a fifth of that
    time.now = UNLIMITED_AFTER
    assert await starts(gov, 100) == [UNLIMITED_AFTER] * 100
    assert gov.try_acquire() == UNLIMITED_AFTER
    assert gov.rate is None


def test_slow_start_does_not_hold_back_an_unlimited_server_for_long() -> None:
    """32 workers, 20,000 requests, no limit: within 0.3 s of the time they need unpaced."""
    outcome, gov = simulate(None, items=20_000, workers=32, round_trip=0.002)
    unpaced = 20_000 * 0.002 / 32
    assert outcome.throttled == 0
    assert outcome.span < unpaced + 0.3
    assert gov.rate is None


async def test_try_acquire_honours_a_pause_when_the_rate_is_unlimited() -> None:
    """The fast path refuses to start anything during a Retry-After pause, then starts at once."""
    time = FakeTime()
    gov = governor(time)
    gov.try_acquire()
    gov.on_success()
    time.now = UNLIMITED_AFTER
    assert gov.try_acquire() == UNLIMITED_AFTER
    gov.on_throttle(started_at=UNLIMITED_AFTER, retry_after=2.0)
    assert gov.try_acquire() is None
    time.now = UNLIMITED_AFTER + 1.9
    assert gov.try_acquire() is None
    time.now = UNLIMITED_AFTER + 2.0
    assert gov.try_acquire() == pytest.approx(UNLIMITED_AFTER + 2.0)


async def test_the_slow_start_keeps_at_most_its_window_in_flight() -> None:
    """No answers yet: one request starts, the second waits for its answer, then two may."""
    time = FakeTime()
    gov = governor(time, policy=ThrottlePolicy(start_share=1000.0))
    first = await gov.acquire()
    time.now = 1.0  # long past any pacing: only the window holds the second back
    assert gov.try_acquire() is None
    gov.on_success()  # frees one place and widens the window by one
    assert gov.try_acquire() == 1.0
    assert gov.try_acquire() == 1.0
    assert gov.try_acquire() is None
    assert first < 1.0


def in_flight_allowed(gov: RateGovernor) -> int:
    """How many may start now with none in flight: the window (at most 1,000)."""
    started = 0
    while started < 1000 and gov.try_acquire() is not None:
        started += 1
    return started


@pytest.mark.parametrize(("successes", "window"), [(1, 1), (9, 1), (10, 2), (15, 3), (50, 10)])
async def test_the_slow_start_window_grows_to_a_fifth_of_the_requests_accepted(
    successes: int, window: int
) -> None:
    """One more per success, but never more in flight than 20% of the successes (at least 1)."""
    time = FakeTime()
    gov = governor(time)
    await answered_starts(gov, successes)
    time.now = 10.0  # long past any pacing: only the window holds starts back
    assert in_flight_allowed(gov) == window


def test_an_error_frees_its_place_in_the_window_and_widens_nothing() -> None:
    """A window of two, both in flight, one ends in an error: one more may start, not two, and
    the window is still two."""
    time = FakeTime()
    gov = governor(time, policy=ThrottlePolicy(start_window=2))
    assert gov.try_acquire() == 0.0
    time.now = 1.0
    assert gov.try_acquire() == 1.0
    assert gov.try_acquire() is None
    gov.on_answer()
    assert gov.try_acquire() == 1.0
    assert gov.try_acquire() is None


async def test_a_waiting_acquire_starts_when_an_answer_frees_the_window() -> None:
    """acquire waits while the window is full, and returns once an answer comes (an error too)."""
    time = FakeTime()
    answered: list[float] = []

    async def sleep(seconds: float) -> None:
        await time.sleep(seconds)
        if time.now >= 0.5 and not answered:
            answered.append(time.now)
            gov.on_answer()  # an error: it frees its place but widens nothing

    gov = RateGovernor(clock=time.clock, sleep=sleep, jitter=lambda: 1.0)
    await gov.acquire()
    assert await gov.acquire() == pytest.approx(answered[0])
    assert gov.try_acquire() is None  # one in flight again, and the window is still one


async def test_a_configured_rate_has_no_window() -> None:
    """With a rate set there is nothing to probe: starts follow the rate, answered or not."""
    time = FakeTime()
    gov = governor(time, rate=100.0)
    gov.try_acquire()
    gov.on_success()  # a success does not open a window either
    times = await starts(gov, 10)
    assert times == pytest.approx([0.01 * i for i in range(1, 11)])


async def test_after_a_cut_one_request_is_in_flight_until_one_is_accepted() -> None:
    """A cut leaves a window of one: a second start waits for an answer, a success widens it."""
    time = FakeTime()
    gov = governor(time, rate=100.0, burst=10)
    gov.on_throttle(started_at=await gov.acquire(), retry_after=None)  # the cut
    time.now = 1.0  # a burst of 10 is due: only the window holds starts back
    assert gov.try_acquire() == 1.0
    assert gov.try_acquire() is None
    gov.on_success()
    assert gov.try_acquire() == 1.0
    assert gov.try_acquire() == 1.0
    assert gov.try_acquire() is None


def test_after_a_cut_an_error_frees_the_one_place_too() -> None:
    """The one request in flight after a cut ends in an error: the next may start at once."""
    time = FakeTime()
    gov = governor(time, rate=100.0, burst=10)
    gov.on_throttle(started_at=0.0, retry_after=None)  # the cut
    time.now = 1.0
    assert gov.try_acquire() == 1.0
    assert gov.try_acquire() is None
    gov.on_answer()
    assert gov.try_acquire() == 1.0


def test_a_slot_the_window_filled_while_it_waited_is_not_taken() -> None:
    """After a cut the window is one: of two workers waiting for their slots, the first starts
    and the second waits for its answer, not for its slot alone."""
    vt = VirtualTime()
    gov = RateGovernor(rate=10.0, clock=vt.clock, sleep=vt.sleep, jitter=lambda: 1.0)
    gov.on_throttle(started_at=0.0, retry_after=None)  # the cut: 5/s, one in flight
    started: list[float] = []

    async def worker() -> None:
        started.append(await gov.acquire())

    async def answer() -> None:
        await vt.sleep(1.0)
        gov.on_success()

    run([worker(), worker(), answer()], vt)
    first, second = started
    assert first < 1.0 <= second


def test_the_cubic_stands_still_while_paused() -> None:
    """Paused for 0.25 s after a cut: 0.3 s after the pause the rate is where it is 0.3 s after
    the same moment with no pause."""
    paused_time, steady_time = FakeTime(), FakeTime()
    paused = cut_after_a_steady_second(paused_time, 1000)
    steady = cut_after_a_steady_second(steady_time, 1000)
    moment = paused_time.now + 0.2
    paused_time.now = steady_time.now = moment
    paused.on_throttle(started_at=moment, retry_after=None)  # no success since: a pause
    paused_time.now = moment + ThrottlePolicy().pause + 0.3  # jitter 1.0: the full pause
    steady_time.now = moment + 0.3
    assert paused.rate == pytest.approx(steady.rate)
    assert steady.rate is not None and steady.rate < 1000  # still climbing back


def test_a_window_that_closes_refuses_one_probe_per_pause_not_every_worker() -> None:
    """32 workers at 50 ms, a fixed window of 200 a second: past the first 2 s, under 3% 429s."""
    limit = RateLimit.per_second(200, shape=Shape.FIXED)
    outcome, _ = simulate(limit, items=4200, workers=32, latency=0.05)
    first = outcome.arrivals[0]
    later = [t for t in outcome.arrivals if t >= first + 2.0]
    refused_later = len(later) - outcome.accepted_between(first + 2.0, math.inf)
    assert refused_later <= 0.03 * len(later)


def first_wave_refusals(start_window: int, start_share: float) -> int:
    """429s in the first second: 32 workers, a 50 ms round trip, a fixed window of 20 a second."""
    limit = RateLimit.per_second(20, shape=Shape.FIXED)
    policy = ThrottlePolicy(pause=0.25, start_window=start_window, start_share=start_share)
    outcome, _ = simulate(limit, items=400, workers=32, latency=0.05, policy=policy)
    end = outcome.arrivals[0] + 1.0
    first = [t for t in outcome.arrivals if t < end]
    return len(first) - outcome.accepted_between(0.0, end)


def test_the_window_makes_a_first_wave_at_a_long_round_trip_cheaper() -> None:
    """At 50 ms the slow start's window costs at most three quarters of the 429s none costs,
    and holding it to a fifth of the successes at most a third of what the window alone costs."""
    unwindowed = first_wave_refusals(10**6, 1000.0)
    windowed = first_wave_refusals(2, 1000.0)
    shared = first_wave_refusals(2, 0.2)
    assert 0 < windowed <= 0.75 * unwindowed
    assert 0 < shared <= windowed / 3


def test_a_first_request_alone_meets_a_slow_limit_with_one_429() -> None:
    """5/s in a bucket of 1 at 50 ms, 20 PUTs (4 s, no probe yet): one 429 in all. Two first
    requests in flight together would cost two: the second is refused, and so is any sent
    behind it before its answer."""
    outcome, _ = simulate(
        RateLimit.per_second(5), items=20, workers=8, latency=0.05, states_limit=True
    )
    assert outcome.throttled == 1


# -- Retry-After and pauses ---------------------------------------------------------------


async def test_retry_after_pauses_every_worker_for_that_long() -> None:
    """Retry-After: 3 holds the next start until 3 s later."""
    time = FakeTime()
    gov = governor(time, rate=10.0)
    await gov.acquire()
    gov.on_throttle(started_at=0.0, retry_after=3.0)
    assert await gov.acquire() == pytest.approx(3.0)


async def test_retry_after_is_capped() -> None:
    """A Retry-After of a day is capped at max_retry_after."""
    time = FakeTime()
    gov = governor(time, rate=1.0, policy=ThrottlePolicy(max_retry_after=30.0))
    gov.on_throttle(started_at=-1.0, retry_after=86400.0)
    assert await gov.acquire() == pytest.approx(30.0)


async def test_persistent_throttling_pauses_longer_each_time() -> None:
    """Throttled again after a cut with no success between: pause, then twice as long."""
    time = FakeTime()
    gov = governor(time, rate=10.0, policy=ThrottlePolicy(pause=0.5))
    gov.on_throttle(started_at=await gov.acquire(), retry_after=None)  # the cut
    time.now += 0.01
    second = await gov.acquire()
    gov.on_throttle(started_at=second, retry_after=None)
    third = await gov.acquire()
    assert third - second == pytest.approx(0.5, abs=0.01)  # jitter 1.0: the full pause
    gov.on_throttle(started_at=third, retry_after=None)
    assert await gov.acquire() - third == pytest.approx(1.0, abs=0.01)


def test_retry_after_is_honoured_in_a_run() -> None:
    """Against a 60 s window sending Retry-After, nothing is sent into the closed window."""
    limit = RateLimit.per_second(5, shape=Shape.FIXED, window=60.0, retry_after=RetryAfter.SECONDS)
    outcome, _ = simulate(limit, items=400, workers=8, retry_after=lambda wait: float(wait))
    assert outcome.accepted_between(60.0, 61.0) == 100  # the second window opens, at once
    assert outcome.throttled <= 8  # the first wave's answers, then one wait as told


# -- cuts -----------------------------------------------------------------------------------


async def test_answers_to_requests_sent_before_a_cut_do_not_cut_again() -> None:
    """One cut for a wave: throttles of requests started before it count but change nothing."""
    time = FakeTime()
    gov = governor(time, rate=100.0)
    wave = [await gov.acquire() for _ in range(20)]
    for _ in wave[:10]:
        gov.on_success()
    gov.on_throttle(started_at=wave[10], retry_after=None)
    rate = gov.rate
    for started in wave[11:]:
        gov.on_throttle(started_at=started, retry_after=None)
    assert gov.stats.rate_cuts == 1
    assert gov.stats.throttled == 10
    assert gov.rate == rate


async def test_the_first_start_after_a_cut_waits_an_interval_at_the_new_rate() -> None:
    """The server just refused one, so its bucket is empty: no start at the moment of the cut."""
    time = FakeTime()
    gov = governor(time, rate=100.0)
    for _ in range(10):
        await gov.acquire()
        gov.on_success()
    started = await gov.acquire()
    gov.on_throttle(started_at=started, retry_after=None)
    cut_at, rate = time.now, gov.rate
    assert rate is not None
    assert gov.try_acquire() is None
    assert await gov.acquire() >= cut_at + 1.0 / rate - 1e-9


async def test_a_first_wave_over_milliseconds_is_not_taken_for_a_rate_per_second() -> None:
    """18 successes in 5 ms, then a 429: the new rate is not 18/s but far above it."""
    time = FakeTime()
    gov = governor(time, rate=1000.0)
    for _ in range(18):
        await gov.acquire()
        gov.on_success()
        time.now += 0.005 / 18
    gov.on_throttle(started_at=time.now, retry_after=None)
    assert gov.rate is not None and gov.rate >= 4 * 18


def test_a_first_wave_in_a_run_settles_at_the_limit_not_at_its_count() -> None:
    """50/s with a bucket of 18 and 32 workers: the run settles near 50/s, not near 16."""
    limit = RateLimit.per_second(50, burst=18)
    outcome, _ = simulate(limit, items=1000, workers=32)
    assert rate_between(outcome.accepted, 5.0, 15.0) >= 0.9 * 50
    assert outcome.throttled <= 0.03 * len(outcome.arrivals)


def cut_after_a_steady_second(
    time: FakeTime,
    rate: int,
    policy: ThrottlePolicy | None = None,
    stated: StatedLimit | None = None,
) -> RateGovernor:
    """A governor past its slow start that saw ``rate`` successes in a second, then a 429
    (naming ``stated``)."""
    gov = governor(time, rate=0.0, policy=policy)
    gov.try_acquire()
    time.now = 2.0
    for _ in range(rate):
        time.now += 1.0 / rate
        gov.on_success()
    gov.on_throttle(started_at=time.now, retry_after=None, stated=stated)  # a maximum of rate/s
    return gov


def test_a_cut_regains_the_old_rate_in_bounded_time_whatever_its_depth() -> None:
    """However low a cut leaves the rate, the old maximum is back within the recovery time."""
    for depth in (0.5, 0.1, 0.01):
        time = FakeTime()
        gov = cut_after_a_steady_second(time, 200)
        maximum = gov._high
        gov._low = maximum * depth
        recovery = max(ThrottlePolicy().recovery, ThrottlePolicy().probe_every / maximum)
        cut_at = time.now
        time.now = cut_at + recovery / 2  # concave: most of the way back already
        assert gov.rate == pytest.approx(maximum - (maximum - gov._low) / 8, rel=0.01), depth
        time.now = cut_at + recovery
        assert gov.rate == pytest.approx(maximum, rel=0.01), depth


def test_the_first_cuts_guess_is_regained_over_fewer_requests_than_a_measured_maximum() -> None:
    """At 20/s: the slow start's guess is back in 3 s (60 requests), a later cut's in 7.5 s (150)."""
    time = FakeTime()
    gov = cut_after_a_steady_second(time, 20)  # the first cut: a maximum of 20/s
    first_high, cut_at = gov._high, time.now
    time.now = cut_at + 60 / first_high
    assert gov.rate == pytest.approx(first_high, rel=0.01)
    gov.on_success()
    gov.on_throttle(started_at=time.now, retry_after=None)  # a later cut, at the rate refused
    high, cut_at = gov._high, time.now
    time.now = cut_at + 60 / high
    assert gov.rate is not None and gov.rate < 0.99 * high
    time.now = cut_at + 150 / high
    assert gov.rate == pytest.approx(high, rel=0.01)


def test_probes_past_a_named_limit_wait_longer_by_the_requests_in_flight_at_the_cut() -> None:
    """A refused probe costs a 429 per request in flight: with 3 more in flight at the cut, the
    probing past 97% of a named limit begins 4 x 50 requests' time later (at most 8 s)."""
    policy = ThrottlePolicy()
    for rate, in_flight, probes_after in ((20, 0, 50 / 19.4), (20, 3, 8.0), (200, 3, 200 / 194)):
        time = FakeTime()
        gov = governor(time)
        gov.try_acquire()
        time.now = 2.0
        for _ in range(rate):
            time.now += 1.0 / rate
            gov.on_success()
        for _ in range(in_flight + 1):
            assert gov.try_acquire() is not None
        gov.on_throttle(started_at=time.now, retry_after=None, stated=StatedLimit(rate, 1.0))
        cut_at = time.now
        time.now = cut_at + probes_after - 0.01
        assert gov.rate == pytest.approx(0.97 * rate), (rate, in_flight)
        time.now = cut_at + probes_after + policy.recovery / 2
        assert gov.rate == pytest.approx(0.97 * rate + rate * 0.15 / 8), (rate, in_flight)


def test_past_a_slow_maximum_it_probes_higher_within_a_second_not_a_recovery() -> None:
    """A 5/s maximum takes 10 s to approach; a second past it the rate is at 2x max - low."""
    time = FakeTime()
    gov = cut_after_a_steady_second(time, 5)
    maximum, low, cut_at = gov._high, gov._low, time.now
    policy = ThrottlePolicy()
    recovery = min(policy.max_recovery, policy.probe_every / maximum)
    assert recovery > 5 * policy.recovery  # a slow limit: a long, careful approach
    time.now = cut_at + recovery + policy.recovery
    assert gov.rate == pytest.approx(2 * maximum - low, rel=0.01)


def test_past_the_maximum_the_rate_climbs_a_cubic_then_doubles_each_recovery() -> None:
    """Half a recovery past the maximum: an eighth of the cut above it; from one past, doubling."""
    time = FakeTime()
    policy = ThrottlePolicy(recovery=0.5)
    gov = cut_after_a_steady_second(time, 200, policy)
    maximum, low, cut_at = gov._high, gov._low, time.now
    recovery = max(policy.recovery, policy.first_probe_every / maximum)
    step = policy.recovery
    time.now = cut_at + recovery + step / 2
    assert gov.rate == pytest.approx(maximum + (maximum - low) / 8)
    time.now = cut_at + recovery + 1.5 * step
    assert gov.rate == pytest.approx(2**0.5 * (2 * maximum - low))
    time.now = cut_at + recovery + 3 * step
    assert gov.rate == pytest.approx(4 * (2 * maximum - low))


# -- a limit the server names (limit:XX,time:1 second) ---------------------------------------

PER_SECOND = StatedLimit(50.0, 1.0)


async def named_cut_in_slow_start(time: FakeTime, stated: StatedLimit | None) -> RateGovernor:
    """Five successes in 20 ms of slow start, then a 429 naming ``stated``."""
    gov = governor(time)
    for _ in range(5):
        await gov.acquire()
        gov.on_success()
        time.now += 0.004
    gov.on_throttle(started_at=time.now, retry_after=None, stated=stated)
    return gov


async def test_a_named_limit_per_second_is_ridden_just_below_it_not_back_up_to_it() -> None:
    """50/s named in the first wave: the rate is 97% of it at once, and still is when the
    recovery ends (requests that bunch at the limit itself are refused)."""
    time = FakeTime()
    gov = await named_cut_in_slow_start(time, PER_SECOND)
    assert gov.rate == pytest.approx(0.97 * 50)
    time.now += ThrottlePolicy().named_probe_every / (0.97 * 50) - 0.01  # the recovery, nearly
    assert gov.rate == pytest.approx(0.97 * 50)


def test_refused_at_97_percent_of_a_named_limit_the_rate_dips_and_climbs_back_to_it() -> None:
    """Refused at 97% of a named 20/s (a bucket of 1 and jitter): the rate dips 3% and is back
    at 97% within the recovery, each time, not ratcheted down by each refusal."""
    time = FakeTime()
    named = StatedLimit(20.0, 1.0)
    gov = cut_after_a_steady_second(time, 20, stated=named)
    for _ in range(3):
        time.now += 0.1
        gov.on_success()
        gov.on_throttle(started_at=time.now, retry_after=None, stated=named)
        assert gov.rate == pytest.approx(0.97 * 0.97 * 20, rel=1e-3)
        time.now += ThrottlePolicy().named_probe_every / (0.97 * 20)  # the recovery
        assert gov.rate == pytest.approx(0.97 * 20)


async def throttled_starts(
    stated: StatedLimit | None, until: float, accepted: float = math.inf
) -> list[float]:
    """Starts of a run whose first request is accepted at 0 s, and the first at or after
    ``accepted``; every other one is refused."""
    time = FakeTime()
    gov = governor(time)
    await gov.acquire()
    gov.on_success()
    begun: list[float] = []
    while time.now < until:
        begun.append(await gov.acquire())
        if begun[-1] >= accepted:
            gov.on_success()
            accepted = math.inf
        else:
            gov.on_throttle(started_at=begun[-1], retry_after=None, stated=stated)
    return begun


async def test_a_window_named_per_minute_is_probed_less_often_and_again_as_it_resets() -> None:
    """Refused on and on by a window named per minute: pauses grow to 10 s, not 5, and one
    ends a minute after the window's first success, when it has reset."""
    begun = await throttled_starts(StatedLimit(1200.0, 60.0), until=70.0)
    gaps = [b - a for a, b in itertools.pairwise(begun)]
    assert 5.0 < max(gaps) <= 10.0
    assert any(start == pytest.approx(60.0) for start in begun)
    unnamed = await throttled_starts(None, until=70.0)
    assert max(b - a for a, b in itertools.pairwise(unnamed)) <= 5.0


async def test_with_nothing_ever_accepted_no_reset_is_assumed() -> None:
    """Every request refused from the first, by a window named per minute: no success tells
    when it began, so each pause is at least as long as the one before, none cut short."""
    time = FakeTime()
    gov = governor(time)
    begun: list[float] = []
    while time.now < 80.0:
        begun.append(await gov.acquire())
        gov.on_throttle(started_at=begun[-1], retry_after=None, stated=StatedLimit(1200.0, 60.0))
    gaps = [b - a for a, b in itertools.pairwise(begun)][2:]  # past the cut's own spacing
    assert all(b >= a - 1e-9 for a, b in itertools.pairwise(gaps))


async def test_the_next_minute_is_counted_from_the_first_success_after_the_pause() -> None:
    """The probe at 60 s is accepted, the next minute's allowance runs out at once: the pauses
    end again 60 s after that probe, at 120 s."""
    begun = await throttled_starts(StatedLimit(1200.0, 60.0), until=130.0, accepted=60.0)
    assert any(start == pytest.approx(120.0) for start in begun)


async def against_a_minute_window(
    limit: RateLimit, items: int, time: FakeTime | None = None
) -> tuple[list[float], list[float], RateGovernor]:
    """One worker sends ``items`` against the sandbox's limiter, each answered as it starts,
    reading the limit each 429 names: the starts accepted, the starts refused, the governor."""
    time = time or FakeTime()
    gov = governor(time)
    limiter = Limiter(limit)
    accepted: list[float] = []
    refused: list[float] = []
    while len(accepted) < items:
        start = gov.try_acquire()  # the runner's fast path first, as the runner does
        if start is None:
            start = await gov.acquire()
        if limiter.admit(time.now) is None:
            gov.on_success()
            accepted.append(start)
        else:
            stated = stated_limit(limiter.message(time.now))
            gov.on_throttle(started_at=start, retry_after=None, stated=stated)
            refused.append(start)
    return accepted, refused, gov


THIRTY_A_MINUTE = RateLimit.per_second(0.5, shape=Shape.FIXED, window=60.0)


async def test_a_minute_window_the_run_filled_is_probed_halfway_to_its_reset() -> None:
    """30 accepted in the first second of a window of 30 a minute: it cannot reopen before a
    reset, due by 60 s, so the run pauses at once (no cut) and probes halfway there, down to
    10 s apart: at 30, 45 and 52.5 s, then at 60 s, not every few seconds."""
    accepted, refused, gov = await against_a_minute_window(THIRTY_A_MINUTE, 31)
    first_refusal, *probes = refused
    assert first_refusal < 1.0 and accepted[29] < first_refusal
    middle = (first_refusal + 60.0) / 2
    assert probes == pytest.approx([middle, (middle + 60) / 2, (middle + 3 * 60) / 4], abs=0.01)
    assert accepted[30] == pytest.approx(60.0, abs=0.01)
    assert gov.stats.rate_cuts == 0


async def test_each_later_minute_sends_its_allowance_and_one_probe_then_waits() -> None:
    """Once a reset is found, the run counts: each minute it sends the 30 named and one probe
    past them, refused, and waits for the next reset, which the last refused probe before
    this one bounds (52.5 s + 60): no probe in between."""
    accepted, refused, _ = await against_a_minute_window(THIRTY_A_MINUTE, 120)
    later = [start for start in refused if start > 59.0]
    assert len(later) == 2  # one in each of the minutes from 60 and 120 s; the last needs none
    for minute, probe in zip((60, 120), later, strict=True):
        assert minute <= probe < minute + 1.0
    for minute in (60, 120, 180):
        assert sum(1 for start in accepted if minute - 0.01 < start < minute + 1.0) == 30


async def test_a_probe_past_a_minutes_allowance_accepted_ends_the_count() -> None:
    """The limit rose from 30 to 60 a minute: the probe past 30 is accepted, so the run no
    longer holds at 30 and sends the second minute's 60."""
    rising = RateLimit(((0.0, 0.5), (30.0, 1.0)), shape=Shape.FIXED, window=60.0)
    accepted, _, _ = await against_a_minute_window(rising, 90)
    assert sum(1 for start in accepted if 59.99 < start < 61.0) == 60


async def test_a_later_minute_is_probed_no_sooner_than_its_reset_can_come() -> None:
    """A clock-aligned window that resets at 60 s, met at 40 s: its reset is found at 70 s;
    the next is due after 100.3 s (a minute after the last refusal before that reset) and by
    130 s, so the second minute is probed from 100.3 s on, not halfway from 70 s."""
    aligned = RateLimit.per_second(0.5, shape=Shape.FIXED, window=60.0, aligned=True)
    time = FakeTime()
    time.now = 40.0
    accepted, refused, _ = await against_a_minute_window(aligned, 61, time)
    first_minute_refusal = refused[0]
    assert 40.0 < first_minute_refusal < 41.0
    assert 60.0 < accepted[30] < 71.0
    second = [start for start in refused if start > accepted[30] + 1.0]
    assert second and min(second) > first_minute_refusal + 60.0


@pytest.mark.parametrize("rate", [0.0, 1000.0])
def test_eight_workers_send_each_later_minute_its_allowance_and_one_probe(rate: float) -> None:
    """Eight workers, paced or not, against 300 a minute: the first minute costs what was in
    flight and the probes before its reset; each later one only its probe past 300."""
    limit = RateLimit.per_second(5.0, shape=Shape.FIXED, window=60.0)
    throttled = []
    for minutes in (2, 3, 4):  # the last minute's 300 finish the job: no probe past them
        outcome, _ = simulate(limit, items=300 * minutes, workers=8, rate=rate, states_limit=True)
        assert outcome.accepted[-1] == pytest.approx(60.0 * (minutes - 1), abs=1.0)
        throttled.append(outcome.throttled)
    assert throttled[0] <= 8 + 3
    assert [b - a for a, b in itertools.pairwise(throttled)] == [1, 1]


async def test_a_pause_for_a_full_minute_ends_with_one_probe() -> None:
    """Eight workers' worth in flight when a full minute window refuses: once it has reset,
    one request goes first, not eight that a window still closed would all refuse."""
    time = FakeTime()
    gov = governor(time)
    await answered_starts(gov, 40)
    gov.on_throttle(started_at=time.now, retry_after=None, stated=StatedLimit(40.0, 60.0))
    time.now = 60.0
    assert gov.try_acquire() is not None
    assert gov.try_acquire() is None


async def test_a_minute_window_still_closed_after_its_bound_is_cut_as_any_other() -> None:
    """Refused a minute after the first success, when a window full of this run's own has
    surely reset: the window is not this run's alone, so the refusal cuts the rate."""
    time = FakeTime()
    gov = governor(time)
    await answered_starts(gov, 40)
    time.now = 61.0
    gov.on_throttle(started_at=time.now, retry_after=None, stated=StatedLimit(40.0, 60.0))
    assert gov.stats.rate_cuts == 1


async def test_a_limit_named_per_minute_is_not_taken_for_a_rate() -> None:
    """600 a minute may go at once: the cut is the one an unnamed 429 would make."""
    named, unnamed = FakeTime(), FakeTime()
    per_minute = await named_cut_in_slow_start(named, StatedLimit(600.0, 60.0))
    plain = await named_cut_in_slow_start(unnamed, None)
    assert per_minute.rate == plain.rate
    assert per_minute.rate is not None and per_minute.rate != pytest.approx(0.97 * 10)


async def test_refused_below_a_named_limit_the_rate_refused_is_the_maximum() -> None:
    """Refused at 30/s under a named 50/s (a bucket of 1 and jitter): the maximum is 30/s."""
    time = FakeTime()
    gov = governor(time, rate=30.0)
    await answered_starts(gov, 10)
    gov.on_throttle(started_at=time.now, retry_after=None, stated=PER_SECOND)
    assert gov.rate == pytest.approx(0.97 * 30.0)


def test_throttled_for_a_whole_span_under_a_named_limit_the_span_decides() -> None:
    """200/s named, 100/s accepted through 1.1 s of 429s: the limit is shared, 100 it is."""
    time = FakeTime()
    gov = governor(time, rate=250.0)
    gov.try_acquire()
    stated = StatedLimit(200.0, 1.0)
    for step in range(1, 111):  # a success every 10 ms, a 429 every 100 ms
        time.now += 0.01
        gov.on_success()
        if step % 10 == 0:
            gov.on_throttle(started_at=time.now, retry_after=None, stated=stated)
        if step == 10:
            assert gov.rate == pytest.approx(0.97 * 200)  # the first cut goes by the name
    assert gov._high == pytest.approx(100.0, rel=0.02)


def test_a_whole_span_is_counted_from_the_first_cut_to_exactly_one_span_later() -> None:
    """The span decides at exactly one span after the first cut of a spell, not after it."""
    time = FakeTime()
    gov = governor(time, rate=250.0)
    gov.try_acquire()
    stated = StatedLimit(200.0, 1.0)
    time.now = 1.0
    gov.on_throttle(started_at=time.now, retry_after=None, stated=stated)  # the spell begins
    for step in range(1, 101):  # 100 successes over the span
        time.now = 1.0 + step / 101
        gov.on_success()
        if step == 50:
            gov.on_throttle(started_at=time.now, retry_after=None, stated=stated)
    time.now = 2.0
    gov.on_throttle(started_at=time.now, retry_after=None, stated=stated)
    assert gov._high == pytest.approx(100.0)


async def test_a_limit_named_over_part_of_a_second_is_a_rate_per_second() -> None:
    """25 per half second is 50 a second."""
    time = FakeTime()
    gov = await named_cut_in_slow_start(time, StatedLimit(25.0, 0.5))
    assert gov.rate == pytest.approx(0.97 * 50)


async def test_a_named_window_of_one_holds_after_one_success() -> None:
    """1 a second named, one success 0.5 s before the 429: the next start waits for the second."""
    time = FakeTime()
    gov = governor(time)
    await answered_starts(gov, 1)
    time.now = 0.5
    gov.on_throttle(started_at=time.now, retry_after=None, stated=StatedLimit(1.0, 1.0))
    assert await gov.acquire() >= 1.0 + 1 / 0.97 - 1e-9


async def test_a_full_named_window_holds_the_next_start_until_its_oldest_leaves_it() -> None:
    """5 a second named after 5 successes in 20 ms: nothing starts until a second after the first."""
    time = FakeTime()
    gov = await named_cut_in_slow_start(time, StatedLimit(5.0, 1.0))
    first_success = 0.0
    assert await gov.acquire() >= first_success + 1.0


async def test_a_named_window_with_room_waits_only_an_interval() -> None:
    """6 a second named after 5 successes: the window is not full, so no hold."""
    time = FakeTime()
    gov = await named_cut_in_slow_start(time, StatedLimit(6.0, 1.0))
    cut_at = time.now
    assert await gov.acquire() == pytest.approx(cut_at + 1 / (0.97 * 6))


def test_a_shallow_cut_still_probes_past_its_maximum_by_a_full_step() -> None:
    """After a 3% cut to a named 200/s, half a recovery past the recovery the rate is above
    97% of it by an eighth of 15% of 200/s."""
    time = FakeTime()
    gov = cut_after_a_steady_second(time, 200, stated=StatedLimit(200.0, 1.0))
    policy, cut_at = ThrottlePolicy(), time.now
    recovery = max(policy.recovery, policy.named_probe_every / (0.97 * 200))
    time.now = cut_at + recovery + policy.recovery / 2
    assert gov.rate == pytest.approx(0.97 * 200 + 200 * (1 - policy.beta) / 8)


# -- simulated runs against the sandbox's limiters ----------------------------------------


@pytest.mark.parametrize("rate", [50, 200, 1000])
@pytest.mark.parametrize("workers", [8, 32])
@pytest.mark.parametrize("named", [True, False], ids=["named", "unnamed"])
def test_a_token_bucket_is_ridden_within_ten_percent(rate: int, workers: int, named: bool) -> None:
    """Against a bucket of the sandbox's default size: 10% of the ideal, at most 3% throttled,
    whether its 429s name the limit or not."""
    limit = RateLimit.per_second(rate)
    items = 20 * rate + limit.capacity()
    outcome, _ = simulate(limit, items=items, workers=workers, states_limit=named)
    assert outcome.span <= 1.10 * 20.0
    assert outcome.throttled <= 0.03 * len(outcome.arrivals)


def test_a_bucket_holding_one_is_not_overrun_as_the_rate_climbs() -> None:
    """Re-booked starts keep their spacing: a 200/s bucket of 1 takes 600 PUTs in under 2x ideal."""
    outcome, _ = simulate(RateLimit.per_second(200, burst=1), items=600, workers=8)
    assert outcome.span <= 2 * 599 / 200
    assert outcome.throttled <= 0.03 * len(outcome.arrivals)


def test_a_slow_bucket_holding_one_costs_few_429s() -> None:
    """5/s, a bucket of 1, 100 PUTs, 429s naming no limit: within 1.2x the ideal 19.8 s and at
    most 7% throttled."""
    # 7%, not 6%: the first cut's guess (10/s here) is regained over 60 requests, not 150, so
    # that a limit above it is found in seconds; at 5/s that costs one more 429.
    outcome, _ = simulate(RateLimit.per_second(5), items=100, workers=8)
    assert outcome.span <= 1.2 * 99 / 5
    assert outcome.throttled <= 0.07 * len(outcome.arrivals)


@pytest.mark.parametrize("named", [True, False], ids=["named", "unnamed"])
def test_it_follows_a_limit_that_falls(named: bool) -> None:
    """100/s falling to 25/s at 10 s: 5 s later it sends at 25/s give or take 10%."""
    limit = RateLimit(parse_schedule("100@0,25@10"))
    outcome, _ = simulate(limit, items=1800, workers=16, states_limit=named)
    assert 0.9 * 25 <= rate_between(outcome.accepted, 15.0, 35.0) <= 25.5
    assert rate_between(outcome.accepted, 2.0, 10.0) >= 0.9 * 100


@pytest.mark.parametrize("named", [True, False], ids=["named", "unnamed"])
def test_it_follows_a_limit_that_rises(named: bool) -> None:
    """25/s rising to 100/s at 10 s: 15 s later it sends at 100/s give or take 10% (a named
    limit is probed past too: it may have risen)."""
    limit = RateLimit(parse_schedule("25@0,100@10"))
    outcome, _ = simulate(limit, items=3500, workers=16, states_limit=named)
    assert rate_between(outcome.accepted, 25.0, 35.0) >= 0.9 * 100


@pytest.mark.parametrize("named", [True, False], ids=["named", "unnamed"])
def test_a_sixty_second_window_is_waited_out_with_few_probes(named: bool) -> None:
    """A window of 1,200 a minute: the second window is used within 5 s of opening."""
    limit = RateLimit.per_second(20, shape=Shape.FIXED, window=60.0)
    outcome, _ = simulate(limit, items=2400, workers=32, states_limit=named)
    assert outcome.span <= 65.0
    assert outcome.throttled <= 0.03 * len(outcome.arrivals)


@pytest.mark.parametrize(
    "limit",
    [
        RateLimit.per_second(5, burst=1),
        RateLimit.per_second(20, burst=1),
        RateLimit.per_second(5, shape=Shape.FIXED),
        RateLimit.per_second(5, shape=Shape.SLIDING),
        RateLimit.per_second(1000, shape=Shape.FIXED),
        RateLimit(parse_schedule("10@0,5@5")),
    ],
    ids=[
        "bucket-of-1-5/s",
        "bucket-of-1-20/s",
        "fixed-5/s",
        "sliding-5/s",
        "fixed-1000/s",
        "falling",
    ],
)
def test_a_limit_its_429s_name_is_ridden_just_below_it(limit: RateLimit) -> None:
    """Named per second: 20 s of PUTs within 1.1x the ideal (1.12x against windows, whose
    ideal sends each window's allowance at once, where 3% under the limit costs 1.08x) and at
    most 3% throttled, where an unnamed limit of the same shape costs up to 7% (a bucket of 1)
    or 1.2x (fixed windows)."""
    rate = limit.schedule[-1][1]
    items = round(20 * rate)
    outcome, _ = simulate(limit, items=items, workers=8, jitter=0.001, states_limit=True)
    bucket = limit.shape is Shape.BUCKET
    ideal = (items - limit.capacity()) / rate if bucket else 20.0 - 1.0
    if len(limit.schedule) > 1:
        ideal = 5.0 + (items - 10 * 5) / rate
    assert outcome.sent_span <= (1.1 if bucket else 1.12) * ideal
    assert outcome.throttled <= 0.03 * len(outcome.arrivals)


@pytest.mark.parametrize("phase", [0.3, 0.7, 0.97])
def test_a_named_window_is_waited_out_wherever_the_gateways_windows_start(phase: float) -> None:
    """Fixed 1 s windows on the clock, not from the first request: the hold for a full named
    window costs at most that window, and the run stays within 1.1x and 3%."""
    for rate in (5, 50):
        limit = RateLimit.per_second(rate, shape=Shape.FIXED, aligned=True)
        outcome, _ = simulate(
            limit, items=20 * rate, workers=8, jitter=0.001, states_limit=True, start=phase
        )
        assert outcome.sent_span <= 1.1 * 20.0
        assert outcome.throttled <= 0.03 * len(outcome.arrivals)


def test_a_configured_rate_below_the_limit_is_never_throttled() -> None:
    """rate 40 against a 50/s bucket: not a single 429."""
    outcome, _ = simulate(RateLimit.per_second(50), items=800, workers=32, rate=40.0)
    assert outcome.throttled == 0
    assert outcome.span == pytest.approx(799 / 40, rel=0.01)


def test_a_configured_rate_above_the_limit_does_as_well_as_none() -> None:
    """rate 100 against a 50/s bucket: within 5% of the time with no rate, few 429s."""
    limit = RateLimit.per_second(50)
    capped, _ = simulate(limit, items=1000, workers=8, rate=100.0)
    free, _ = simulate(limit, items=1000, workers=8)
    assert capped.span <= 1.05 * free.span
    assert capped.throttled <= 0.03 * len(capped.arrivals)


def test_stats_say_how_often_and_at_what_rate() -> None:
    """The stats count every 429 and the cuts, and give the rate settled at."""
    outcome, gov = simulate(RateLimit.per_second(50), items=600, workers=8)
    stats = gov.stats
    assert stats.throttled == outcome.throttled > 0
    assert 1 <= stats.rate_cuts <= stats.throttled
    assert stats.rate is not None and 30 <= stats.rate <= 80


async def test_a_rare_429_with_retry_after_pauses_without_cutting() -> None:
    """One 429 with Retry-After among 50 successes: the pause is honoured, the rate not cut."""
    time = FakeTime()
    gov = governor(time, rate=100.0)
    for _ in range(50):
        await gov.acquire()
        gov.on_success()
    throttled_at = time.now
    gov.on_throttle(started_at=throttled_at, retry_after=1.0)
    assert gov.stats.rate_cuts == 0
    assert gov.rate == 100.0
    assert await gov.acquire() == pytest.approx(throttled_at + 1.0)


# -- what a cut measures ------------------------------------------------------------------


async def test_a_slow_start_cut_counts_successes_over_the_time_since_the_first_start() -> None:
    """A clock far from zero: 10 successes in the half second since the first start is 20/s."""
    time = FakeTime()
    time.now = 100.0
    gov = governor(time)
    gov.try_acquire()
    for _ in range(10):
        time.now += 0.05
        gov.on_success()
    gov.on_throttle(started_at=time.now, retry_after=None)
    assert gov.rate == pytest.approx(20 * ThrottlePolicy().first_beta)


async def test_a_429_before_any_success_cuts_the_slow_start_to_half_its_rate() -> None:
    """Refused first, 0.1 s into the slow start: the rate refused, halved; never the floor."""
    time = FakeTime()
    gov = governor(time)
    gov.try_acquire()
    time.now = 0.1
    refused = gov.rate
    assert refused is not None
    gov.on_throttle(started_at=time.now, retry_after=None)
    assert gov.rate == pytest.approx(refused * ThrottlePolicy().first_beta)


async def test_a_cut_after_a_quiet_span_goes_by_the_rate_refused() -> None:
    """Nothing accepted in the last span before a later 429: beta times the rate it refused."""
    time = FakeTime()
    gov = cut_after_a_steady_second(time, 100)
    time.now += 0.5
    gov.on_success()  # the throttle streak ends, and this success ages out of the span
    time.now += 2.0
    refused = gov.rate
    assert refused is not None
    gov.on_throttle(started_at=time.now, retry_after=None)
    assert gov.stats.rate_cuts == 2
    assert gov.rate == pytest.approx(refused * ThrottlePolicy().beta)


async def test_throttled_for_a_whole_span_the_maximum_is_what_the_span_accepted() -> None:
    """Cuts a span apart: the second's maximum is the successes over that span (ends included) per second."""
    time = FakeTime()
    policy = ThrottlePolicy(span=0.5)
    gov = governor(time, policy=policy)
    gov.try_acquire()
    time.now = 1.0  # unpaced by now, and nothing accepted: the first cut starts low
    gov.on_throttle(started_at=time.now, retry_after=None)
    assert gov.rate == pytest.approx(policy.start_rate * policy.first_beta)
    for at in (1.0, 1.2, 1.3):  # the answers of requests in flight at the cut
        time.now = at
        gov.on_success()
    time.now = 1.5  # exactly a span after the first cut: the same congested spell
    gov.on_throttle(started_at=time.now, retry_after=None)
    assert gov.stats.rate_cuts == 2
    assert gov.rate == pytest.approx(3 / policy.span * policy.beta)


async def test_after_a_pause_a_slow_rate_that_climbs_is_booked_again() -> None:
    """A pause at 0.5/s, then the cubic's climb: the next gap follows the new rate, not the old slots."""
    time = FakeTime()
    gov = governor(time)
    await gov.acquire()  # every start through the waiting path, none through the fast one
    time.now = 3.0
    gov.on_success()
    gov.on_throttle(started_at=time.now, retry_after=None)  # a maximum of 1/s, cut to 0.5/s
    gov.on_throttle(started_at=time.now, retry_after=0.01)
    first = await gov.acquire()
    gov.on_success()
    second = await gov.acquire()
    climbed = gov.rate
    assert climbed is not None
    gov.on_success()
    third = await gov.acquire()
    assert third - second == pytest.approx(1 / climbed)
    assert third - second < 0.8 * (second - first)


def test_after_a_pause_the_rate_restarts_at_an_eighth_of_the_cut_and_doubles_back() -> None:
    """Throttled again after a cut to 500/s: at the pause's end 62.5/s, twice that a doubling later."""
    time = FakeTime()
    policy = ThrottlePolicy()
    gov = cut_after_a_steady_second(time, 1000)  # a maximum of 1000/s, cut to 500/s
    low = gov._low
    gov.on_throttle(started_at=time.now + 0.001, retry_after=None)  # no success since: a pause
    resumed = time.now + policy.pause  # jitter 1.0: the full first pause
    assert gov.try_acquire() is None
    time.now = resumed
    assert gov.rate == pytest.approx(low / 8)
    time.now = resumed + policy.doubling
    assert gov.rate == pytest.approx(low / 4)


# -- Retry-After: when it cuts, and what a pause voids --------------------------------------


def frequent_429s_with_retry_after(time: FakeTime) -> RateGovernor:
    """18 successes, then two 429s saying "0.25 s" a span apart: 20 answers, a tenth refused."""
    gov = governor(time, rate=100.0)
    gov.try_acquire()
    time.now = 1.0
    for _ in range(18):
        gov.on_success()
    gov.on_throttle(started_at=time.now, retry_after=0.25)  # 19 answers: too few to judge
    time.now = 2.0
    gov.on_throttle(started_at=time.now, retry_after=0.25)
    return gov


def test_429s_with_retry_after_cut_once_they_are_a_tenth_of_twenty_answers() -> None:
    """At least min_answers answers over the span, at least `frequent` of them 429s: a cut too."""
    time = FakeTime()
    gov = frequent_429s_with_retry_after(time)
    assert gov.stats.rate_cuts == 1
    assert gov.stats.throttled == 2
    assert gov.rate == pytest.approx(18 * ThrottlePolicy().first_beta)


async def test_more_answers_with_the_same_retry_after_keep_the_interval_the_cut_booked() -> None:
    """The wave's other 429, telling the same Retry-After: the first start is still an interval past the pause."""
    time = FakeTime()
    gov = frequent_429s_with_retry_after(time)
    rate = gov.rate
    assert rate is not None
    gov.on_throttle(started_at=time.now, retry_after=0.25)  # sent before the cut
    assert gov.stats.rate_cuts == 1
    assert await gov.acquire() == pytest.approx(2.25 + 1.0 / rate)


async def test_a_retry_after_in_the_past_pauses_nobody() -> None:
    """A Retry-After below zero (a date behind our clock) is a wait of zero, not of a second."""
    time = FakeTime()
    gov = governor(time, rate=10.0)
    await gov.acquire()
    time.now = 0.5
    gov.on_throttle(started_at=0.0, retry_after=-5.0)
    assert await gov.acquire() == pytest.approx(0.5)


async def test_a_pause_voids_a_start_booked_before_it() -> None:
    """A worker asleep until its slot when a Retry-After comes starts when the pause ends."""
    time = FakeTime()
    throttled: list[float] = []

    async def sleep(seconds: float) -> None:
        if not throttled:  # the first request's answer, while the second waits for its slot
            throttled.append(time.now)
            gov.on_throttle(started_at=0.0, retry_after=3.0)
        await time.sleep(seconds)

    gov = RateGovernor(rate=10.0, clock=time.clock, sleep=sleep, jitter=lambda: 1.0)
    assert await gov.acquire() == 0.0
    assert await gov.acquire() == pytest.approx(3.0)
    assert throttled == [0.0]


def test_the_answers_that_judge_a_retry_after_are_those_of_the_last_span() -> None:
    """A success exactly a span old still counts, an older one not: 18 successes, two 429s, a cut."""
    time = FakeTime()
    gov = governor(time, rate=100.0)
    gov.try_acquire()
    for at, successes in ((0.0, 1), (0.5, 1), (1.5, 17)):
        time.now = at
        for _ in range(successes):
            gov.on_success()
    gov.on_throttle(started_at=time.now, retry_after=0.25)  # 19 answers: too few to judge
    gov.on_throttle(started_at=time.now, retry_after=0.25)  # 20, a tenth of them 429s
    assert gov.stats.rate_cuts == 1
