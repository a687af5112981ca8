"""The runner against a scripted in-memory API (retries, verdicts, stops, streaming), and its
images uploaded and copied over real HTTP against the sandbox."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from batchthumb.auth import StaticToken
from batchthumb.client import open_api
from batchthumb.errors import ReportError
from batchthumb.images import inspect_image
from batchthumb.model import (
    Attempt,
    Item,
    ItemResult,
    LocalImage,
    Outcome,
    SourceImage,
    StatedLimit,
    Tally,
    Verdict,
)
from batchthumb.ratelimit import RateGovernor, ThrottlePolicy
from batchthumb.runner import RunSummary, Uploads, UtcStamp, run_batch
from batchthumb.sandbox import Fault, RateLimit, Sandbox, SandboxConfig
from batchthumb.sending import Channel, RetryPolicy, Sender, Stop, ThumbnailApi
from tests.imagedata import png
from tests.test_ratelimit import FakeTime

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
        self.uploads: list[tuple[str, str, str]] = []

    def record(self, result: ItemResult) -> None:
        self.results.append(result)

    def record_upload(self, project_id: str, cache_key: str, img_url: str) -> None:
        self.uploads.append((project_id, cache_key, img_url))

    def by_plan(self) -> dict[str, ItemResult]:
        return {r.plan_id: r for r in self.results}


NO_WAIT = RetryPolicy(retries=3, backoff=0.0)
FOUR_IN_FLIGHT = partial(RateGovernor, policy=ThrottlePolicy(start_window=4))
WAIT = 30  # seconds: the deadline of each wait, so a regression fails instead of hanging


async def run(api: ScriptedApi, work: list[Item], **kwargs: object) -> tuple[Journal, object]:
    journal = kwargs.pop("journal", None) or Journal()
    assert isinstance(journal, Journal)
    options: dict[str, object] = {
        "governor": RateGovernor(policy=ThrottlePolicy(pause=0.0)),
        "concurrency": 4,
        "retry": NO_WAIT,
    }
    options.update(kwargs)
    # What configures the sender goes to the sender; the rest to run_batch.
    sending = {
        k: options.pop(k)
        for k in ("governor", "retry", "stop", "sleep", "jitter", "events")
        if k in options
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


async def test_the_limit_a_429_names_reaches_the_governor() -> None:
    """A 429 naming 7 a second: the run goes on just below 7/s, not at a guess of its own."""
    named = Attempt(Verdict.THROTTLED, 429, "APIGW.0308", limit=StatedLimit(7.0, 1.0))
    api = ScriptedApi({plan(0): [named]})
    governor = RateGovernor(policy=ThrottlePolicy(pause=0.0))
    await run(api, items(3), governor=governor, concurrency=1)
    rate = governor.stats.rate
    assert rate is not None and 0.97 * 7 <= rate <= 7.0


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


def test_utc_stamp_is_right_from_its_first_call_at_any_time() -> None:
    """Even the epoch's first millisecond is formatted: no starting value passes for a time."""
    assert UtcStamp(lambda: 1_000_000)() == "1970-01-01T00:00:00.001+00:00"


@pytest.fixture
def far_east() -> Iterator[None]:
    """The process's local time zone set to UTC+8 (a POSIX rule: no tz database needed)."""
    saved = os.environ.get("TZ")
    os.environ["TZ"] = "XST-8"
    time.tzset()
    try:
        yield
    finally:
        if saved is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = saved
        time.tzset()


@pytest.mark.usefixtures("far_east")
def test_utc_stamp_is_utc_whatever_the_local_time_zone() -> None:
    """On a machine eight hours east of UTC, the stamp still gives the time in UTC."""
    stamp = UtcStamp(lambda: 1_700_000_000_123_000_000)
    assert stamp() == "2023-11-14T22:13:20.123+00:00"


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


