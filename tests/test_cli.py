"""The `batchthumb` command: real job files, the sandbox over HTTP; in process, a few in a subprocess."""

from __future__ import annotations

from pathlib import Path

import pytest

from batchthumb.report import report_lock
from batchthumb.sandbox import Fault, Sandbox, SandboxConfig, load_seed
from tests.clihelp import by_plan, cli, cli_process, environment, read_report, write_job
from tests.conftest import P1, TOKEN, plan_id

pytestmark = pytest.mark.anyio

FIELDS = {
    "project_id", "plan_id", "img_url", "outcome", "http_status", "error_code", "error",
    "attempts", "elapsed_ms", "finished_at", "request_id",
}  # fmt: skip


async def test_validate_accepts_a_good_job(tmp_path: Path) -> None:
    """`validate` says OK with the item count and exits 0."""
    job = write_job(tmp_path / "job.yaml", endpoint=None, plans=range(3))
    result = await cli("validate", str(job))
    assert result.code == 0
    assert result.out.strip() == f"{job}: OK, 3 items in 1 project(s)"


async def test_a_bad_job_exits_2_with_every_problem_and_sends_nothing(
    tmp_path: Path, sandbox: tuple[Sandbox, str]
) -> None:
    """Each problem is one stderr line with file:line: key; nothing reaches the server."""
    box, url = sandbox
    job = tmp_path / "job.yaml"
    job.write_text(
        f"endpoint: {url}\nconcurrency: -1\nitems:\n"
        f"  - {{project_id: {P1}, plan_id: short, img_url: /v1/upload/x.png}}\n"
    )
    result = await cli_process("run", str(job), "--no-progress")
    assert result.code == 2
    assert result.err.splitlines() == [
        f"{job}:2: concurrency: must be at least 1, not -1",
        f"{job}:4: items[0].plan_id: must be 32 letters or digits (the plan id)",
        f"{job}:4: items[0].img_url: must look like /v1/upload/<id>/<yyyymm>/<name>.<ext>",
        "batchthumb: 3 problems found; nothing was sent",
    ]
    assert box.stats.requests == 0


async def test_a_large_job_sets_every_plan_exactly_once(
    tmp_path: Path, sandbox: tuple[Sandbox, str]
) -> None:
    """2,000 items: every plan set once, every outcome in the report once, exit 0."""
    box, url = sandbox
    job = write_job(
        tmp_path / "job.yaml", endpoint=url, plans=range(2000), settings="concurrency: 16"
    )
    result = await cli_process("run", str(job), "--no-progress")
    assert result.code == 0, result.err
    assert len(box.stats.applied) == 2000
    assert set(box.stats.applied.values()) == {1}
    records = read_report(tmp_path / "job.results.jsonl")
    assert len(records) == 2000
    assert {r["outcome"] for r in records} == {"succeeded"}
    assert FIELDS <= set(records[0]) <= FIELDS | {"previous_img_url"}
    assert "2000 succeeded, 0 failed, 0 skipped" in result.err


async def test_permanent_failures_exit_1_and_are_reported_with_the_servers_words(
    tmp_path: Path, sandbox: tuple[Sandbox, str]
) -> None:
    """A 400 for one plan fails that item only; the report keeps status, code and message."""
    box, url = sandbox
    box.faults.script(Fault.status(400, "PM.02175006", "invalid parameter"), plan_id=plan_id(2))
    job = write_job(tmp_path / "job.yaml", endpoint=url, plans=range(5))
    result = await cli("run", str(job), "--no-progress", "--backoff", "0")
    assert result.code == 1
    failed = by_plan(read_report(tmp_path / "job.results.jsonl"))[plan_id(2)]
    assert (failed["outcome"], failed["http_status"], failed["error_code"], failed["error"]) == (
        "failed",
        400,
        "PM.02175006",
        "invalid parameter",
    )
    assert failed["attempts"] == 1
    assert f"  PM.02175006 x1 (e.g. plan {plan_id(2)})" in result.err


