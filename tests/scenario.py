"""A run worth looking at: real images before and after, a failure, a skip, a hostile name."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from batchthumb.sandbox import Fault, Sandbox
from tests.clihelp import cli
from tests.conftest import P1, plan_id
from tests.pictures import thumbnail

HOSTILE = "<img src=x onerror=alert(1)>"
FORMULA = '=HYPERLINK("http://evil.example/","click") <script>alert(2)</script>'
FAILING = 3  # the plan whose PUT fails
ALREADY = 0  # the plan that already shows its new thumbnail


@dataclass(frozen=True)
class Scenario:
    """Where the job and its report are, and what the run was asked to do."""

    job: Path
    report: Path
    wanted: dict[str, str]  # plan_id -> img_url the job sets
    previous: dict[str, str | None]  # plan_id -> img_url before the run


def seed(
    box: Sandbox, plans: int, *, shared: bool = False
) -> tuple[dict[str, str], dict[str, str | None]]:
    """Plans with real thumbnails (every third has none) and a new image uploaded for each
    (with ``shared``, one new image for them all)."""
    common = box.upload(P1, thumbnail(99)) if shared else None
    wanted: dict[str, str] = {}
    previous: dict[str, str | None] = {}
    for n in range(plans):
        before = None if n % 3 == 2 else box.upload(P1, thumbnail(n))
        name = HOSTILE if n == 1 else f"Roadmap {n}: release train"
        box.add_plan(P1, name=name, type="gantt", plan_id=plan_id(n), img_url=before)
        previous[plan_id(n)] = before
        after = before if n == ALREADY and before else common or box.upload(P1, thumbnail(100 + n))
        wanted[plan_id(n)] = after
    return wanted, previous


def write_items_job(path: Path, url: str, wanted: dict[str, str], extra: str = "") -> Path:
    """A job setting ``wanted`` at ``url``."""
    lines = [f"endpoint: {url}", extra, f"defaults:\n  project_id: {P1}", "items:"]
    lines += [f"  - {{plan_id: {plan}, img_url: {img}}}" for plan, img in wanted.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


async def run_scenario(
    box: Sandbox, url: str, folder: Path, *, plans: int = 6, shared: bool = False
) -> Scenario:
    """Seed the sandbox, run the job through the CLI (exit 1: one plan fails), return where."""
    wanted, previous = seed(box, plans, shared=shared)
    box.faults.script(Fault.status(400, "PM.02175006", FORMULA), plan_id=plan_id(FAILING))
    box.faults.script(Fault.status(429), plan_id=plan_id(4))  # throttled once, then set
    job = write_items_job(folder / "job.yaml", url, wanted)
    result = await cli("run", str(job), "--no-progress", "--backoff", "0")
    assert result.code == 1, result.err
    return Scenario(job, folder / "job.results.jsonl", wanted, previous)