class Events:
    """Keeps every event a run emits, in order."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, object]]] = []

    def emit(self, event: str, **fields: object) -> None:
        self.seen.append((event, fields))

    def named(self, event: str) -> list[dict[str, object]]:
        return [fields for name, fields in self.seen if name == event]


async def test_a_failed_item_is_one_event_with_its_answer_and_a_success_is_none() -> None:
    """item_failed gives project, plan, status, code, error and attempts; a success emits none."""
    bad = Attempt(Verdict.PERMANENT, 400, "PM.02175006", "invalid parameter img_url")
    busy = Attempt(Verdict.RETRY, 503, "SANDBOX.0503", "busy")
    events = Events()
    await run(ScriptedApi({plan(1): [busy, bad]}), items(3), events=events)
    assert events.named("item_failed") == [
        {
            "project_id": P,
            "plan_id": plan(1),
            "http_status": 400,
            "error_code": "PM.02175006",
            "error": "invalid parameter img_url",
            "attempts": 2,
        }
    ]
    assert [e["subject"] for e in events.named("retry")] == [f"plan {plan(1)}"]


class Watching:
    """A progress display that keeps what it was shown."""

    def __init__(self) -> None:
        self.done: list[int] = []
        self.beating: object = None
        self.closed = False

    def update(self, tally: Tally) -> None:
        self.done.append(tally.done)

    def listed(self, done: int, total: int) -> None:
        raise AssertionError("the runner lists nothing")

    async def heartbeat(self, tally: Tally) -> None:
        self.beating = tally

    def close(self) -> None:
        self.closed = True


async def test_the_progress_display_sees_each_item_the_runs_tally_and_the_end() -> None:
    """Progress is updated once per finished item, beats on the run's own tally, and is closed."""
    progress = Watching()
    _, summary = await run(ScriptedApi(), items(5), progress=progress)
    assert progress.done == [1, 2, 3, 4, 5]
    assert progress.beating is summary.tally  # type: ignore[attr-defined]
    assert progress.closed


async def test_times_come_from_the_injected_clock_and_results_are_stamped_in_utc() -> None:
    """elapsed_ms and the run's elapsed are differences of the run's clock; finished_at is UTC."""
    ticks = iter([100.0, 100.5, 102.0, 110.0])  # run start, item start, item end, run end
    busy = Attempt(Verdict.RETRY, 503)
    journal, summary = await run(
        ScriptedApi({plan(0): [busy, busy]}), items(1), concurrency=1, clock=lambda: next(ticks)
    )
    [result] = journal.results
    assert result.elapsed_ms == 1500
    finished = datetime.fromisoformat(result.finished_at)
    assert finished.utcoffset() == timedelta(0)
    assert finished.isoformat(timespec="milliseconds") == result.finished_at
    assert summary.elapsed == 10.0  # type: ignore[attr-defined]
    assert summary.requests == 3  # type: ignore[attr-defined]


async def test_a_plan_already_showing_its_image_is_skipped_and_the_state_before_is_kept() -> None:
    """A plan already showing the img_url is skipped unsent; each result keeps the state before."""
    other = f"/v1/upload/{P}/202506/2.png"
    previous: dict[tuple[str, str], str | None] = {(P, plan(0)): URL, (P, plan(1)): other}
    previous[(P, plan(2))] = None  # known to have had no thumbnail
    api = ScriptedApi()
    journal, summary = await run(api, items(4), previous=previous)
    results = journal.by_plan()
    assert sorted(api.calls) == [plan(1), plan(2), plan(3)]
    skipped = results[plan(0)]
    assert (skipped.outcome, skipped.error, skipped.attempts) == (
        Outcome.SKIPPED,
        "already set",
        0,
    )
    assert [
        (results[plan(n)].previous_img_url, results[plan(n)].previous_known) for n in range(4)
    ] == [
        (URL, True),
        (other, True),
        (None, True),
        (None, False),
    ]
    assert summary.tally.skipped == 1  # type: ignore[attr-defined]


def breaker(count: int) -> RetryPolicy:
    return RetryPolicy(retries=0, backoff=0.0, breaker=count)


