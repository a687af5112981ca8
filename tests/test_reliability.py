"""Unattended runs: kills, signals, torn journals, throttling, locks, deadlines, the breaker.

Each test runs the real CLI in a subprocess against a sandbox in the test's event loop and
asserts on the server side that no item was applied again after it had succeeded, and that
every item ends in the report exactly once.
"""

from __future__ import annotations

import email.utils
import json
import signal
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import anyio
import anyio.abc
import pytest

from batchthumb.report import report_lock
from batchthumb.sandbox import Fault, Faults, RateLimit, Sandbox, SandboxConfig, Stats
from tests.clihelp import (
    CLI_TIMEOUT,
    by_plan,
    check_no_leak,
    cli_process,
    cli_with_file_limit,
    finish,
    read_report,
    read_until,
    start,
    write_job,
)
from tests.conftest import P1, TOKEN, img_url, plan_id

pytestmark = [pytest.mark.anyio, pytest.mark.subprocess]

Key = tuple[str, str]


def journaled(report: Path) -> dict[Key, str]:
    """Outcomes in a report that a kill may have torn: whole lines only."""
    outcomes: dict[Key, str] = {}
    for line in report.read_text(encoding="utf-8").splitlines(keepends=True):
        if line.endswith("\n"):
            record = json.loads(line)
            if "kind" not in record:  # upload and snapshot lines are not items
                outcomes[(record["project_id"], record["plan_id"])] = record["outcome"]
    return outcomes


def assert_each_item_once_and_succeeded(
    report: Path, count: int, *, already_set: frozenset[Key] = frozenset()
) -> None:
    """Every item appears once and succeeded; those in ``already_set`` may be skipped instead."""
    records = read_report(report)
    keys = Counter((r["project_id"], r["plan_id"]) for r in records)
    assert len(keys) == count
    assert set(keys.values()) == {1}
    for record in records:
        key = (record["project_id"], record["plan_id"])
        allowed = {"succeeded", "skipped"} if key in already_set else {"succeeded"}
        assert record["outcome"] in allowed


async def until(box: Sandbox, predicate: Callable[[Stats], bool]) -> None:
    """Wait until the sandbox's stats satisfy ``predicate``, with a deadline of its own."""
    with anyio.fail_after(CLI_TIMEOUT):
        await box.wait_until(predicate)


async def ended(process: anyio.abc.Process) -> int:
    """Wait for a killed or signalled process to exit, with a deadline of its own."""
    with anyio.fail_after(CLI_TIMEOUT):
        return await process.wait()


async def test_kill_9_mid_run_then_resume_completes_exactly_the_rest(
    tmp_path: Path, sandbox: tuple[Sandbox, str]
) -> None:
    """After SIGKILL, --resume sends only what the journal lacks; nothing succeeded is resent."""
    box, url = sandbox
    job = write_job(
        tmp_path / "job.yaml", endpoint=url, plans=range(400), settings="concurrency: 4"
    )
    report = tmp_path / "job.results.jsonl"
    process = await start("run", str(job), "--no-progress")
    await until(box, lambda s: s.puts >= 120)
    process.kill()
    await ended(process)
    done_before = {k for k, o in journaled(report).items() if o == "succeeded"}
    assert 0 < len(done_before) < 400
    applied_before = Counter(box.stats.applied)

    result = await cli_process("run", str(job), "--no-progress", "--resume")
    assert result.code == 0, result.err
    for key in done_before:
        assert box.stats.applied[key] == applied_before[key] == 1
    assert all(box.stats.applied[(P1, plan_id(n))] >= 1 for n in range(400))
    # Applied before the kill but not journaled: the resumed run finds them already set.
    in_flight = frozenset(applied_before) - done_before
    assert_each_item_once_and_succeeded(report, 400, already_set=in_flight)


