"""Items files (CSV and JSON lines): validated with file:line:key problems, then streamed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from batchthumb.errors import JobFileError
from batchthumb.itemsfile import FileItems
from batchthumb.jobfile import load_job
from batchthumb.jobrun import plan_run
from batchthumb.model import Attempt, Item, ItemResult, Verdict
from batchthumb.ratelimit import RateGovernor
from batchthumb.runner import run_batch
from batchthumb.sending import RetryPolicy, Sender

P1 = "919bb351ef424e2daaf3dd80c179fae9"
P2 = "0792b7d26cb74bd799cbae80063dc74a"
PLAN = "bf56512ab4e544c29d03d068711ca56a"
PLAN2 = "cf56512ab4e544c29d03d068711ca56b"
URL1 = f"/v1/upload/{P1}/202506/1749730526922581391.png"
HEADER = "project_id,plan_id,img_url\n"


def job_with(tmp_path: Path, name: str, data: str | bytes, extra: str = "") -> Path:
    items = tmp_path / name
    if isinstance(data, bytes):
        items.write_bytes(data)
    else:
        items.write_text(data, encoding="utf-8")
    job = tmp_path / "job.yaml"
    job.write_text(f"{extra}items_file: {name}\n", encoding="utf-8")
    return job


def problems(job: Path) -> list[str]:
    with pytest.raises(JobFileError) as info:
        load_job(job)
    return [str(p) for p in info.value.problems]


def test_a_csv_items_file_loads_with_defaults_and_line_numbers(tmp_path: Path) -> None:
    """CSV rows become items in order, empty cells take the defaults, lines are kept."""
    data = f"plan_id,img_url,project_id\n{PLAN},{URL1},\n{PLAN2},{URL1},{P2}\n"
    job = job_with(tmp_path, "items.csv", data, f"defaults:\n  project_id: {P1}\n")
    loaded = load_job(job)
    assert list(loaded.items) == [Item(P1, PLAN, URL1, 2), Item(P2, PLAN2, URL1, 3)]
    assert len(loaded.items) == 2


def test_a_json_lines_items_file_loads_and_skips_blank_lines(tmp_path: Path) -> None:
    """Each non-blank JSON line is one item; its line number is kept."""
    lines = [json.dumps({"project_id": P1, "plan_id": PLAN, "img_url": URL1}), ""]
    lines.append(json.dumps({"project_id": P1, "plan_id": PLAN2, "img_url": URL1}))
    job = job_with(tmp_path, "items.jsonl", "\n".join(lines) + "\n")
    assert list(load_job(job).items) == [Item(P1, PLAN, URL1, 1), Item(P1, PLAN2, URL1, 3)]


def test_csv_problems_name_the_file_line_and_key(tmp_path: Path) -> None:
    """Bad ids, bad URLs, empty required cells and short rows are all reported at once."""
    data = HEADER + f"abc,{PLAN},{URL1}\n{P1},{PLAN},/v1/nope.png\n{P1},,{URL1}\n{P1},{PLAN2}\n"
    job = job_with(tmp_path, "items.csv", data)
    f = tmp_path / "items.csv"
    assert problems(job) == [
        f"{f}:2: items[0].project_id: must be 32 letters or digits (the CodeArts Req project id)",
        f"{f}:3: items[1].img_url: must look like /v1/upload/<id>/<yyyymm>/<name>.<ext>",
        f"{f}:4: items[2].plan_id: missing",
        f"{f}:5: items[3]: has 2 fields; the header has 3",
    ]


def test_csv_header_problems_are_reported_on_line_one(tmp_path: Path) -> None:
    """A missing column (with no default) or an unknown column is named on the header line."""
    missing = job_with(tmp_path, "a.csv", f"project_id,plan_id\n{P1},{PLAN}\n")
    assert problems(missing) == [f"{tmp_path / 'a.csv'}:1: missing column 'img_url'"]
    unknown = job_with(tmp_path, "b.csv", f"{HEADER.strip()},colour\n{P1},{PLAN},{URL1},red\n")
    assert problems(unknown) == [
        f"{tmp_path / 'b.csv'}:1: unknown column 'colour' (known: project_id, plan_id, img_url)"
    ]


def test_json_lines_problems_name_the_file_line_and_key(tmp_path: Path) -> None:
    """Bad JSON, non-objects, unknown keys, non-text values and missing fields are reported."""
    lines = [
        "{not json",
        "[1, 2]",
        json.dumps({"project_id": P1, "plan_id": PLAN, "img_url": URL1, "colour": "red"}),
        json.dumps({"project_id": P1, "plan_id": 7, "img_url": URL1}),
        json.dumps({"project_id": P1, "img_url": URL1}),
    ]
    job = job_with(tmp_path, "items.jsonl", "\n".join(lines) + "\n")
    f = tmp_path / "items.jsonl"
    assert problems(job) == [
        f"{f}:1: items[0]: not valid JSON: Expecting property name enclosed in double quotes",
        f"{f}:2: items[1]: must be a JSON object",
        f"{f}:3: items[2].colour: unknown key (known: project_id, plan_id, img_url)",
        f"{f}:4: items[3].plan_id: must be a text value, not 7",
        f"{f}:5: items[4].plan_id: missing",
    ]


@pytest.mark.parametrize("name", ["items.csv", "items.jsonl"])
def test_duplicates_name_the_line_first_listing_the_plan(tmp_path: Path, name: str) -> None:
    """The same (project_id, plan_id) twice is an error naming the first line."""
    if name.endswith(".csv"):
        data = HEADER + f"{P1},{PLAN},{URL1}\n{P2},{PLAN},{URL1}\n{P1},{PLAN},{URL1}\n"
    else:
        rows = [(P1, PLAN), (P2, PLAN), (P1, PLAN)]
        data = "".join(
            json.dumps({"project_id": p, "plan_id": q, "img_url": URL1}) + "\n" for p, q in rows
        )
    job = job_with(tmp_path, name, data)
    assert problems(job) == [
        f"{tmp_path / name}:4: items[2]: plan {PLAN} is already listed at line 2"
        if name.endswith(".csv")
        else f"{tmp_path / name}:3: items[2]: plan {PLAN} is already listed at line 1"
    ]


@pytest.mark.parametrize("name", ["items.csv", "items.jsonl"])
def test_bytes_that_are_not_utf8_name_their_line(tmp_path: Path, name: str) -> None:
    """A file that is not UTF-8 is refused with the line and byte offset of the bad byte."""
    first = HEADER.encode() if name.endswith(".csv") else b"\n"
    job = job_with(tmp_path, name, first + b"\xff\xfe,x,y\n")
    assert problems(job) == [f"{tmp_path / name}:2: not UTF-8 text (byte {len(first)})"]


def test_items_file_problems_in_the_job_file_itself(tmp_path: Path) -> None:
    """An unknown extension, a missing file, or both items and items_file are refused."""
    odd = job_with(tmp_path, "items.txt", "x")
    assert problems(odd) == [
        f"{tmp_path / 'items.txt'}: items_file must end in one of .csv, .jsonl, .ndjson"
    ]
    gone = tmp_path / "gone.yaml"
    gone.write_text("items_file: nothere.csv\n", encoding="utf-8")
    assert problems(gone) == [f"{tmp_path / 'nothere.csv'}: items_file: no such file"]
    both = tmp_path / "both.yaml"
    both.write_text(
        f"items_file: items.txt\nitems:\n  - {{project_id: {P1}, plan_id: {PLAN}, img_url: {URL1}}}\n",
        encoding="utf-8",
    )
    assert problems(both) == [
        f"{both}:1: items_file: give either `items` or `items_file`, not both"
    ]


def test_a_large_items_file_becomes_a_lazy_source_not_a_list(tmp_path: Path) -> None:
    """Loading keeps no items in memory: the job holds a FileItems that reads the file anew."""
    data = HEADER + "".join(f"{P1},{n:032x},{URL1}\n" for n in range(1000))
    job = load_job(job_with(tmp_path, "items.csv", data))
    assert isinstance(job.items, FileItems)
    assert len(job.items) == 1000
    assert not hasattr(job.items, "__getitem__")


class CountingApi:
    """Succeeds at once; the test counts the items pulled from the stream."""

    def __init__(self) -> None:
        self.pulled = 0

    async def set_thumbnail(self, project_id: str, plan_id: str, img_url: str) -> Attempt:
        await anyio.lowlevel.checkpoint()
        return Attempt(Verdict.OK, 200)


class CountingJournal:
    """Records how far the item stream ran ahead of the journal at each result."""

    def __init__(self, api: CountingApi) -> None:
        self.api = api
        self.recorded = 0
        self.most_ahead = 0

    def record(self, result: ItemResult) -> None:
        self.recorded += 1
        self.most_ahead = max(self.most_ahead, self.api.pulled - self.recorded)


@pytest.mark.anyio
async def test_a_resumed_run_streams_items_with_a_bounded_lead(tmp_path: Path) -> None:
    """Items stream from the source to the workers: never more than `concurrency` ahead."""
    report = tmp_path / "job.results.jsonl"
    report.write_text(
        json.dumps({"project_id": P1, "plan_id": f"{0:032x}", "outcome": "succeeded"}) + "\n",
        encoding="utf-8",
    )
    data = HEADER + "".join(f"{P1},{n:032x},{URL1}\n" for n in range(500))
    job = load_job(job_with(tmp_path, "items.csv", data))
    plan = plan_run(job, replace(job.settings, resume=True), report)
    assert (len(plan.pending), plan.skipped) == (499, 1)
    api = CountingApi()
    journal = CountingJournal(api)

    def counted() -> Iterator[Item]:
        for item in plan.pending:
            api.pulled += 1
            yield item

    summary = await run_batch(
        counted(),
        api=api,
        sender=Sender(governor=RateGovernor(), retry=RetryPolicy(retries=6, backoff=1.0)),
        journal=journal,
        concurrency=4,
    )
    assert summary.tally.succeeded == 499
    assert journal.most_ahead <= 4
