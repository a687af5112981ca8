"""The report's history on real files: what is kept on rotation, and what undo reads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from batchthumb.history import last_changes, remembered_uploads, rotate
from tests.conftest import P1, img_url, plan_id

# A run starts with a start line and, unless killed, ends with a run line (its facts).
RUN = {"kind": "start", "started_at": "2026-12-01T02:15:00+00:00", "endpoint": "http://h:1"}
END = {"kind": "run", "succeeded": 0, "failed": 0, "skipped": 1}


def item(n: int, outcome: str, previous: str | None = None) -> dict[str, Any]:
    return {
        "project_id": P1, "plan_id": plan_id(n), "img_url": img_url(n), "outcome": outcome,
        "previous_img_url": previous,
    }  # fmt: skip


def write(path: Path, *records: dict[str, Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_a_finished_report_that_changed_nothing_is_replaced_not_kept(tmp_path: Path) -> None:
    """Skipped and failed items only, and an end line: removed, so REPORT.1 stays the change."""
    report = tmp_path / "r.jsonl"
    write(tmp_path / "r.jsonl.1", RUN, item(0, "succeeded"), END)
    write(report, RUN, item(0, "skipped"), item(1, "failed"), END)
    rotate(report, keep=3)
    assert names(tmp_path) == ["r.jsonl.1"]
    assert last_changes(report)[(P1, plan_id(0))].report == tmp_path / "r.jsonl.1"


def test_a_killed_run_is_kept_even_with_nothing_recorded_as_succeeded(tmp_path: Path) -> None:
    """A start line with no run line after it (kill -9): a PUT may have been applied unrecorded,
    so the report is kept."""
    report = write(tmp_path / "r.jsonl", RUN, {"kind": "snapshot", "project_id": P1, "plans": {}})
    rotate(report, keep=3)
    assert names(tmp_path) == ["r.jsonl.1"]


def test_changing_reports_shift_up_and_those_beyond_keep_are_removed(tmp_path: Path) -> None:
    """REPORT -> .1 -> .2; with keep 2 the old .2 and a stray .3 go."""
    report = write(tmp_path / "r.jsonl", RUN, item(0, "succeeded"), END)
    for number in (1, 2, 3):
        write(tmp_path / f"r.jsonl.{number}", RUN, item(number, "succeeded"), END)
    rotate(report, keep=2)
    assert names(tmp_path) == ["r.jsonl.1", "r.jsonl.2"]
    assert json.loads((tmp_path / "r.jsonl.2").read_text().splitlines()[1])["plan_id"] == (
        plan_id(1)
    )


def test_undo_takes_each_plans_newest_change_and_uploads_the_newest_url(tmp_path: Path) -> None:
    """Plan 0 changed in both reports: the newer wins; plan 1 only in the older one."""
    report = write(
        tmp_path / "r.jsonl",
        RUN,
        {"kind": "upload", "project_id": P1, "sha256": "ab", "img_url": img_url(9)},
        item(0, "succeeded", previous=img_url(50)),
        item(1, "skipped"),
        END,
    )
    write(
        tmp_path / "r.jsonl.1",
        RUN,
        {"kind": "upload", "project_id": P1, "sha256": "ab", "img_url": img_url(8)},
        {"kind": "upload", "project_id": P1, "sha256": "cd", "img_url": img_url(7)},
        item(0, "succeeded", previous=img_url(40)),
        item(1, "succeeded", previous=img_url(41)),
        END,
    )
    changes = last_changes(report)
    assert changes[(P1, plan_id(0))].record["previous_img_url"] == img_url(50)
    assert changes[(P1, plan_id(1))].record["previous_img_url"] == img_url(41)
    assert remembered_uploads(report) == {
        (P1, "sha256:ab"): img_url(9),
        (P1, "sha256:cd"): img_url(7),
    }