@pytest.mark.parametrize(
    ("fault", "said"),
    [
        (Fault.status(403, "SANDBOX.0403", "Forbidden"), f"forbidden in project {P1} (Forbidden)"),
        (
            Fault.status(400, "PM.02150010", "The user is not a member of the project."),
            f"the user is not a member of project {P1}",
        ),
        (
            Fault.status(400, "PM.02174103", "无操作权限"),
            f"no permission in project {P1} (无操作权限)",
        ),
    ],
    ids=["403", "400-not-a-member", "400-no-permission"],
)
async def test_a_permission_answer_stops_the_run_with_exit_3_naming_what_is_missing(
    tmp_path: Path, sandbox: tuple[Sandbox, str], fault: Fault, said: str
) -> None:
    """403, 400 PM.02150010 and 400 PM.02174103 stop the run (exit 3), not just the item:
    nothing after it is sent, and the message says which permission is missing."""
    box, url = sandbox
    box.faults.script(fault, plan_id=plan_id(2))
    job = write_job(tmp_path / "job.yaml", endpoint=url, plans=range(50), settings="concurrency: 1")
    result = await cli("run", str(job), "--no-progress", "--backoff", "0")
    assert result.code == 3, result.err
    assert f"permission refused (HTTP {fault.http_status} {fault.error_code}): {said}" in result.err
    assert box.stats.puts == 3
    records = by_plan(read_report(tmp_path / "job.results.jsonl"))
    assert records[plan_id(2)]["outcome"] == "failed"
    assert plan_id(3) not in records


async def test_a_project_the_user_is_no_member_of_stops_the_run_before_any_put(
    tmp_path: Path,
) -> None:
    """The sandbox answers a non-member 400 PM.02150010, as documented: the snapshot's list
    call meets it, and the run stops with exit 3 saying the user is not a member."""
    box = Sandbox(SandboxConfig(tokens=frozenset({TOKEN}), non_member_projects={P1}))
    async with box.serve() as url:
        job = write_job(tmp_path / "job.yaml", endpoint=url, plans=range(5))
        result = await cli("run", str(job), "--no-progress")
    assert result.code == 3, result.err
    assert f"the user is not a member of project {P1}" in result.err
    assert box.stats.puts == 0


async def test_retryable_failures_are_retried_to_success(
    tmp_path: Path, sandbox: tuple[Sandbox, str]
) -> None:
    """503 twice then 200: the item succeeds on its third attempt."""
    box, url = sandbox
    box.faults.script(Fault.status(503), times=2, plan_id=plan_id(1))
    job = write_job(tmp_path / "job.yaml", endpoint=url, plans=range(3))
    result = await cli("run", str(job), "--no-progress", "--backoff", "0")
    assert result.code == 0
    assert by_plan(read_report(tmp_path / "job.results.jsonl"))[plan_id(1)]["attempts"] == 3


async def test_rejected_credentials_abort_with_exit_3_before_sending_everything(
    tmp_path: Path, sandbox: tuple[Sandbox, str]
) -> None:
    """With a token the server refuses, the run stops at once instead of sending 500 401s."""
    box, url = sandbox
    job = write_job(
        tmp_path / "job.yaml", endpoint=url, plans=range(500), settings="concurrency: 4"
    )
    env = environment(BATCHTHUMB_TOKEN="not-the-right-token")
    result = await cli("run", str(job), "--no-progress", env=env)
    assert result.code == 3
    assert "aborted:" in result.err
    assert "HTTP 401 APIGW.0301" in result.err
    assert box.stats.puts <= 4
    assert "not-the-right-token" not in result.err