@pytest.mark.parametrize(
    ("answer", "how"),
    [
        (Attempt(Verdict.PERMANENT, 400, "PM.02175006", "bad"), "HTTP 400 PM.02175006"),
        (Attempt(Verdict.PERMANENT, 499, None, "bad"), "HTTP 499"),
        (Attempt(Verdict.RETRY, error="cannot connect: refused"), "cannot connect"),
    ],
)
async def test_the_breaker_counts_4xx_and_no_answer_and_says_why_it_stopped(
    answer: Attempt, how: str
) -> None:
    """3 items in a row failing alike (a 4xx, or no answer) stop the run; the reason quotes them."""
    api = ScriptedApi({plan(n): [answer] for n in range(10)})
    journal, summary = await run(api, items(10), concurrency=1, retry=breaker(3))
    assert len(journal.results) == 3
    assert summary.aborted == (  # type: ignore[attr-defined]
        f"3 items in a row failed with {how} ({answer.error}); "
        "check the endpoint and the job before running again"
    )
    assert summary.stopped is None  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "answer",
    [
        Attempt(Verdict.RETRY, 408, None, "request timeout"),
        Attempt(Verdict.THROTTLED, 429, "APIGW.0308", "throttled"),
        Attempt(Verdict.RETRY, 500, None, "internal error"),
    ],
)
async def test_the_breaker_ignores_408_429_and_5xx(answer: Attempt) -> None:
    """Timeouts, throttling and server errors are passing trouble: 10 in a row do not stop a run."""
    api = ScriptedApi({plan(n): [answer] for n in range(10)})
    journal, summary = await run(api, items(10), concurrency=1, retry=breaker(3))
    assert summary.aborted is None  # type: ignore[attr-defined]
    assert [r.outcome for r in journal.results] == [Outcome.FAILED] * 10


async def test_a_breaker_of_one_stops_at_the_first_failure_and_zero_never() -> None:
    """breaker=1 stops after one permanent failure; breaker=0 lets 20 of them run."""
    missing = Attempt(Verdict.PERMANENT, 404, "APIGW.0101", "no such API")
    script = {plan(n): [missing] for n in range(20)}
    journal, summary = await run(ScriptedApi(script), items(20), concurrency=1, retry=breaker(1))
    assert len(journal.results) == 1
    assert summary.aborted is not None  # type: ignore[attr-defined]
    journal, summary = await run(ScriptedApi(script), items(20), concurrency=1, retry=breaker(0))
    assert len(journal.results) == 20
    assert summary.aborted is None  # type: ignore[attr-defined]


async def test_the_breaker_keeps_the_reason_the_server_gave_first() -> None:
    """A rejected token that also trips the breaker is reported as the rejection, not the streak."""
    rejected = Attempt(Verdict.REJECTED, 401, "APIGW.0301", "bad token")
    api = ScriptedApi({plan(0): [rejected]})
    _, summary = await run(api, items(5), concurrency=1, retry=breaker(1))
    assert summary.aborted == (  # type: ignore[attr-defined]
        "the server rejected the credentials (HTTP 401 APIGW.0301: bad token)"
    )


class Listed:
    """Listings that are known at once: ``unlisted`` projects failed, or every project waits."""

    def __init__(
        self,
        unlisted: dict[str, Attempt] | None = None,
        *,
        go: bool = True,
        showing: frozenset[tuple[str, str]] = frozenset(),
    ) -> None:
        self.failed = unlisted or {}
        self.go = go
        self.showing = showing  # (project_id, img_url) that some plan showed before the run
        self.asked: list[str] = []

    async def ready(self, project_id: str) -> bool:
        self.asked.append(project_id)
        await anyio.lowlevel.checkpoint()
        return self.go

    @property
    def unlisted(self) -> dict[str, Attempt]:
        return self.failed

    def shows(self, project_id: str, img_url: str) -> bool:
        return (project_id, img_url) in self.showing


async def test_the_items_of_a_project_that_could_not_be_listed_fail_unsent() -> None:
    """A project whose listing failed: its items fail with the listing's answer, sent nothing."""
    other, mute = "0" * 32, "1" * 32
    refused = Attempt(Verdict.PERMANENT, 400, "PM.02150010", "not a member", "req-9")
    work = [Item(other, plan(0), URL), Item(mute, plan(0), URL), *items(2)]
    listings = Listed({other: refused, mute: Attempt(Verdict.PERMANENT, 404)})
    api = ScriptedApi()
    journal, _ = await run(api, work, listings=listings)
    assert sorted(api.calls) == [plan(0), plan(1)]  # the listed project's items only
    wordless = next(r for r in journal.results if r.project_id == mute)
    assert (wordless.http_status, wordless.error) == (404, "listing the project failed")
    failed = next(r for r in journal.results if r.project_id == other)
    assert (
        failed.outcome,
        failed.img_url,
        failed.http_status,
        failed.error_code,
        failed.error,
        failed.request_id,
        failed.attempts,
    ) == (
        Outcome.FAILED,
        URL,  # what the item would have set: the report says which thumbnail failed
        400,
        "PM.02150010",
        "listing the project failed: not a member",
        "req-9",
        0,
    )
    assert sorted(listings.asked) == sorted([other, mute, P, P])


