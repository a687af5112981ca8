"""The snapshot: each project listed once, when its first item comes, beside the other PUTs.

The real CLI runs in a subprocess against a sandbox in the test's event loop; a project's list
calls are held at a gate of their own (``Sandbox.list_gates``) to show what goes on meanwhile.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import anyio
import pytest

from batchthumb.auth import StaticToken
from batchthumb.client import open_api
from batchthumb.console import Quiet
from batchthumb.model import RunSettings, Tally
from batchthumb.sandbox import Gate, Sandbox, SandboxConfig
from batchthumb.session import make_sender
from batchthumb.snapshot import Previous, Snapshot
from tests.clihelp import CLI_TIMEOUT, cli, read_report
from tests.conftest import P1, TOKEN, img_url, plan_id
from tests.test_reliability import finish, start

pytestmark = pytest.mark.anyio

P2 = "0792b7d26cb74bd799cbae80063dc74a"
P3 = "5a11d570c7a44b5e9b8e4f1d2c3b4a59"


def write_items(path: Path, url: str, items: Iterable[tuple[str, int]], settings: str = "") -> Path:
    """A job setting plan ``n`` of each (project, n) to the thumbnail ``img_url(n, project)``."""
    lines = [f"endpoint: {url}", settings, "items:"]
    lines += [
        f"  - {{project_id: {p}, plan_id: {plan_id(n)}, img_url: {img_url(n, p)}}}"
        for p, n in items
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def seed(box: Sandbox, items: Iterable[tuple[str, int]]) -> dict[tuple[str, str], str]:
    """Each plan with an older thumbnail than the job's; what each showed before."""
    before = {}
    for project, n in items:
        plan = box.add_plan(project, plan_id=plan_id(n), img_url=img_url(1000 + n, project))
        before[(project, plan.id)] = img_url(1000 + n, project)
    return before


def held(box: Sandbox, project: str) -> Gate:
    gate = Gate()
    gate.close()
    box.list_gates[project] = gate
    return gate


async def test_a_projects_puts_go_on_while_another_project_is_being_listed(
    tmp_path: Path, sandbox: tuple[Sandbox, str]
) -> None:
    """P1's PUTs all land while P2's listing is held; P2 gets none until its listing answers."""
    box, url = sandbox
    items = [(P2, 10), *((P1, n) for n in range(10)), *((P2, n) for n in range(11, 14))]
    before = seed(box, items)
    job = write_items(tmp_path / "job.yaml", url, items, "concurrency: 4")
    gate = held(box, P2)
    process = await start("run", str(job), "--no-progress")
    try:
        with anyio.fail_after(CLI_TIMEOUT):
            await box.wait_until(
                lambda s: sum(s.applied[(P1, plan_id(n))] for n in range(10)) == 10
            )
        assert not any(project == P2 for project, _ in box.stats.applied)
    finally:
        gate.open()
    code, err = await finish(process)
    assert code == 0, err
    assert box.stats.applied_total == len(items)
    previous = {
        (r["project_id"], r["plan_id"]): r["previous_img_url"]
        for r in read_report(tmp_path / "job.results.jsonl")
    }
    assert previous == before


async def test_the_summary_counts_the_list_calls_among_its_requests(
    tmp_path: Path, sandbox: tuple[Sandbox, str]
) -> None:
    """Three projects of two plans: 3 list calls and 6 PUTs, and the summary says 9 requests."""
    box, url = sandbox
    items = [(p, n) for p in (P1, P2, P3) for n in range(2)]
    seed(box, items)
    result = await cli("run", str(write_items(tmp_path / "job.yaml", url, items)), "--no-progress")
    assert result.code == 0, result.err
    assert (box.stats.lists, box.stats.puts) == (3, 6)
    assert "9 requests for 6 items" in result.err


async def test_with_backup_every_project_is_listed_at_once_before_any_put(
    tmp_path: Path, sandbox: tuple[Sandbox, str]
) -> None:
    """--backup lists all projects first, side by side: no PUT until the held one answers."""
    box, url = sandbox
    items = [(p, n) for p in (P1, P2, P3) for n in range(3)]
    before = seed(box, items)
    job = write_items(tmp_path / "job.yaml", url, items, "concurrency: 4")
    gate = held(box, P1)
    backup = tmp_path / "backup.yaml"
    process = await start("run", str(job), "--no-progress", "--backup", str(backup))
    try:
        with anyio.fail_after(CLI_TIMEOUT):
            await box.wait_until(lambda s: s.lists == 3)  # P2 and P3 asked while P1 is held
        assert box.stats.puts == 0
    finally:
        gate.open()
    code, err = await finish(process)
    assert code == 0, err
    assert box.stats.puts == len(items)
    assert all(url_before in backup.read_text() for url_before in before.values())


