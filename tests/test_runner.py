"""The runner against a scripted in-memory API: retries, verdicts, stops, and streaming."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from functools import partial

import anyio
import anyio.lowlevel
import pytest

from batchthumb.errors import ReportError
from batchthumb.model import Attempt, Item, ItemResult, Outcome, Verdict
from batchthumb.ratelimit import RateGovernor, ThrottlePolicy
from batchthumb.runner import UtcStamp, run_batch
from batchthumb.sending import RetryPolicy, Sender, Stop

pytestmark = pytest.mark.anyio

P = "919bb351ef424e2daaf3dd80c179fae9"
URL = f"/v1/upload/{P}/202506/1.png"
OK = Attempt(Verdict.OK, 200)


def plan(n: int) -> str:
    return f"{n:032d}"


def items(count: int) -> list[Item]:
    return [Item(P, plan(n), URL) for n in range(count)]


class ScriptedApi:
    """Answers from a per-plan script, then OK; can hold requests until released."""

    def __init__(self, script: dict[str, list[Attempt]] | None = None) -> None:
        self.script = {k: list(v) for k, v in (script or {}).items()}
        self.calls: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.hold: anyio.Event | None = None
        self.arrived = 0
        self.arrival = anyio.Event()

    async def set_thumbnail(self, project_id: str, plan_id: str, img_url: str) -> Attempt:
        self.calls.append(plan_id)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self.arrived += 1
        self.arrival.set()
        try:
            if self.hold is not None:
                await self.hold.wait()
            else:
                await anyio.lowlevel.checkpoint()
            queue = self.script.get(plan_id)
            return queue.pop(0) if queue else OK
        finally:
            self.in_flight -= 1

    async def wait_arrived(self, count: int) -> None:
        with anyio.fail_after(WAIT):
            while self.arrived < count:
                self.arrival = anyio.Event()
                await self.arrival.wait()


class Journal:
    def __init__(self) -> None:
        self.results: list[ItemResult] = []

    def record(self, result: ItemResult) -> None:
        self.results.append(result)

    def by_plan(self) -> dict[str, ItemResult]:
        return {r.plan_id: r for r in self.results}


NO_WAIT = RetryPolicy(retries=3, backoff=0.0)
FOUR_IN_FLIGHT = partial(RateGovernor, policy=ThrottlePolicy(start_window=4))
WAIT = 30  # seconds: the deadline of each wait, so a regression fails instead of hanging


async def run(api: ScriptedApi, work: list[Item], **kwargs: object) -> tuple[Journal, object]:
    journal = Journal()
    options: dict[str, object] = {
        "governor": RateGovernor(policy=ThrottlePolicy(pause=0.0)),
        "concurrency": 4,
        "retry": NO_WAIT,
    }
    options.update(kwargs)
    # What configures the sender goes to the sender; the rest to run_batch.
    sending = {
        k: options.pop(k) for k in ("governor", "retry", "stop", "sleep", "jitter") if k in options
    }
    sender = Sender(**sending)  # type: ignore[arg-type]
    with anyio.fail_after(WAIT):
        summary = await run_batch(work, api=api, journal=journal, sender=sender, **options)  # type: ignore[arg-type]
    return journal, summary


async def test_every_item_is_sent_once_and_journaled() -> None:
    """A clean run sends each item exactly once and records it as succeeded."""
    api = ScriptedApi()
    journal, summary = await run(api, items(200))
    assert sorted(api.calls) == [plan(n) for n in range(200)]
    assert [r.outcome for r in journal.results] == [Outcome.SUCCEEDED] * 200
    assert summary.tally.succeeded == 200  # type: ignore[attr-defined]


async def test_items_stream_through_a_fixed_pool_of_workers() -> None:
    """No more than `concurrency` requests are ever in flight, and a lazy stream is consumed lazily."""
    api = ScriptedApi()
    pulled = 0

    def stream() -> Iterator[Item]:
        nonlocal pulled
        for item in items(1000):
            pulled += 1
            # Never more than one item per worker taken ahead of what was journaled.
            assert pulled - len(journal_ref.results) <= 4
            yield item

    journal_ref = Journal()
    with anyio.fail_after(WAIT):
        await run_batch(
            stream(),
            api=api,
            journal=journal_ref,
            sender=Sender(governor=RateGovernor(), retry=NO_WAIT),
            concurrency=4,
        )
    assert api.max_in_flight == 4
    assert len(journal_ref.results) == 1000


async def test_a_permanent_error_is_not_retried_and_keeps_the_servers_words() -> None:
    """A 400 with an error code fails the item after one attempt, with the code and message."""
    bad = Attempt(Verdict.PERMANENT, 400, "PM.02175006", "invalid parameter img_url", "req-1")
    api = ScriptedApi({plan(1): [bad]})
    journal, _ = await run(api, items(3))
    failed = journal.by_plan()[plan(1)]
    assert (
        failed.outcome,
        failed.attempts,
        failed.error_code,
        failed.error,
        failed.request_id,
    ) == (
        Outcome.FAILED,
        1,
        "PM.02175006",
        "invalid parameter img_url",
        "req-1",
    )
    assert api.calls.count(plan(1)) == 1


async def test_a_retryable_error_is_retried_until_it_succeeds() -> None:
    """Two 503s then success: one item, three attempts, succeeded."""
    busy = Attempt(Verdict.RETRY, 503, "SANDBOX.503", "busy")
    api = ScriptedApi({plan(0): [busy, busy]})
    journal, _ = await run(api, items(1))
    [result] = journal.results
    assert (result.outcome, result.attempts) == (Outcome.SUCCEEDED, 3)


async def test_retries_run_out_and_an_unanswered_request_says_it_may_have_applied() -> None:
    """When every attempt goes unanswered, the failure says the server may have applied it."""
    lost = Attempt(
        Verdict.RETRY, error="connection lost; the server may have applied it", ambiguous=True
    )
    api = ScriptedApi({plan(0): [lost] * 10})
    journal, _ = await run(api, items(1))
    [result] = journal.results
    assert result.outcome is Outcome.FAILED
    assert result.attempts == NO_WAIT.retries + 1
    assert result.error is not None and "may have applied" in result.error


async def test_backoff_honours_retry_after_on_server_errors() -> None:
    """A 503 with Retry-After waits at least that long before the next attempt."""
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    busy = Attempt(Verdict.RETRY, 503, retry_after=7.0)
    api = ScriptedApi({plan(0): [busy]})
    await run(
        api, items(1), retry=RetryPolicy(retries=3, backoff=0.5), sleep=sleep, jitter=lambda: 0.0
    )
    assert slept == [7.0]


async def test_backoff_grows_exponentially_with_full_jitter() -> None:
    """Each retry waits a random share of a doubling ceiling, capped."""
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    busy = Attempt(Verdict.RETRY, 500)
    api = ScriptedApi({plan(0): [busy] * 5})
    policy = RetryPolicy(retries=6, backoff=1.0, max_backoff=10.0)
    await run(api, items(1), retry=policy, sleep=sleep, jitter=lambda: 0.5)
    assert slept == [0.5, 1.0, 2.0, 4.0, 5.0]


async def test_throttling_is_retried_and_slows_the_governor() -> None:
    """A throttled item is retried and the shared governor records the throttle."""
    throttled = Attempt(Verdict.THROTTLED, 429, "APIGW.0308")
    api = ScriptedApi({plan(0): [throttled]})
    governor = RateGovernor(policy=ThrottlePolicy(pause=0.0))
    journal, _ = await run(api, items(5), governor=governor)
    assert journal.by_plan()[plan(0)].outcome is Outcome.SUCCEEDED
    assert governor.stats.throttled == 1


async def test_throttles_do_not_use_up_an_items_retries() -> None:
    """10 throttles then success with 3 retries: succeeded; past 5 per retry, the item fails."""
    throttled = Attempt(Verdict.THROTTLED, 429, "APIGW.0308")
    api = ScriptedApi({plan(0): [throttled] * 10, plan(1): [throttled] * 16})
    journal, _ = await run(api, items(2))
    results = journal.by_plan()
    assert (results[plan(0)].outcome, results[plan(0)].attempts) == (Outcome.SUCCEEDED, 11)
    assert (results[plan(1)].outcome, results[plan(1)].attempts) == (Outcome.FAILED, 16)


async def test_rejected_credentials_abort_the_run_early() -> None:
    """A 401 stops the run: nothing new is started after it, and the summary says why."""
    api = ScriptedApi(
        {plan(n): [Attempt(Verdict.REJECTED, 401, "APIGW.0301", "bad token")] for n in range(50)}
    )
    journal, summary = await run(api, items(50), concurrency=1)
    assert len(api.calls) == 1
    assert [r.outcome for r in journal.results] == [Outcome.FAILED]
    assert "HTTP 401 APIGW.0301" in summary.aborted  # type: ignore[attr-defined]


async def test_the_breaker_stops_a_run_failing_the_same_way_again_and_again() -> None:
    """25 items in a row failing with the same 404 stop the run before the other 975."""
    missing = Attempt(Verdict.PERMANENT, 404, "APIGW.0101", "The API does not exist")
    api = ScriptedApi({plan(n): [missing] for n in range(1000)})
    journal, summary = await run(
        api, items(1000), concurrency=1, retry=RetryPolicy(retries=0, backoff=0.0, breaker=25)
    )
    assert len(journal.results) == 25
    assert "25 items in a row failed with HTTP 404 APIGW.0101" in summary.aborted  # type: ignore[attr-defined]


async def test_mixed_failures_do_not_trip_the_breaker() -> None:
    """A success between failures resets the count."""
    missing = Attempt(Verdict.PERMANENT, 404, "APIGW.0101")
    script = {plan(n): [missing] for n in range(100) if n % 10}
    api = ScriptedApi(script)
    _, summary = await run(
        api, items(100), concurrency=1, retry=RetryPolicy(retries=0, backoff=0.0, breaker=10)
    )
    assert summary.aborted is None  # type: ignore[attr-defined]


async def test_server_errors_that_run_out_of_retries_do_not_trip_the_breaker() -> None:
    """5xx failures are passing trouble, not a wrong job: 30 in a row do not stop the run."""
    down = Attempt(Verdict.RETRY, 503, "SANDBOX.0503", "Service unavailable")
    api = ScriptedApi({plan(n): [down] for n in range(30)})
    journal, summary = await run(
        api, items(30), concurrency=1, retry=RetryPolicy(retries=0, backoff=0.0, breaker=10)
    )
    assert summary.aborted is None  # type: ignore[attr-defined]
    assert len(journal.results) == 30
    assert all(r.outcome is Outcome.FAILED for r in journal.results)


async def test_alternating_failures_do_not_trip_the_breaker() -> None:
    """Only failures of the same signature count: two codes taking turns never reach 10."""
    one = Attempt(Verdict.PERMANENT, 400, "PM.02175006", "invalid parameter")
    other = Attempt(Verdict.PERMANENT, 404, "APIGW.0101", "The API does not exist")
    api = ScriptedApi({plan(n): [one if n % 2 else other] for n in range(30)})
    _, summary = await run(
        api, items(30), concurrency=1, retry=RetryPolicy(retries=0, backoff=0.0, breaker=10)
    )
    assert summary.aborted is None  # type: ignore[attr-defined]


async def test_graceful_stop_finishes_in_flight_and_starts_nothing_new() -> None:
    """After a stop, requests in flight complete and are journaled; no new item starts."""
    api = ScriptedApi()
    api.hold = anyio.Event()
    stop = Stop()
    journal = Journal()
    with anyio.fail_after(WAIT):
        async with anyio.create_task_group() as tg:

            async def go() -> None:
                await run_batch(
                    items(100), api=api, journal=journal, concurrency=4,
                    # A slow start's window of 4: the held requests are never answered.
                    sender=Sender(governor=FOUR_IN_FLIGHT(), retry=NO_WAIT, stop=stop),
                )  # fmt: skip

            tg.start_soon(go)
            await api.wait_arrived(4)
            stop.request("interrupted")
            api.hold.set()
    assert len(api.calls) == 4
    assert len(journal.results) == 4
    assert all(r.outcome is Outcome.SUCCEEDED for r in journal.results)


async def test_a_stop_interrupts_waits_for_the_rate_limiter() -> None:
    """A worker waiting for its slot at a slow rate gives up at once when the run stops."""
    api = ScriptedApi()
    stop = Stop()
    journal = Journal()
    with anyio.fail_after(WAIT):
        async with anyio.create_task_group() as tg:

            async def go() -> None:
                await run_batch(
                    items(10), api=api, journal=journal, concurrency=2,
                    sender=Sender(governor=RateGovernor(rate=0.001), retry=NO_WAIT, stop=stop),
                )  # fmt: skip

            tg.start_soon(go)
            await api.wait_arrived(1)
            stop.request("interrupted")
    assert len(journal.results) == 1


async def test_a_forced_stop_cancels_requests_in_flight_without_journaling_them() -> None:
    """The second signal cancels in-flight requests; they are absent from the journal."""
    api = ScriptedApi()
    api.hold = anyio.Event()
    stop = Stop()
    journal = Journal()
    with anyio.fail_after(WAIT):
        async with anyio.create_task_group() as tg:

            async def go() -> None:
                summary = await run_batch(
                    items(10), api=api, journal=journal, concurrency=3,
                    sender=Sender(governor=FOUR_IN_FLIGHT(), retry=NO_WAIT, stop=stop),
                )  # fmt: skip
                assert summary.stopped == "interrupted"

            tg.start_soon(go)
            await api.wait_arrived(3)
            stop.force("interrupted")
    assert journal.results == []


def test_utc_stamp_reads_like_datetime_isoformat_in_milliseconds() -> None:
    """UtcStamp gives what datetime's isoformat(timespec="milliseconds") gives, across seconds."""
    times = [
        1_700_000_000_123_456_789,
        1_700_000_000_123_999_999,  # the same millisecond again
        1_700_000_000_999_999_999,
        1_700_000_001_000_000_000,  # the next second
        1_767_225_599_500_000_000,  # the last second of a year
        1_767_225_600_000_000_000,
    ]
    clock = iter(times)
    stamp = UtcStamp(lambda: next(clock))
    for ns in times:
        when = datetime.fromtimestamp(ns // 10**9, UTC).replace(microsecond=ns // 1000 % 10**6)
        assert stamp() == when.isoformat(timespec="milliseconds")


async def test_a_journal_that_fails_stops_the_run_and_raises_plainly() -> None:
    """When a result cannot be journaled the run sends nothing more and raises ReportError."""

    class FullDisk(Journal):
        def record(self, result: ItemResult) -> None:
            if len(self.results) == 3:
                raise ReportError("r.jsonl: cannot write the report: No space left on device")
            super().record(result)

    api = ScriptedApi()
    journal = FullDisk()
    with pytest.raises(ReportError, match="No space left"), anyio.fail_after(WAIT):
        await run_batch(
            items(100), api=api, journal=journal, concurrency=1,
            sender=Sender(governor=RateGovernor(), retry=NO_WAIT),
        )  # fmt: skip
    assert len(journal.results) == 3
    assert len(api.calls) == 4