async def test_nothing_is_sent_or_journaled_when_the_listing_says_stop() -> None:
    """ready() False (the run stopped while listing): no item is sent and none is journaled."""
    api = ScriptedApi()
    journal, _ = await run(api, items(3), listings=Listed(go=False))
    assert (api.calls, journal.results) == ([], [])


async def test_a_listing_that_cannot_be_journaled_stops_the_run_and_raises_plainly() -> None:
    """ready() raising ReportError (the listing's journal failed) raises it; nothing is sent."""

    class Unwritable(Listed):
        async def ready(self, project_id: str) -> bool:
            raise ReportError("r.jsonl: cannot write the report: No space left on device")

    api = ScriptedApi()
    with pytest.raises(ReportError, match="No space left"):
        await run(api, items(3), listings=Unwritable())
    assert api.calls == []


# -- images, uploaded and copied over real HTTP against the sandbox ------------------------

TOKEN = "t" * 40
SRC = "a" * 32


async def run_over_http(
    box: Sandbox,
    work: list[Item],
    *,
    events: Events | None = None,
    journal: Journal | None = None,
    governor: RateGovernor | None = None,
    source: Sandbox | None = None,
    **kwargs: object,
) -> tuple[Journal, RunSummary]:
    """Run ``work`` with one worker against ``box`` served on loopback, through the real client.

    With ``source``, images are downloaded from that other sandbox, as a migration between
    endpoints does: its own client and sender, sharing the run's stop.
    """
    journal = journal or Journal()
    sender = Sender(
        governor=governor or RateGovernor(policy=ThrottlePolicy(pause=0.0)),
        retry=NO_WAIT,
        events=events or Events(),
    )
    async with AsyncExitStack() as stack:

        async def client(sandbox: Sandbox) -> ThumbnailApi:
            url = await stack.enter_async_context(sandbox.serve())
            return await stack.enter_async_context(
                open_api(url, StaticToken(TOKEN), concurrency=1, timeout=10)
            )

        api = await client(box)
        if source is not None:
            source_sender = Sender(governor=RateGovernor(), retry=NO_WAIT, stop=sender.stop)
            kwargs["downloads"] = Channel(await client(source), source_sender)
        with anyio.fail_after(WAIT):
            summary = await run_batch(
                work, api=api, sender=sender, journal=journal, concurrency=1, **kwargs
            )  # type: ignore[arg-type]
    return journal, summary


def strict_sandbox() -> Sandbox:
    return Sandbox(SandboxConfig(tokens=frozenset({TOKEN}), strict_urls=True))


def checked_image(path: Path, data: bytes) -> LocalImage:
    """``data`` written to ``path`` and checked, as reading the job does."""
    path.write_bytes(data)
    return inspect_image(path)


def one_image_for(tmp_path: Path, count: int) -> tuple[Sandbox, LocalImage, list[Item]]:
    """A strict sandbox with ``count`` plans, and an item per plan setting one checked image."""
    image = checked_image(tmp_path / "logo.png", png(1))
    box = strict_sandbox()
    plans = [box.add_plan(P, plan_id=plan(n), name=f"P{n}") for n in range(count)]
    return box, image, [Item(P, p.id, None, image=image) for p in plans]


