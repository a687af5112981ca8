"""Nightly runs from cron, end to end through the CLI against the sandbox: history and undo,
idempotent image jobs, exit codes, quiet and logged output, listing failures, generated jobs."""

from __future__ import annotations

import json
import signal
from collections.abc import Mapping
from pathlib import Path

import pytest

from batchthumb.sandbox import Fault, Sandbox, SandboxConfig
from tests.clihelp import cli, environment, finish, read_report, read_until, start, write_job
from tests.conftest import P1, TOKEN, img_url, plan_id
from tests.test_images_cli import png

pytestmark = pytest.mark.anyio

P2 = "c" * 32


def job_of(path: Path, url: str, thumbnails: Mapping[int, str], settings: str = "") -> Path:
    """A job setting plan ``n`` of P1 to ``thumbnails[n]``."""
    lines = [f"endpoint: {url}", settings, f"defaults:\n  project_id: {P1}\nitems:"]
    lines += [f"  - {{plan_id: {plan_id(n)}, img_url: {u}}}" for n, u in thumbnails.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def shown(box: Sandbox, n: int, project: str = P1) -> str | None:
    """What plan ``n`` shows now, server-side."""
    plan = box.plan(project, plan_id(n))
    assert plan is not None
    return plan.img_url


def kept_reports(report: Path) -> list[str]:
    """The names of the earlier reports kept beside ``report``."""
    return sorted(path.name for path in report.parent.glob(f"{report.name}.[0-9]*"))


def original(n: int) -> str:
    return img_url(100 + n)


def night1(n: int) -> str:
    return img_url(200 + n)


def night5(n: int) -> str:
    return img_url(500 + n)


async def test_a_week_of_nights_then_undo_restores_what_each_plan_showed_before_its_last_change(
    tmp_path: Path, sandbox: tuple[Sandbox, str]
) -> None:
    """Change, quiet, quiet, failing, interrupted: undo puts every plan back as it was before
    the last run that changed it, checked on the server, and `history` lists what is kept."""
    box, url = sandbox
    for n in range(6):
        box.add_plan(P1, name=f"Plan {n}", img_url=original(n), plan_id=plan_id(n))
    job = tmp_path / "nightly.yaml"
    report = tmp_path / "nightly.results.jsonl"
    flags = ("--no-progress", "--backoff", "0")

    # Night 1 changes every plan.
    job_of(job, url, {n: night1(n) for n in range(6)})
    assert (await cli("run", str(job), *flags)).code == 0
    # Nights 2 and 3 find everything already set.
    for _ in range(2):
        quiet = await cli("run", str(job), *flags)
        assert quiet.code == 0, quiet.err
        assert "0 succeeded, 0 failed, 6 skipped" in quiet.err
    # Night 4 fails: the one change it tries is refused.
    box.faults.script(Fault.status(400, "PM.02175006", "invalid parameter"), plan_id=plan_id(0))
    job_of(job, url, {0: night5(0)})
    failing = await cli("run", str(job), *flags)
    assert failing.code == 1
    assert shown(box, 0) == night1(0)
    # Night 5 is interrupted after changing plan 2 but before plan 3.
    job_of(job, url, {2: night5(2), 3: night5(3)}, settings="concurrency: 1")
    box.gate.close()
    process = await start("run", str(job), *flags)
    await box.wait_until(lambda s: s.waiting_at_gate == 1)
    process.send_signal(signal.SIGINT)
    seen = await read_until(process, "finishing requests in flight")
    box.gate.open()
    code, err = await finish(process, seen)
    assert code == 130, err
    assert f"to finish: batchthumb run {job} --report {report} --resume" in err
    assert shown(box, 2) == night5(2) and shown(box, 3) == night1(3)

    # The quiet and failing reports were replaced; night 1's was kept.
    assert report.exists() and (tmp_path / f"{report.name}.1").exists()
    assert not (tmp_path / f"{report.name}.2").exists()
    listed = await cli("history", str(report))
    assert listed.code == 0, listed.err
    assert "1 succeeded, 0 failed, 0 skipped; changed 1 plans; undo restores 1 from it" in (
        listed.out
    )
    assert "6 succeeded, 0 failed, 0 skipped; changed 6 plans; undo restores 5 from it" in (
        listed.out
    )

    undo = tmp_path / "undo.yaml"
    made = await cli("undo", str(report), "-o", str(undo))
    assert made.code == 0, made.err
    assert made.out.strip() == f"{undo}: restores 6 plans"
    restored = await cli("run", str(undo), *flags)  # as written: the job names the endpoint
    assert restored.code == 0, restored.err
    assert shown(box, 2) == night1(2)  # before night 5, its last change
    assert [shown(box, n) for n in (0, 1, 3, 4, 5)] == [original(n) for n in (0, 1, 3, 4, 5)]


async def test_history_keeps_as_many_reports_as_the_job_says_and_the_flag_wins(
    tmp_path: Path, sandbox: tuple[Sandbox, str]
) -> None:
    """`history: 2` keeps REPORT.1 and .2 of four changing runs; `--history 1` trims to one."""
    _, url = sandbox
    job = tmp_path / "job.yaml"
    report = tmp_path / "job.results.jsonl"
    for night in range(4):
        job_of(job, url, {0: img_url(10 + night)}, settings="history: 2")
        assert (await cli("run", str(job), "--no-progress")).code == 0
    assert kept_reports(report) == ["job.results.jsonl.1", "job.results.jsonl.2"]
    assert read_report(report.with_name("job.results.jsonl.2"))[0]["img_url"] == img_url(11)
    job_of(job, url, {0: img_url(20)}, settings="history: 2")
    assert (await cli("run", str(job), "--no-progress", "--history", "1")).code == 0
    assert kept_reports(report) == ["job.results.jsonl.1"]
    assert read_report(report.with_name("job.results.jsonl.1"))[0]["img_url"] == img_url(13)


async def test_an_unchanged_image_job_uploads_and_puts_nothing_the_next_night(
    tmp_path: Path,
) -> None:
    """Night 2 of a local-image job is all "already set" with no upload and no PUT; a new plan
    using the same file gets one PUT and no upload; a changed file is uploaded once; an upload
    no plan shows any more is not trusted and is uploaded again."""
    box = Sandbox(SandboxConfig(tokens=frozenset({TOKEN}), strict_urls=True, autocreate=False))
    for n in range(4):
        box.add_plan(P1, name=f"Plan {n}", plan_id=plan_id(n))
    (tmp_path / "logo.png").write_bytes(png(1))
    (tmp_path / "other.png").write_bytes(png(2))

    def write(plans: range) -> Path:
        images = {0: "logo.png", 1: "logo.png", 2: "other.png", 3: "logo.png"}
        items = [f"  - {{plan_id: {plan_id(n)}, image: {images[n]}}}" for n in plans]
        path = tmp_path / "images.yaml"
        # history 1: uploads must be carried from report to report, not found in old ones.
        head = f"endpoint: {url}\nhistory: 1\ndefaults:\n  project_id: {P1}\nitems:\n"
        path.write_text(head + "\n".join(items) + "\n")
        return path

    async with box.serve() as url:
        job = write(range(3))
        assert (await cli("run", str(job), "--no-progress")).code == 0
        assert (box.stats.uploads, box.stats.puts) == (2, 3)
        second = await cli("run", str(job), "--no-progress")
        assert second.code == 0, second.err
        assert (box.stats.uploads, box.stats.puts) == (2, 3)
        assert "0 succeeded, 0 failed, 3 skipped" in second.err
        assert (await cli("run", str(write(range(4))), "--no-progress")).code == 0
        assert (box.stats.uploads, box.stats.puts) == (2, 4)
        (tmp_path / "other.png").write_bytes(png(3))
        assert (await cli("run", str(job), "--no-progress")).code == 0
        assert (box.stats.uploads, box.stats.puts) == (3, 5)
        assert box.image_bytes(shown(box, 2) or "") == png(3)
        # The report of the first upload of logo.png has been rotated away: still known.
        assert (await cli("run", str(job), "--no-progress")).code == 0
        assert (box.stats.uploads, box.stats.puts) == (3, 5)
        # Once no plan shows logo.png's upload any more, it is not trusted: uploaded again.
        elsewhere = box.upload(P1, png(9))
        job_of(tmp_path / "plain.yaml", url, dict.fromkeys((0, 1, 3), elsewhere))
        assert (await cli("run", str(tmp_path / "plain.yaml"), "--no-progress")).code == 0
        assert (await cli("run", str(write(range(4))), "--no-progress")).code == 0
        assert (box.stats.uploads, box.stats.puts) == (4, 11)
        assert {box.image_bytes(shown(box, n) or "") for n in (0, 1, 3)} == {png(1)}


async def test_quiet_says_nothing_when_all_is_done_and_the_summary_when_something_failed(
    tmp_path: Path, sandbox: tuple[Sandbox, str]
) -> None:
    """-q: empty stdout and stderr on success; on a failure, the summary, the failures by
    code with an example plan, the report and the command that finishes the job."""
    box, url = sandbox
    job = write_job(tmp_path / "job.yaml", endpoint=url, plans=range(4))
    report = tmp_path / "job.results.jsonl"
    done = await cli("run", str(job), "-q")
    assert (done.code, done.out, done.err) == (0, "", "")
    for n in (5, 6):
        box.faults.script(Fault.status(400, "PM.02175006", "invalid parameter"), plan_id=plan_id(n))
    again = write_job(tmp_path / "job.yaml", endpoint=url, plans=range(4, 8))
    failed = await cli("run", str(again), "-q", "--backoff", "0")
    assert failed.code == 1
    lines = failed.err.splitlines()
    assert lines[0] == "2 succeeded, 2 failed, 0 skipped, in 0 s"
    assert "  PM.02175006 x2 (e.g. plan " in failed.err
    assert lines[-2:] == [
        f"report: {report}",
        f"to finish: batchthumb run {again} --report {report} --retry-failed",
    ]
    assert "plans to set" not in failed.err  # the plan line is not a failure


async def test_the_finishing_command_repeats_the_report_and_endpoint_flags_given(
    tmp_path: Path, sandbox: tuple[Sandbox, str]
) -> None:
    """A job without an endpoint, run with --endpoint and --report: the hint has both, and
    running it as printed finishes the job (exit 0)."""
    box, url = sandbox
    box.faults.script(Fault.status(400), plan_id=plan_id(1))
    job = write_job(tmp_path / "job.yaml", endpoint=None, plans=range(3))
    report = tmp_path / "elsewhere.jsonl"
    first = await cli("run", str(job), "--endpoint", url, "--report", str(report), "--no-progress")
    assert first.code == 1
    hint = next(line for line in first.err.splitlines() if line.startswith("to finish: "))
    argv = hint.removeprefix("to finish: ").split()
    assert argv == [
        "batchthumb", "run", str(job), "--report", str(report), "--endpoint", url, "--retry-failed"
    ]  # fmt: skip
    second = await cli(*argv[1:], "--no-progress")
    assert second.code == 0, second.err
    assert "to finish" not in second.err


async def test_verbose_shows_each_retry_and_throttling(
    tmp_path: Path, sandbox: tuple[Sandbox, str]
) -> None:
    """-v prints a line for a retried 503 and one for a 429; without it neither shows."""
    box, url = sandbox
    job = write_job(tmp_path / "job.yaml", endpoint=url, plans=range(3))
    for verbose in (False, True):
        box.faults.script(Fault.status(503), plan_id=plan_id(0))
        box.faults.script(Fault.status(429, retry_after="0"), plan_id=plan_id(1))
        flags = ("--no-progress", "--backoff", "0", "--no-snapshot", *(["-v"] if verbose else []))
        result = await cli("run", str(job), *flags)
        assert result.code == 0, result.err
        retried = f"retrying plan {plan_id(0)} (attempt 1 failed: HTTP 503" in result.err
        throttled = f"throttled on plan {plan_id(1)}: HTTP 429" in result.err
        assert (retried, throttled) == (verbose, verbose)
        assert f"retrying plan {plan_id(1)}" not in result.err  # one line for the 429


async def test_the_log_file_gets_the_human_lines_dated_and_a_failure_before_any_request(
    tmp_path: Path, sandbox: tuple[Sandbox, str]
) -> None:
    """--log-file without --log-json appends the plan line, the summary and the report path,
    each dated; a run that fails before sending (no token) is logged there too."""
    _, url = sandbox
    job = write_job(tmp_path / "job.yaml", endpoint=url, plans=range(2))
    log = tmp_path / "nightly.log"
    assert (await cli("run", str(job), "-q", "--log-file", str(log))).code == 0
    text = log.read_text()
    assert "batchthumb: 2 of 2 plans to set, 0 already done" in text
    assert "batchthumb: 2 succeeded, 0 failed, 0 skipped" in text
    assert f"batchthumb: report: {tmp_path / 'job.results.jsonl'}" in text
    assert all(line[:4].isdigit() and "+00:00 batchthumb: " in line for line in text.splitlines())
    env = {k: v for k, v in environment().items() if k != "BATCHTHUMB_TOKEN"}
    refused = await cli("run", str(job), "-q", "--log-file", str(log), env=env)
    assert refused.code == 2
    assert "BATCHTHUMB_TOKEN" in refused.err
    assert "batchthumb: error: " in log.read_text().splitlines()[-1]


async def test_log_json_alone_makes_stderr_json_only_even_when_the_run_cannot_start(
    tmp_path: Path, sandbox: tuple[Sandbox, str]
) -> None:
    """--log-json without --log-file: every stderr line is a JSON object (status lines, the
    summary, a failed item), and so is the error of a run refused before its first request."""
    box, url = sandbox
    box.faults.script(Fault.status(400, "PM.02175006", "invalid parameter"), plan_id=plan_id(1))
    job = write_job(tmp_path / "job.yaml", endpoint=url, plans=range(3))
    result = await cli("run", str(job), "--log-json", "--backoff", "0")
    assert result.code == 1
    events = [json.loads(line) for line in result.err.splitlines()]
    kinds = [event["event"] for event in events]
    assert {"status", "start", "item_failed", "summary"} <= set(kinds)
    summary = next(event for event in events if event["event"] == "summary")
    assert summary["errors"] == {"PM.02175006": 1}
    report = tmp_path / "job.results.jsonl"
    assert events[-1]["event"] == "result"
    assert (events[-1]["exit_code"], events[-1]["unfinished"]) == (1, 1)
    assert events[-1]["finish"] == f"batchthumb run {job} --report {report} --retry-failed"
    env = {k: v for k, v in environment().items() if k != "BATCHTHUMB_TOKEN"}
    refused = await cli("run", str(job), "--log-json", env=env)
    assert refused.code == 2
    [error] = [json.loads(line) for line in refused.err.splitlines()]
    assert error["event"] == "error" and "BATCHTHUMB_TOKEN" in error["message"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("concurrency: 0\nitems: []\n")
    invalid = await cli("run", str(bad), "--log-json")
    assert invalid.code == 2
    [error] = [json.loads(line) for line in invalid.err.splitlines()]
    assert "concurrency: must be at least 1" in error["message"]


async def test_a_project_that_cannot_be_listed_fails_its_own_items_and_the_others_run(
    tmp_path: Path,
) -> None:
    """A deleted project (400 PM.02152005 on the list) fails its items with the listing's
    error in the report; the other project's plans are set; exit 1 and --retry-failed hint."""
    box = Sandbox(SandboxConfig(tokens=frozenset({TOKEN}), autocreate=False))
    for n in range(3):
        box.add_plan(P1, plan_id=plan_id(n))
    items = [f"  - {{project_id: {p}, plan_id: {plan_id(n)}, img_url: {img_url(n, p)}}}"
             for p in (P2, P1) for n in range(3)]  # fmt: skip
    async with box.serve() as url:
        job = tmp_path / "job.yaml"
        job.write_text(f"endpoint: {url}\nitems:\n" + "\n".join(items) + "\n")
        result = await cli("run", str(job), "--no-progress", "--backoff", "0")
    assert result.code == 1, result.err
    assert f"cannot list the plans of project {P2}: HTTP 400 PM.02152005" in result.err
    records = {
        (r["project_id"], r["plan_id"]): r for r in read_report(tmp_path / "job.results.jsonl")
    }
    assert {records[(P1, plan_id(n))]["outcome"] for n in range(3)} == {"succeeded"}
    for n in range(3):
        failed = records[(P2, plan_id(n))]
        assert (failed["outcome"], failed["http_status"], failed["error_code"]) == (
            "failed", 400, "PM.02152005"
        )  # fmt: skip
        assert failed["error"].startswith("listing the project failed: ")
    assert "  PM.02152005 x3 (e.g. plan " in result.err


@pytest.mark.parametrize(
    ("config", "token", "expected"),
    [
        ({}, "not-the-right-token", "the server rejected the credentials (HTTP 401"),
        (
            {"non_member_projects": frozenset({P1})},
            TOKEN,
            "permission refused (HTTP 400 PM.02150010): the user is not a member of project",
        ),
    ],
)
async def test_credentials_refused_on_the_listing_stop_the_run_and_say_so(
    tmp_path: Path, config: dict[str, frozenset[str]], token: str, expected: str
) -> None:
    """A 401, or 400 PM.02150010 (not a member), on the first listing stops the run with
    exit 3 before any PUT, naming the credentials rather than the listing."""
    box = Sandbox(SandboxConfig(tokens=frozenset({TOKEN}), **config))  # type: ignore[arg-type]
    async with box.serve() as url:
        job = write_job(tmp_path / "job.yaml", endpoint=url, plans=range(3))
        result = await cli(
            "run", str(job), "--no-progress", env=environment(BATCHTHUMB_TOKEN=token)
        )
    assert result.code == 3, result.err
    assert expected in result.err
    assert "cannot list the plans" not in result.err
    assert box.stats.puts == 0


async def test_retry_failed_after_a_run_that_sent_nothing_exits_4_and_says_to_resume(
    tmp_path: Path, sandbox: tuple[Sandbox, str]
) -> None:
    """A run refused on its first listing records nothing; --retry-failed then sends nothing,
    names the 10 items never attempted and the --resume command, and does not exit 0."""
    box, url = sandbox
    job = write_job(tmp_path / "job.yaml", endpoint=url, plans=range(10))
    bad = environment(BATCHTHUMB_TOKEN="not-the-right-token")
    assert (await cli("run", str(job), "--no-progress", env=bad)).code == 3
    puts = box.stats.puts
    retry = await cli("run", str(job), "--no-progress", "--retry-failed")
    assert retry.code == 4, retry.err
    assert box.stats.puts == puts
    assert "0 of 10 plans to retry, 0 already done, 10 never attempted" in retry.err
    assert "10 items were never attempted" in retry.err
    report = tmp_path / "job.results.jsonl"
    assert f"to finish: batchthumb run {job} --report {report} --resume" in retry.err
    assert (await cli("run", str(job), "--no-progress", "--resume")).code == 0


async def test_generated_jobs_run_as_written(tmp_path: Path, sandbox: tuple[Sandbox, str]) -> None:
    """undo -o - prints a job naming the endpoint; export keeps an existing file as .1;
    --backup with no thumbnail to keep writes no file and says so."""
    box, url = sandbox
    for n in range(3):
        box.add_plan(P1, name=f"Plan {n}", img_url=original(n), plan_id=plan_id(n))
    box.add_plan(P1, name="Bare", plan_id=plan_id(9))
    job = write_job(tmp_path / "job.yaml", endpoint=url, plans=range(3))
    assert (await cli("run", str(job), "--no-progress")).code == 0
    undo = await cli("undo", str(tmp_path / "job.results.jsonl"), "-o", "-")
    assert undo.code == 0, undo.err
    assert f"endpoint: {json.dumps(url)}" in undo.out.splitlines()
    assert undo.err.strip() == "-: restores 3 plans"
    (tmp_path / "undo.yaml").write_text(undo.out)
    assert (await cli("run", str(tmp_path / "undo.yaml"), "--no-progress")).code == 0
    assert [shown(box, n) for n in range(3)] == [original(n) for n in range(3)]

    out = tmp_path / "export.yaml"
    out.write_text("# mine\n")
    exported = await cli("export", "--project", P1, "-o", str(out), "--endpoint", url)
    assert exported.code == 0, exported.err
    assert f"(the previous one is kept as {out}.1)" in exported.out
    assert (tmp_path / "export.yaml.1").read_text() == "# mine\n"
    assert out.read_text().startswith("# The thumbnails of project")
    refused = await cli("export", "--project", P1, "-o", str(out), "--report", "r.jsonl")
    assert refused.code == 2
    assert "unrecognized arguments: --report" in refused.err

    bare = job_of(tmp_path / "bare.yaml", url, {9: img_url(9)})
    backup = tmp_path / "backup.yaml"
    ran = await cli("run", str(bare), "--no-progress", "--backup", str(backup))
    assert ran.code == 0, ran.err
    assert f"--backup: none of the 1 plans has a thumbnail to back up; {backup} not written" in (
        ran.err
    )
    assert not backup.exists()


async def test_every_run_setting_is_a_job_key_checked_with_file_and_line_and_flags_win(
    tmp_path: Path, sandbox: tuple[Sandbox, str]
) -> None:
    """backoff, breaker, lock_wait, max_duration, history, snapshot, backup, quiet, log_json
    and log_file are read from the job; bad values name file:line; a flag beats the key."""
    _, url = sandbox
    bad = job_of(
        tmp_path / "bad.yaml",
        url,
        {0: img_url(0)},
        settings="backoff: -1\nmax_duration: soon\nhistory: 0\nsnapshot: maybe\nlog_file: [x]",
    )
    result = await cli("validate", str(bad))
    assert result.code == 2
    assert result.err.splitlines()[:5] == [
        f"{bad}:2: backoff: must be 0 or more, not -1",
        f"{bad}:3: max_duration: 'soon' is not a duration like 90s, 30m or 2h",
        f"{bad}:4: history: must be at least 1, not 0",
        f"{bad}:5: snapshot: must be true or false, not the text 'maybe'",
        f"{bad}:6: log_file: must be a text value, not a list",
    ]
    settings = (
        "backoff: 0\nbreaker: 3\nlock_wait: 1\nmax_duration: 30m\nhistory: 2\nquiet: true\n"
        "log_json: true\nlog_file: logs/run.jsonl\nbackup: backup.yaml"
    )
    good = job_of(tmp_path / "good.yaml", url, {0: img_url(0)}, settings=settings)
    quiet = await cli("run", str(good))
    assert (quiet.code, quiet.err) == (0, "")
    events = [json.loads(line) for line in (tmp_path / "logs/run.jsonl").read_text().splitlines()]
    assert [event["event"] for event in events[-2:]] == ["summary", "result"]

    loud = await cli("run", str(good), "-v", "--no-log-json", "--log-file", str(tmp_path / "h.log"))
    assert loud.code == 0
    assert "0 succeeded, 0 failed, 1 skipped" in loud.err
    assert "0 succeeded, 0 failed, 1 skipped" in (tmp_path / "h.log").read_text()
    assert (tmp_path / "backup.yaml").exists()  # the plan has a thumbnail to keep now
    unbacked = await cli("run", str(good), "--no-snapshot")  # the flag beats `backup:`
    assert unbacked.code == 0
    assert not (tmp_path / "backup.yaml.1").exists()
    chatty = job_of(tmp_path / "chatty.yaml", url, {0: img_url(0)}, settings="verbose: true")
    hushed = await cli("run", str(chatty), "-q")
    assert (hushed.code, hushed.err) == (0, "")