async def test_undo_after_a_kill_and_resume_restores_every_plan_exactly(
    tmp_path: Path, sandbox: tuple[Sandbox, str]
) -> None:
    """Plans applied but not journaled when the run was killed still get their old thumbnail back."""
    box, url = sandbox
    before = {}
    for n in range(120):
        plan = box.add_plan(P1, name=f"Plan {n}", plan_id=plan_id(n), img_url=img_url(1000 + n))
        before[plan.id] = plan.img_url
    job = write_job(
        tmp_path / "job.yaml", endpoint=url, plans=range(120), settings="concurrency: 4"
    )
    report = tmp_path / "job.results.jsonl"
    process = await start("run", str(job), "--no-progress")
    await until(box, lambda s: s.puts >= 40)
    box.gate.close()  # requests from now on are held, and applied only after the kill
    await until(box, lambda s: s.waiting_at_gate >= 1)
    process.kill()
    await ended(process)
    box.gate.open()
    await until(box, lambda s: s.applied_total == s.puts)  # the held ones applied too
    assert (await cli_process("run", str(job), "--no-progress", "--resume")).code == 0
    assert all(box.plan(P1, p).img_url != url_before for p, url_before in before.items())

    undo = tmp_path / "undo.yaml"
    assert (await cli_process("undo", str(report), "-o", str(undo))).code == 0
    restored = await cli_process("run", str(undo), "--endpoint", url, "--no-progress")
    assert restored.code == 0, restored.err
    assert {p: box.plan(P1, p).img_url for p in before} == before


async def test_a_torn_last_line_is_ignored_with_a_warning(
    tmp_path: Path, sandbox: tuple[Sandbox, str]
) -> None:
    """A half-written last line (a kill mid-write) is dropped; the item is simply sent again."""
    box, url = sandbox
    job = write_job(tmp_path / "job.yaml", endpoint=url, plans=range(4))
    report = tmp_path / "job.results.jsonl"
    assert (await cli_process("run", str(job), "--no-progress")).code == 0
    # Killed while writing the last item's line: no end line after it either.
    lines = report.read_text().splitlines(keepends=True)[:-1]
    report.write_text("".join(lines[:-1]) + lines[-1][:40])
    torn = json.loads(lines[-1])["plan_id"]
    # Without the snapshot the resumed run cannot see that the plan is already set.
    result = await cli_process("run", str(job), "--no-progress", "--resume", "--no-snapshot")
    assert result.code == 0
    assert f"{report}:{len(lines)}: ignoring a torn last line" in result.err
    assert box.stats.applied[(P1, torn)] == 2
    assert sum(box.stats.applied.values()) == 5
    assert_each_item_once_and_succeeded(report, 4)


async def test_resume_after_editing_the_job_goes_by_plan_not_by_line(
    tmp_path: Path, sandbox: tuple[Sandbox, str]
) -> None:
    """Reordered, trimmed and extended: resume sends the unfinished and the new, nothing else."""
    box, url = sandbox
    for n in (2, 5):
        box.faults.script(Fault.status(400), plan_id=plan_id(n))
    job = write_job(tmp_path / "job.yaml", endpoint=url, plans=range(8))
    assert (await cli_process("run", str(job), "--no-progress")).code == 1
    edited = write_job(tmp_path / "job.yaml", endpoint=url, plans=[9, 5, 7, 2, 3, 8, 1])
    result = await cli_process("run", str(edited), "--no-progress", "--resume")
    assert result.code == 0
    assert "4 of 7 plans to set, 3 already done" in result.err
    sent_again = {key[1] for key, count in box.stats.applied.items() if count > 1}
    assert sent_again == set()
    assert {(P1, plan_id(n)) for n in (8, 9, 2, 5)} <= set(box.stats.applied)
    assert box.stats.puts == 8 + 4


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
async def test_first_signal_finishes_in_flight_requests_and_exits_130(
    tmp_path: Path, sandbox: tuple[Sandbox, str], signum: signal.Signals
) -> None:
    """Graceful stop: in-flight requests complete and are journaled; nothing new starts."""
    box, url = sandbox
    # A rate: with none, the slow start's window keeps only one in flight until it is answered,
    # and the closed gate answers none.
    job = write_job(
        tmp_path / "job.yaml", endpoint=url, plans=range(50), settings="concurrency: 4\nrate: 1000"
    )
    report = tmp_path / "job.results.jsonl"
    box.gate.close()
    process = await start("run", str(job), "--no-progress")
    await until(box, lambda s: s.waiting_at_gate == 4)
    process.send_signal(signum)
    seen = await read_until(process, "finishing requests in flight")
    box.gate.open()
    code, err = await finish(process, seen)
    assert code == 130
    assert f"to finish: batchthumb run {job} --report {report} --resume" in err
    assert box.stats.puts == 4
    assert len(journaled(report)) == 4
    result = await cli_process("run", str(job), "--no-progress", "--resume")
    assert result.code == 0
    assert set(box.stats.applied.values()) == {1}
    assert_each_item_once_and_succeeded(report, 50)