async def test_an_image_changed_since_the_job_was_read_fails_its_plan_unsent(
    tmp_path: Path,
) -> None:
    """A file edited after the check fails its item saying so; nothing is uploaded or sent."""
    path = tmp_path / "logo.png"
    image = checked_image(path, png(1))
    path.write_bytes(png(2))
    box = strict_sandbox()
    target = box.add_plan(P, name="P")
    journal, _ = await run_over_http(box, [Item(P, target.id, None, image=image)])
    [result] = journal.results
    assert (result.outcome, result.error, result.http_status, result.attempts) == (
        Outcome.FAILED,
        f"{path} changed since the job was checked",
        None,
        0,
    )
    assert (box.stats.uploads, box.stats.puts, journal.uploads) == (0, 0, [])


async def test_an_uploaded_image_is_journaled_and_its_upload_counts_in_the_attempts(
    tmp_path: Path,
) -> None:
    """One upload per image and project, named by its hash, journaled, counted in the attempts."""
    box, image, work = one_image_for(tmp_path, 2)
    box.faults.script(Fault.status(503), plan_id=plan(0))
    journal, _ = await run_over_http(box, work)
    shown = {box.plan(P, plan(n)).img_url for n in range(2)}  # type: ignore[union-attr]
    [img_url] = shown
    assert img_url is not None and box.image_bytes(img_url) == png(1)
    assert journal.uploads == [(P, image.cache_key, img_url)]
    # Named by its content and its real type, not by the file it came from.
    assert box.store.uploads[img_url].filename == f"{image.sha256[:16]}.png"
    assert [(r.outcome, r.img_url, r.attempts) for r in journal.results] == [
        (Outcome.SUCCEEDED, img_url, 3),  # the upload, a 503, the PUT
        (Outcome.SUCCEEDED, img_url, 1),  # the upload reused: only the PUT
    ]


async def test_a_copied_image_is_downloaded_uploaded_and_set_and_each_counts(
    tmp_path: Path,
) -> None:
    """A source image is downloaded, uploaded to the item's project and set: 3 attempts."""
    box = strict_sandbox()
    source = box.upload(SRC, png(3))
    target = box.add_plan(P, name="P")
    journal, summary = await run_over_http(
        box, [Item(P, target.id, None, image=SourceImage(SRC, source))]
    )
    [result] = journal.results
    assert (result.outcome, result.attempts) == (Outcome.SUCCEEDED, 3)
    assert result.img_url is not None and result.img_url != source
    assert box.image_bytes(result.img_url) == png(3)
    assert (box.stats.downloads, box.stats.uploads, summary.requests) == (1, 1, 3)
    assert summary.source_governor is None  # one side, one governor


async def test_a_copy_between_endpoints_counts_the_requests_of_both_sides() -> None:
    """Downloads from another endpoint go through its own sender, counted in the summary apart."""
    source, box = strict_sandbox(), strict_sandbox()
    images = [source.upload(SRC, png(n)) for n in range(2)]
    for n in range(2):
        box.add_plan(P, plan_id=plan(n), name=f"P{n}")
    work = [Item(P, plan(n), None, image=SourceImage(SRC, images[n])) for n in range(2)]
    journal, summary = await run_over_http(box, work, source=source)
    assert [r.outcome for r in journal.results] == [Outcome.SUCCEEDED] * 2
    assert (source.stats.downloads, box.stats.downloads, box.stats.uploads) == (2, 0, 2)
    assert summary.requests == 6  # 2 downloads there, 2 uploads and 2 PUTs here
    assert summary.source_governor is not None  # the source's throttling, reported apart


async def test_a_source_image_that_cannot_be_downloaded_fails_its_plan_saying_so() -> None:
    """A download refused fails the item as "download failed: ...", after one attempt, unsent."""
    box = strict_sandbox()
    target = box.add_plan(P, name="P")
    missing = f"/v1/upload/{SRC}/202506/1749730526922581391.png"
    journal, _ = await run_over_http(
        box, [Item(P, target.id, None, image=SourceImage(SRC, missing))]
    )
    [result] = journal.results
    assert (result.outcome, result.http_status, result.attempts) == (Outcome.FAILED, 400, 1)
    assert result.error == "download failed: Invalid parameter image_uri: no such image"
    assert (box.stats.uploads, box.stats.puts) == (0, 0)