async def test_a_project_that_cannot_be_listed_fails_only_its_items(tmp_path: Path) -> None:
    """A project the server will not list gets no PUT and its item fails (exit 1); the other
    project's plans are set, listed concurrently as ever."""
    box = Sandbox(SandboxConfig(tokens=frozenset({TOKEN}), autocreate=False))
    items = [(P1, n) for n in range(3)]
    seed(box, items)
    async with box.serve() as url:
        job = write_items(tmp_path / "job.yaml", url, [*items, (P2, 9)], "concurrency: 1")
        result = await cli("run", str(job), "--no-progress", "--backoff", "0")
    assert result.code == 1, result.err
    assert f"cannot list the plans of project {P2}" in result.err
    assert not any(project == P2 for project, _ in box.stats.applied)
    assert sum(project == P1 for project, _ in box.stats.applied) == 3


async def test_a_kill_while_a_listing_is_held_then_resume_and_undo_restore_every_plan(
    tmp_path: Path, sandbox: tuple[Sandbox, str]
) -> None:
    """Killed with PUTs applied but not journaled and a project not yet listed: undo restores all."""
    box, url = sandbox
    items = [*((P1, n) for n in range(30)), *((P2, n) for n in range(30, 40))]
    before = seed(box, items)
    job = write_items(tmp_path / "job.yaml", url, items, "concurrency: 4")
    report = tmp_path / "job.results.jsonl"
    gate = held(box, P2)
    process = await start("run", str(job), "--no-progress")
    with anyio.fail_after(CLI_TIMEOUT):
        await box.wait_until(lambda s: s.puts >= 10)
        box.gate.close()  # PUTs from now on are held, and applied only after the kill
        await box.wait_until(lambda s: s.waiting_at_gate >= 1)
    process.kill()
    await process.wait()
    box.gate.open()
    gate.open()
    with anyio.fail_after(CLI_TIMEOUT):
        await box.wait_until(lambda s: s.applied_total == s.puts)  # the held ones applied too
    snapshots = [
        json.loads(line) for line in report.read_text().splitlines() if '"snapshot"' in line
    ]
    assert [s["project_id"] for s in snapshots] == [P1]  # P2 was not listed before the kill

    assert (await cli("run", str(job), "--no-progress", "--resume")).code == 0
    assert all(box.plan(p, plan).img_url != old for (p, plan), old in before.items())  # type: ignore[union-attr]
    undo = tmp_path / "undo.yaml"
    assert (await cli("undo", str(report), "-o", str(undo))).code == 0
    restored = await cli("run", str(undo), "--endpoint", url, "--no-progress")
    assert restored.code == 0, restored.err
    assert {(p, plan): box.plan(p, plan).img_url for p, plan in before} == before  # type: ignore[union-attr]


def test_previous_keeps_what_it_knew_first_and_reads_like_a_mapping() -> None:
    """A plan's first known thumbnail wins (the journal's over a new listing's); None is kept."""
    previous = Previous()
    previous.add(P1, {"a" * 32: "/old", "b" * 32: None})
    previous.add(P1, {"a" * 32: "/new", "c" * 32: "/c"})
    previous.add(P2, {"a" * 32: "/p2"})
    assert dict(previous) == {
        (P1, "a" * 32): "/old",
        (P1, "b" * 32): None,
        (P1, "c" * 32): "/c",
        (P2, "a" * 32): "/p2",
    }
    assert len(previous) == 4
    assert (P1, "b" * 32) in previous and (P2, "b" * 32) not in previous
    assert previous.get((P3, "a" * 32), "unknown") == "unknown"


class Listed:
    """A progress that only keeps what the snapshot said about its listings."""

    def __init__(self) -> None:
        self.said: list[tuple[int, int]] = []

    def update(self, tally: Tally) -> None:
        """Not used here."""

    def listed(self, done: int, total: int) -> None:
        self.said.append((done, total))

    async def heartbeat(self, tally: Tally) -> None:
        """Not used here."""

    def close(self) -> None:
        """Not used here."""


class Recorded:
    def __init__(self) -> None:
        self.snapshots: list[str] = []

    def record_snapshot(self, project_id: str, plans: dict[str, str | None]) -> None:
        self.snapshots.append(project_id)


async def test_a_project_is_listed_once_however_many_wait_and_progress_hears_of_each(
    sandbox: tuple[Sandbox, str],
) -> None:
    """Six items of two projects asking at once: two list calls, two snapshots, two progress steps."""
    box, url = sandbox
    seed(box, [(P1, 1), (P2, 2)])
    progress, journal = Listed(), Recorded()
    async with open_api(url, StaticToken(TOKEN), concurrency=4, timeout=30) as api:
        sender = make_sender(RunSettings(backoff=0))
        snapshot = Snapshot(api, sender, journal, Quiet(), progress, total=2)
        answers: list[bool] = []

        async def ask(project_id: str) -> None:
            answers.append(await snapshot.ready(project_id))

        with anyio.fail_after(CLI_TIMEOUT):
            async with anyio.create_task_group() as tasks:
                for project_id in (P1, P2, P1, P2, P1, P2):
                    tasks.start_soon(ask, project_id)
    assert answers == [True] * 6
    assert box.stats.lists == 2
    assert sorted(journal.snapshots) == sorted([P1, P2])
    assert progress.said == [(1, 2), (2, 2)]
    assert dict(snapshot.previous) == {
        (P1, plan_id(1)): img_url(1001, P1),
        (P2, plan_id(2)): img_url(1002, P2),
    }