async def test_resume_sends_only_what_is_not_done_and_keeps_one_line_per_item(
    tmp_path: Path, sandbox: tuple[Sandbox, str]
) -> None:
    """After a run with failures, --resume sends only the failed items; the report ends compact."""
    box, url = sandbox
    for n in (3, 7):
        box.faults.script(Fault.status(400), plan_id=plan_id(n))
    job = write_job(tmp_path / "job.yaml", endpoint=url, plans=range(10))
    first = await cli("run", str(job), "--no-progress")
    assert first.code == 1
    puts_before = box.stats.puts
    second = await cli("run", str(job), "--no-progress", "--resume")
    assert second.code == 0
    assert box.stats.puts - puts_before == 2
    assert "2 of 10 plans to set, 8 already done" in second.err
    records = read_report(tmp_path / "job.results.jsonl")
    assert len(records) == 10
    assert {r["outcome"] for r in records} == {"succeeded"}


async def test_retry_failed_sends_only_failed_items(
    tmp_path: Path, sandbox: tuple[Sandbox, str]
) -> None:
    """--retry-failed retries the failed items only; those never attempted make it exit 4."""
    box, url = sandbox
    box.faults.script(Fault.status(400), plan_id=plan_id(1))
    job = write_job(tmp_path / "job.yaml", endpoint=url, plans=range(3))
    assert (await cli("run", str(job), "--no-progress")).code == 1
    bigger = write_job(tmp_path / "job.yaml", endpoint=url, plans=range(6))
    puts_before = box.stats.puts
    result = await cli("run", str(bigger), "--no-progress", "--retry-failed")
    assert result.code == 4
    assert box.stats.puts - puts_before == 1
    assert "1 of 6 plans to retry, 2 already done, 3 never attempted" in result.err
    assert "3 items were never attempted" in result.err
    report = tmp_path / "job.results.jsonl"
    assert f"to finish: batchthumb run {bigger} --report {report} --resume" in result.err


async def test_dry_run_shows_the_plan_and_sends_nothing(
    tmp_path: Path, sandbox: tuple[Sandbox, str]
) -> None:
    """--dry-run --no-check prints the count, the rate estimate and the requests, and sends
    nothing at all (without --no-check it compares first: tests/test_check_cli.py)."""
    box, url = sandbox
    job = write_job(tmp_path / "job.yaml", endpoint=url, plans=range(30), settings="rate: 10")
    result = await cli("run", str(job), "--dry-run", "--no-check")
    assert result.code == 0
    assert "not compared with the API (not asked to (--no-check))" in result.out
    assert result.out.startswith(
        "dry run: 30 of 30 plans to set, 0 already done, about 3 s at 10/s"
    )
    assert f"PUT /v3/plan/{P1}/management/{plan_id(0)}/img" in result.out
    assert "... and 10 more" in result.out
    assert box.stats.requests == 0


async def test_no_token_is_a_usage_error_naming_the_variable(
    tmp_path: Path, sandbox: tuple[Sandbox, str]
) -> None:
    """Without BATCHTHUMB_TOKEN the run exits 2 and says how to provide credentials."""
    box, url = sandbox
    job = write_job(tmp_path / "job.yaml", endpoint=url, plans=range(2))
    env = environment()
    del env["BATCHTHUMB_TOKEN"]
    result = await cli("run", str(job), env=env)
    assert result.code == 2
    assert "set BATCHTHUMB_TOKEN" in result.err
    assert box.stats.requests == 0


async def test_no_endpoint_is_a_usage_error(tmp_path: Path) -> None:
    """A job with neither endpoint nor region, run without --sandbox, exits 2."""
    job = write_job(tmp_path / "job.yaml", endpoint=None, plans=range(2))
    result = await cli("run", str(job))
    assert result.code == 2
    assert "no endpoint" in result.err


async def test_a_second_run_on_the_same_report_exits_75(
    tmp_path: Path, sandbox: tuple[Sandbox, str]
) -> None:
    """While the report is locked by another run, a run exits 75 and sends nothing."""
    box, url = sandbox
    job = write_job(tmp_path / "job.yaml", endpoint=url, plans=range(2))
    with report_lock(tmp_path / "job.results.jsonl"):
        result = await cli("run", str(job), "--no-progress")
    assert result.code == 75
    assert "is in use by pid" in result.err
    assert box.stats.requests == 0