async def test_a_second_signal_stops_at_once_and_leaves_a_valid_report(
    tmp_path: Path, sandbox: tuple[Sandbox, str]
) -> None:
    """Two SIGINTs: the run ends without waiting for the server; the report stays valid JSON lines."""
    box, url = sandbox
    job = write_job(  # a rate: with none, the slow start's window holds the second back
        tmp_path / "job.yaml", endpoint=url, plans=range(20), settings="concurrency: 3\nrate: 1000"
    )
    report = tmp_path / "job.results.jsonl"
    box.gate.close()
    try:
        process = await start("run", str(job), "--no-progress")
        await until(box, lambda s: s.waiting_at_gate == 3)
        process.send_signal(signal.SIGINT)
        seen = await read_until(process, "finishing requests in flight")
        process.send_signal(signal.SIGINT)
        code, _ = await finish(process, seen)
    finally:
        box.gate.open()
    assert code == 130
    assert journaled(report) == {}
    # The three held requests reached the server: they are applied once the gate opens.
    await until(box, lambda s: s.applied_total == 3)
    in_flight = frozenset(box.stats.applied)
    result = await cli_process("run", str(job), "--no-progress", "--resume")
    assert result.code == 0
    assert_each_item_once_and_succeeded(report, 20, already_set=in_flight)


@pytest.mark.parametrize(
    "fault",
    [
        Fault.status(429),
        Fault.status(429, retry_after="0"),
        Fault.status(429, retry_after=email.utils.formatdate(time.time() - 5, usegmt=True)),
        Fault.pm_throttle(),
    ],
    ids=["429", "429-retry-after-seconds", "429-retry-after-date", "PM.02153001"],
)
async def test_throttled_items_are_retried_and_the_summary_counts_them(
    tmp_path: Path, sandbox: tuple[Sandbox, str], fault: Fault
) -> None:
    """Throttling in any documented form is retried, slows the run, and is reported."""
    box, url = sandbox
    box.faults.script(fault, times=3)
    job = write_job(tmp_path / "job.yaml", endpoint=url, plans=range(10), settings="concurrency: 1")
    result = await cli_process("run", str(job), "--no-progress", "--backoff", "0")
    assert result.code == 0, result.err
    assert "throttled 3 times" in result.err
    assert box.stats.puts == 13
    assert set(box.stats.applied.values()) == {1}
    assert_each_item_once_and_succeeded(tmp_path / "job.results.jsonl", 10)


@pytest.mark.parametrize("fault", [Fault.drop(), Fault.drop_after_apply()], ids=["before", "after"])
async def test_dropped_connections_are_retried(
    tmp_path: Path, sandbox: tuple[Sandbox, str], fault: Fault
) -> None:
    """A connection dropped before or after the server applied the PUT is retried to success."""
    box, url = sandbox
    box.faults.script(fault, times=2, plan_id=plan_id(1))
    job = write_job(tmp_path / "job.yaml", endpoint=url, plans=range(3))
    result = await cli_process("run", str(job), "--no-progress", "--backoff", "0")
    assert result.code == 0
    record = by_plan(read_report(tmp_path / "job.results.jsonl"))[plan_id(1)]
    assert record["attempts"] == 3
    assert box.stats.applied[(P1, plan_id(0))] == box.stats.applied[(P1, plan_id(2))] == 1
    assert_each_item_once_and_succeeded(tmp_path / "job.results.jsonl", 3)