async def test_an_earlier_upload_a_plan_shows_is_used_and_journaled_again() -> None:
    """A remembered upload the listing shows is used without uploading, and journaled anew."""
    image = SourceImage(SRC, f"/v1/upload/{SRC}/202506/1.png")
    key = (P, image.cache_key)
    uploads = Uploads(remembered={key: URL})
    listings = Listed(showing=frozenset({(P, URL)}))
    api = ScriptedApi()  # it can neither download nor upload: using either fails the test
    journal, _ = await run(
        api, [Item(P, plan(n), None, image=image) for n in range(2)], uploads=uploads,
        listings=listings,
    )  # fmt: skip
    assert [(r.outcome, r.img_url, r.attempts) for r in journal.results] == [
        (Outcome.SUCCEEDED, URL, 1),
        (Outcome.SUCCEEDED, URL, 1),
    ]
    assert journal.uploads == [(P, image.cache_key, URL)]
    assert uploads.done == {key: URL}


class UploadsUnwritable(Journal):
    def record_upload(self, project_id: str, cache_key: str, img_url: str) -> None:
        raise ReportError("r.jsonl: cannot write the report: No space left on device")


async def test_an_upload_that_cannot_be_journaled_stops_the_run_and_raises_plainly(
    tmp_path: Path,
) -> None:
    """When a finished upload cannot be journaled the run raises ReportError and sets nothing."""
    box, _, work = one_image_for(tmp_path, 3)
    with pytest.raises(ReportError, match="No space left"):
        await run_over_http(box, work, journal=UploadsUnwritable())
    assert (box.stats.uploads, box.stats.puts) == (1, 0)


async def test_a_remembered_upload_that_cannot_be_journaled_again_stops_the_run() -> None:
    """Journaling a remembered upload anew failing raises ReportError; nothing is sent."""
    image = SourceImage(SRC, f"/v1/upload/{SRC}/202506/1.png")
    uploads = Uploads(remembered={(P, image.cache_key): URL})
    api = ScriptedApi()
    with pytest.raises(ReportError, match="No space left"):
        await run(
            api, [Item(P, plan(0), None, image=image)], uploads=uploads,
            listings=Listed(showing=frozenset({(P, URL)})), journal=UploadsUnwritable(),
        )  # fmt: skip
    assert api.calls == []


def limited(fake: FakeTime) -> Sandbox:
    """A sandbox taking one request a second per API on ``fake``: a second in a row gets a 429."""
    limit = RateLimit.per_second(1, burst=1)  # each API on its own, as the gateway counts
    return Sandbox(SandboxConfig(tokens=frozenset({TOKEN}), rate_limit=limit), clock=fake.clock)


async def throttled(box: Sandbox, fake: FakeTime, work: list[Item]) -> set[object]:
    """Run ``work`` (all of it succeeds); the subjects of its "throttled" events."""
    for item in work:
        box.add_plan(P, plan_id=item.plan_id, name="P")
    events = Events()
    # The governor waits on the sandbox's clock, so its pauses let the limit refill at once.
    governor = RateGovernor(clock=fake.clock, sleep=fake.sleep, jitter=lambda: 1.0)
    journal, _ = await run_over_http(box, work, events=events, governor=governor)
    assert [r.outcome for r in journal.results] == [Outcome.SUCCEEDED] * len(work)
    return {e["subject"] for e in events.named("throttled")}


async def test_a_throttled_download_is_logged_with_the_url_it_fetches() -> None:
    """A 429 to a download is a "throttled" event whose subject names the source image's URL."""
    fake = FakeTime()
    box = limited(fake)
    sources = [box.upload(SRC, png(n)) for n in range(2)]
    work = [Item(P, plan(n), None, image=SourceImage(SRC, sources[n])) for n in range(2)]
    assert f"download {sources[1]}" in await throttled(box, fake, work)


async def test_a_throttled_upload_is_logged_with_the_image_it_sends(tmp_path: Path) -> None:
    """A 429 to an upload is a "throttled" event whose subject names the image's content key."""
    fake = FakeTime()
    images = [checked_image(tmp_path / f"{n}.png", png(n)) for n in range(2)]
    work = [Item(P, plan(n), None, image=images[n]) for n in range(2)]
    assert f"upload {images[1].cache_key}" in await throttled(limited(fake), fake, work)
