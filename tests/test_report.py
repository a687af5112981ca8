"""The report as a journal: flushed lines, torn tails, compaction, redaction."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from batchthumb.auth import Redactor
from batchthumb.errors import LockHeldError, ReportError
from batchthumb.model import ItemResult, Outcome
from batchthumb.report import FIELDS, Journal, compact, drop_torn_tail, read_report, report_lock

P = "919bb351ef424e2daaf3dd80c179fae9"


def result(plan: str, outcome: Outcome = Outcome.SUCCEEDED, error: str | None = None) -> ItemResult:
    return ItemResult(
        project_id=P,
        plan_id=plan,
        img_url=f"/v1/upload/{P}/202506/1.png",
        outcome=outcome,
        http_status=200 if outcome is Outcome.SUCCEEDED else 400,
        error_code=None if outcome is Outcome.SUCCEEDED else "PM.02175006",
        error=error,
        attempts=1,
        elapsed_ms=5,
        finished_at="2026-11-30T00:00:00.000+00:00",
        request_id="abc",
    )


def test_each_record_is_on_disk_before_the_next(tmp_path: Path) -> None:
    """A recorded line can be read back by another reader before the journal is closed."""
    path = tmp_path / "r.jsonl"
    with Journal(path) as journal:
        journal.record(result("a" * 32))
        assert json.loads(path.read_text())["plan_id"] == "a" * 32
        journal.record(result("b" * 32, Outcome.FAILED, "bad"))
        assert len(path.read_text().splitlines()) == 2


def test_report_lines_carry_every_documented_field(tmp_path: Path) -> None:
    """Each line holds the ids, url, outcome, status, error, attempts, timing and request id."""
    path = tmp_path / "r.jsonl"
    with Journal(path) as journal:
        journal.record(result("a" * 32, Outcome.FAILED, "nope"))
    record = json.loads(path.read_text())
    assert set(record) == {
        "project_id", "plan_id", "img_url", "outcome", "http_status", "error_code",
        "error", "attempts", "elapsed_ms", "finished_at", "request_id",
    }  # fmt: skip
    assert record["outcome"] == "failed"
    assert record["error_code"] == "PM.02175006"


def test_reading_back_keeps_the_last_outcome_per_item(tmp_path: Path) -> None:
    """A failed item that later succeeded counts as succeeded."""
    path = tmp_path / "r.jsonl"
    with Journal(path) as journal:
        journal.record(result("a" * 32, Outcome.FAILED))
        journal.record(result("b" * 32, Outcome.FAILED))
        journal.record(result("a" * 32))
    state = read_report(path)
    assert state.is_done((P, "a" * 32))
    assert not state.has_failed((P, "a" * 32))
    assert state.has_failed((P, "b" * 32))
    assert not state.is_done((P, "b" * 32))


def test_a_later_failure_undoes_an_earlier_success(tmp_path: Path) -> None:
    """An item that succeeded and then failed is not done: --resume sends it again."""
    path = tmp_path / "r.jsonl"
    with Journal(path) as journal:
        journal.record(result("a" * 32))
        journal.record(result("a" * 32, Outcome.FAILED))
    state = read_report(path)
    assert not state.is_done((P, "a" * 32))
    assert state.has_failed((P, "a" * 32))


def test_a_torn_last_line_is_ignored_and_cut_off(tmp_path: Path) -> None:
    """A line cut short by a kill is ignored when reading and removed before appending."""
    path = tmp_path / "r.jsonl"
    with Journal(path) as journal:
        journal.record(result("a" * 32))
    with path.open("a") as f:
        f.write('{"project_id": "919bb351ef424e2daaf3dd80c179fae9", "plan_id": "bbb')
    state = read_report(path)
    assert state.torn_line == 2
    assert state.is_done((P, "a" * 32))
    assert len(state.done) == 1
    drop_torn_tail(path, state)
    with Journal(path) as journal:
        journal.record(result("c" * 32))
    assert [json.loads(line)["plan_id"][0] for line in path.read_text().splitlines()] == ["a", "c"]


def test_damage_before_the_last_line_is_an_error_naming_the_line(tmp_path: Path) -> None:
    """Only the last line can be torn by a crash; garbage in the middle stops the resume."""
    path = tmp_path / "r.jsonl"
    with Journal(path) as journal:
        journal.record(result("a" * 32))
    with path.open("a") as f:
        f.write("garbage\n")
    with Journal(path) as journal:
        journal.record(result("c" * 32))
    with pytest.raises(ReportError, match=r"r\.jsonl:2: not a report line"):
        read_report(path)


def test_a_missing_report_means_nothing_done(tmp_path: Path) -> None:
    """Resuming with no report yet starts from scratch."""
    state = read_report(tmp_path / "none.jsonl")
    assert state.done == state.failed == set()
    assert state.lines == 0


def test_compact_keeps_one_line_per_item_with_its_last_outcome(tmp_path: Path) -> None:
    """After compaction each item appears once, with its newest record."""
    path = tmp_path / "r.jsonl"
    with Journal(path) as journal:
        journal.record(result("a" * 32, Outcome.FAILED))
        journal.record(result("b" * 32))
        journal.record(result("a" * 32))
    compact(path)
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert sorted((r["plan_id"][0], r["outcome"]) for r in records) == [
        ("a", "succeeded"),
        ("b", "succeeded"),
    ]


def test_secrets_are_masked_in_every_line(tmp_path: Path) -> None:
    """A secret echoed in an error message never reaches the report."""
    path = tmp_path / "r.jsonl"
    with Journal(path, redact=Redactor(["s3cr3t-token-value"])) as journal:
        journal.record(result("a" * 32, Outcome.FAILED, "token s3cr3t-token-value is invalid"))
    text = path.read_text()
    assert "s3cr3t" not in text
    assert "token *** is invalid" in text


def test_an_unwritable_report_is_a_clear_error(tmp_path: Path) -> None:
    """A report in a directory that cannot be created is a ReportError, not an OSError."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ReportError, match="cannot write the report"), Journal(blocker / "r.jsonl"):
        pass