async def test_unanswered_requests_that_run_out_of_retries_say_they_may_have_applied(
    tmp_path: Path, sandbox: tuple[Sandbox, str]
) -> None:
    """Ambiguous to the end: the item fails, and the error says the server may have applied it."""
    box, url = sandbox
    box.faults.script(Fault.drop_after_apply(), times=3, plan_id=plan_id(0))
    job = write_job(tmp_path / "job.yaml", endpoint=url, plans=range(1))
    result = await cli_process("run", str(job), "--no-progress", "--backoff", "0", "--retries", "2")
    assert result.code == 1
    [record] = read_report(tmp_path / "job.results.jsonl")
    assert record["outcome"] == "failed"
    assert "the server may have applied it" in record["error"]


async def test_an_overlapping_run_exits_75_and_sends_nothing(
    tmp_path: Path, sandbox: tuple[Sandbox, str]
) -> None:
    """A second run on the same report while the first is still going exits 75 at once."""
    box, url = sandbox
    job = write_job(tmp_path / "job.yaml", endpoint=url, plans=range(5), settings="concurrency: 1")
    box.gate.close()
    first = await start("run", str(job), "--no-progress")
    try:
        await until(box, lambda s: s.waiting_at_gate == 1)
        second = await cli_process("run", str(job), "--no-progress")
        assert second.code == 75
        assert "--lock-wait" in second.err
        assert box.stats.puts == 1
    finally:
        box.gate.open()
    code, _ = await finish(first)
    assert code == 0
    assert set(box.stats.applied.values()) == {1}
    assert_each_item_once_and_succeeded(tmp_path / "job.results.jsonl", 5)


async def test_lock_wait_waits_for_the_other_run_then_proceeds(
    tmp_path: Path, sandbox: tuple[Sandbox, str]
) -> None:
    """With --lock-wait a second run waits (and says so) while the report is locked, then runs
    once the lock is released, instead of exiting 75."""
    box, url = sandbox
    job = write_job(tmp_path / "job.yaml", endpoint=url, plans=range(3))
    with report_lock(tmp_path / "job.results.jsonl"):
        waiting = await start("run", str(job), "--no-progress", "--lock-wait", "60")
        seen = await read_until(waiting, "waiting up to 60 s for it (--lock-wait)")
        assert box.stats.requests == 0
    code, err = await finish(waiting, seen)
    assert code == 0, err
    assert_each_item_once_and_succeeded(tmp_path / "job.results.jsonl", 3)


async def test_max_duration_stops_starting_items_and_exits_4(
    tmp_path: Path, sandbox: tuple[Sandbox, str]
) -> None:
    """At the deadline the run stops starting items, finishes in-flight ones, and exits 4."""
    box, url = sandbox
    job = write_job(tmp_path / "job.yaml", endpoint=url, plans=range(200), settings="rate: 20")
    result = await cli_process("run", str(job), "--no-progress", "--max-duration", "1s")
    assert result.code == 4
    assert "--max-duration reached" in result.err
    done = len(read_report(tmp_path / "job.results.jsonl"))
    assert 0 < done < 200
    assert box.stats.puts == done
    resumed = await cli_process("run", str(job), "--no-progress", "--resume", "--rate", "0")
    assert resumed.code == 0
    assert set(box.stats.applied.values()) == {1}
    assert_each_item_once_and_succeeded(tmp_path / "job.results.jsonl", 200)


async def test_the_breaker_stops_a_run_that_fails_the_same_way_every_time(
    tmp_path: Path,
) -> None:
    """Plans that do not exist answer every item alike: the run stops after 25, exit 3."""
    box = Sandbox(SandboxConfig(tokens=frozenset({TOKEN}), autocreate=False))
    box.add_project(P1)
    async with box.serve() as url:
        job = write_job(
            tmp_path / "job.yaml", endpoint=url, plans=range(1000), settings="concurrency: 2"
        )
        result = await cli_process("run", str(job), "--no-progress")
    assert result.code == 3
    assert "25 items in a row failed with HTTP 400 PM.02175006" in result.err
    assert box.stats.puts < 40