async def test_flags_win_over_the_job_file(tmp_path: Path, sandbox: tuple[Sandbox, str]) -> None:
    """--report and --endpoint override the job's values."""
    box, url = sandbox
    job = write_job(tmp_path / "job.yaml", endpoint="https://nowhere.invalid", plans=range(2))
    report = tmp_path / "elsewhere.jsonl"
    result = await cli("run", str(job), "--endpoint", url, "--report", str(report), "--no-progress")
    assert result.code == 0
    assert len(read_report(report)) == 2
    assert box.stats.puts == 2


async def test_the_example_job_runs_against_the_embedded_sandbox(tmp_path: Path) -> None:
    """The README's first command works: jobs/example.yaml with --sandbox, no token needed."""
    report = tmp_path / "example.jsonl"
    env = environment()
    del env["BATCHTHUMB_TOKEN"]
    example = Path(__file__).parent.parent / "jobs" / "example.yaml"
    result = await cli(
        "run", str(example), "--sandbox", "--rate", "0", "--report", str(report), env=env
    )
    assert result.code == 0, result.err
    assert "24 succeeded, 0 failed" in result.err
    assert len(read_report(report)) == 24


async def test_an_endpoint_that_never_answers_trips_the_breaker(tmp_path: Path) -> None:
    """Nothing listening: after 25 items in a row cannot connect, the run stops with exit 3."""
    job = write_job(tmp_path / "job.yaml", endpoint="http://127.0.0.1:9", plans=range(200))
    options = ("--no-progress", "--no-snapshot", "--retries", "0", "--backoff", "0")
    result = await cli("run", str(job), *options, "--concurrency", "1")
    assert result.code == 3
    assert "25 items in a row failed with cannot connect" in result.err
    assert len(read_report(tmp_path / "job.results.jsonl")) == 25


async def test_the_breaker_can_be_switched_off(tmp_path: Path) -> None:
    """--breaker 0 lets every item be tried, however alike the failures."""
    job = write_job(tmp_path / "job.yaml", endpoint="http://127.0.0.1:9", plans=range(40))
    options = ("--no-progress", "--no-snapshot", "--retries", "0", "--backoff", "0")
    result = await cli("run", str(job), *options, "--breaker", "0")
    assert result.code == 1
    assert "  cannot connect x40 (e.g. plan " in result.err


@pytest.mark.parametrize("job", sorted((Path(__file__).parent.parent / "jobs").glob("*.yaml")))
async def test_every_shipped_job_is_valid(job: Path) -> None:
    """The job files in jobs/ pass validation as shipped."""
    result = await cli("validate", str(job))
    assert result.code == 0, result.err


@pytest.mark.parametrize(
    ("name", "plans"), [("migration", 11), ("region-source", 6), ("region-target", 6)]
)
def test_the_shipped_seeds_load(name: str, plans: int) -> None:
    """The README walkthroughs' seeds in jobs/seeds/ load into a sandbox."""
    seed = Path(__file__).parent.parent / "jobs" / "seeds" / f"{name}.yaml"
    box = Sandbox()
    assert load_seed(seed, box) == plans


async def test_a_fresh_run_keeps_the_previous_report(
    tmp_path: Path, sandbox: tuple[Sandbox, str]
) -> None:
    """Running again without --resume starts a new report and keeps the last one as REPORT.1."""
    _, url = sandbox
    job = write_job(tmp_path / "job.yaml", endpoint=url, plans=range(3))
    assert (await cli("run", str(job), "--no-progress")).code == 0
    first = (tmp_path / "job.results.jsonl").read_text()
    assert (await cli("run", str(job), "--no-progress")).code == 0
    assert (tmp_path / "job.results.jsonl.1").read_text() == first
    assert len(read_report(tmp_path / "job.results.jsonl")) == 3