def test_a_second_holder_of_the_report_lock_is_refused(tmp_path: Path) -> None:
    """While one run holds the report's lock, another gets LockHeldError (exit 75)."""
    report = tmp_path / "r.jsonl"
    with report_lock(report):
        with pytest.raises(LockHeldError, match="in use by pid") as info, report_lock(report):
            pass
        assert info.value.exit_code == 75


def test_the_lock_is_free_again_once_released(tmp_path: Path) -> None:
    """A finished run leaves no lock behind (the lock file may stay; it is not the lock)."""
    report = tmp_path / "r.jsonl"
    with report_lock(report):
        pass
    with report_lock(report) as path:
        assert path == tmp_path / "r.jsonl.lock"


def test_the_earliest_snapshot_of_a_project_is_the_previous_state(tmp_path: Path) -> None:
    """A resumed run's later snapshot never replaces what the plans showed before any change."""
    path = tmp_path / "r.jsonl"
    with Journal(path) as journal:
        journal.record_snapshot(P, {"a" * 32: "/old.png", "b" * 32: None})
        journal.record(result("a" * 32))
        journal.record_snapshot(P, {"a" * 32: "/new.png", "b" * 32: None})
    state = read_report(path)
    assert state.previous == {(P, "a" * 32): "/old.png", (P, "b" * 32): None}
    assert state.snapshotted == {P}
    assert state.is_done((P, "a" * 32))
    assert len(state.done) == 1


def test_compact_keeps_the_first_snapshot_line(tmp_path: Path) -> None:
    """Compaction drops repeated item lines but keeps the state before the first change."""
    path = tmp_path / "r.jsonl"
    with Journal(path) as journal:
        journal.record_snapshot(P, {"a" * 32: "/old.png"})
        journal.record(result("a" * 32, Outcome.FAILED))
        journal.record_snapshot(P, {"a" * 32: "/new.png"})
        journal.record(result("a" * 32))
    compact(path)
    assert read_report(path).previous == {(P, "a" * 32): "/old.png"}
    assert len(path.read_text().splitlines()) == 2


def test_compact_leaves_a_report_without_repeats_untouched(tmp_path: Path) -> None:
    """Nothing to merge, nothing rewritten: the file is the same inode afterwards."""
    path = tmp_path / "r.jsonl"
    with Journal(path) as journal:
        journal.record(result("a" * 32))
        journal.record(result("b" * 32))
    before = path.stat().st_ino
    compact(path)
    assert path.stat().st_ino == before


def test_a_full_line_lists_its_fields_in_the_documented_order(tmp_path: Path) -> None:
    """A line with every field present has exactly FIELDS as its keys, in that order."""
    result = ItemResult(
        project_id="p",
        plan_id="a",
        img_url="/x.png",
        outcome=Outcome.SUCCEEDED,
        http_status=200,
        error_code=None,
        error=None,
        attempts=1,
        elapsed_ms=3,
        finished_at="2026-01-01T00:00:00.000+00:00",
        request_id="r1",
        previous_img_url=None,
        previous_known=True,
    )
    path = tmp_path / "r.jsonl"
    with Journal(path) as journal:
        journal.record(result)
    assert tuple(json.loads(path.read_text())) == FIELDS


def test_a_report_deleted_mid_run_stops_at_the_next_check(tmp_path: Path) -> None:
    """Once the report's folder is gone, the next write at a check raises, not later."""
    folder = tmp_path / "out"
    now = [0.0]
    journal = Journal(folder / "r.jsonl", check_every=10.0, clock=lambda: now[0])
    with pytest.raises(ReportError, match="the report was deleted or moved"), journal:  # noqa: PT012
        journal.record(result("a" * 32))
        for child in folder.iterdir():
            child.unlink()
        folder.rmdir()
        journal.record(result("b" * 32))  # before the check is due: not noticed yet
        now[0] = 10.0
        journal.record(result("c" * 32))
        pytest.fail("the deleted report went unnoticed")


def test_a_report_replaced_mid_run_is_noticed_when_the_journal_closes(tmp_path: Path) -> None:
    """A report renamed away and replaced by another file is an error at close at the latest."""
    path = tmp_path / "r.jsonl"
    with pytest.raises(ReportError, match="replaced by another file"), Journal(path) as journal:  # noqa: PT012
        journal.record(result("a" * 32))
        path.rename(tmp_path / "elsewhere.jsonl")
        path.write_text("")


def test_a_one_line_file_that_is_not_a_report_is_refused_and_left_alone(
    tmp_path: Path,
) -> None:
    """A full line that is not a report line is not taken for a torn one (and cut off)."""
    for text in ("ssh-ed25519 AAAA key\n", '{"a": 1}\n', "no newline at the end"):
        path = tmp_path / "notes.txt"
        path.write_text(text)
        with pytest.raises(ReportError, match=r"notes\.txt:1: not a report line"):
            read_report(path)
        assert path.read_text() == text