async def test_chaos_ends_with_every_item_succeeded(tmp_path: Path) -> None:
    """3,000 items through 10% 5xx, 5% 429 and 2% dropped connections all end succeeded."""
    faults = Faults(p500=0.05, p503=0.05, p429=0.05, retry_after="0", p_drop=0.02, seed=7)
    box = Sandbox(SandboxConfig(tokens=frozenset({TOKEN}), autocreate=True), faults=faults)
    async with box.serve() as url:
        job = write_job(
            tmp_path / "job.yaml", endpoint=url, plans=range(3000), settings="concurrency: 16"
        )
        result = await cli_process(
            "run", str(job), "--no-progress", "--backoff", "0", "--retries", "12"
        )
    assert result.code == 0, result.err
    assert box.stats.status_counts[429] > 0
    assert box.stats.status_counts[500] + box.stats.status_counts[503] > 0
    assert len(box.stats.applied) == 3000
    assert_each_item_once_and_succeeded(tmp_path / "job.results.jsonl", 3000)


async def test_a_rate_limited_server_slows_the_whole_run_down(tmp_path: Path) -> None:
    """Against 50 requests/s and no --rate, few requests are wasted on 429 and the rate settles near 50."""
    limit = RateLimit.per_second(50)
    box = Sandbox(SandboxConfig(tokens=frozenset({TOKEN}), autocreate=True, rate_limit=limit))
    async with box.serve() as url:
        job = write_job(tmp_path / "job.yaml", endpoint=url, plans=range(500))
        result = await cli_process("run", str(job), "--no-progress")
    assert result.code == 0, result.err
    throttled = box.stats.status_counts[429]
    assert throttled < 0.2 * box.stats.puts
    assert "settled at" in result.err
    assert_each_item_once_and_succeeded(tmp_path / "job.results.jsonl", 500)


async def test_json_logs_record_each_kind_of_event_with_secrets_masked(
    tmp_path: Path, sandbox: tuple[Sandbox, str]
) -> None:
    """--log-json writes start, retry, throttled, item_failed and summary as JSON objects."""
    box, url = sandbox
    box.faults.script(Fault.status(503), plan_id=plan_id(0))
    box.faults.script(Fault.status(429, retry_after="0"), plan_id=plan_id(1))
    box.faults.script(
        Fault.status(400, "PM.02175006", f"token {TOKEN} rejected"), plan_id=plan_id(2)
    )
    job = write_job(tmp_path / "job.yaml", endpoint=url, plans=range(4))
    log = tmp_path / "events.jsonl"
    options = ("--no-progress", "--backoff", "0", "--log-json", "--log-file", str(log))
    result = await cli_process("run", str(job), *options)
    assert result.code == 1
    text = log.read_text()
    check_no_leak(text)
    events = [json.loads(line) for line in text.splitlines()]
    kinds = [event["event"] for event in events]
    assert kinds[0] == "status"  # the plan line, as a person would read it on stderr
    assert "4 of 4 plans to set" in events[0]["message"]
    assert "start" in kinds
    assert kinds[-2:] == ["summary", "result"]
    assert {"retry", "throttled", "item_failed"} <= set(kinds)
    failed = next(event for event in events if event["event"] == "item_failed")
    assert (failed["plan_id"], failed["error_code"]) == (plan_id(2), "PM.02175006")
    assert "token *** rejected" in failed["error"]
    assert events[-2]["failed"] == 1


async def test_a_report_that_cannot_be_written_stops_the_run_with_a_clear_error(
    tmp_path: Path, sandbox: tuple[Sandbox, str]
) -> None:
    """A full disk mid-run (here a file size limit) is one message and exit 2, not a traceback."""
    box, url = sandbox
    job = write_job(tmp_path / "job.yaml", endpoint=url, plans=range(50), settings="concurrency: 2")
    done = await cli_with_file_limit("run", str(job), "--no-progress", "--no-snapshot", kilobytes=2)
    assert done.code == 2, done.err
    assert "cannot write the report: File too large" in done.err
    lines = (tmp_path / "job.results.jsonl").read_text().splitlines(keepends=True)
    assert 0 < len(lines) < 50
    assert all(line.endswith("\n") for line in lines[:-1])
    assert box.stats.puts < 50
