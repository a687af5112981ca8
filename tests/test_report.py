"""The report as a journal: flushed lines, torn tails, compaction, redaction."""

from __future__ import annotations

import json
import resource
import signal
from pathlib import Path

import pytest

from batchthumb.auth import Redactor
from batchthumb.errors import LockHeldError, ReportError
from batchthumb.model import ItemResult, Outcome
from batchthumb.report import (
    FIELDS,
    Journal,
    compact,
    drop_torn_tail,
    last_records,
    read_report,
    report_lock,
    scan,
)

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
    with pytest.raises(ReportError) as info, Journal(blocker / "r.jsonl"):
        pass
    assert str(info.value) == f"{blocker / 'r.jsonl'}: cannot write the report: File exists"


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


def test_a_later_failed_line_undoes_an_earlier_success(tmp_path: Path) -> None:
    """An item whose last line failed is no longer done for --resume, and counts as failed."""
    path = tmp_path / "r.jsonl"
    with Journal(path) as journal:
        journal.record(result("a" * 32))
        journal.record(result("a" * 32, Outcome.FAILED, "bad"))
    state = read_report(path)
    assert not state.is_done((P, "a" * 32))
    assert state.has_failed((P, "a" * 32))
    assert (state.done, len(state.failed), state.lines) == (set(), 1, 2)


def test_items_whose_ids_join_alike_stay_apart(tmp_path: Path) -> None:
    """(project "ab", plan "c") and (project "a", plan "bc") are two items, not one."""
    state = read_report(tmp_path / "none.jsonl")
    state.record(("ab", "c"), Outcome.SUCCEEDED)
    assert not state.is_done(("a", "bc"))


def test_uploads_read_back_by_content_or_by_source(tmp_path: Path) -> None:
    """Upload lines come back keyed by project and sha256 or source URL; the last one wins."""
    path = tmp_path / "r.jsonl"
    with Journal(path) as journal:
        journal.record_upload(P, "sha256:" + "0f" * 32, "/v1/upload/x/202506/1.png")
        journal.record_upload(P, "source:/v1/upload/y/202506/2.png", "/v1/upload/x/202506/2.png")
        journal.record_upload(P, "sha256:" + "0f" * 32, "/v1/upload/x/202506/3.png")
    assert json.loads(path.read_text().splitlines()[0]) == {
        "kind": "upload", "project_id": P, "sha256": "0f" * 32, "img_url": "/v1/upload/x/202506/1.png",
    }  # fmt: skip
    state = read_report(path)
    assert state.uploads == {
        (P, "sha256:" + "0f" * 32): "/v1/upload/x/202506/3.png",
        (P, "source:/v1/upload/y/202506/2.png"): "/v1/upload/x/202506/2.png",
    }
    assert (state.done, state.failed, state.lines, state.torn_line) == (set(), set(), 3, None)
    compact(path)
    assert read_report(path).uploads == state.uploads
    assert len(path.read_text().splitlines()) == 2


@pytest.mark.parametrize(
    "line",
    [
        {"kind": "upload", "project_id": 1, "sha256": "ab", "img_url": "/x.png"},
        {"kind": "upload", "project_id": P, "sha256": "ab", "img_url": None},
        {"kind": "snapshot", "project_id": None, "plans": {}},
        {"kind": "snapshot", "project_id": P, "plans": []},
        {"project_id": P, "plan_id": 7, "outcome": "succeeded"},
        {"project_id": P, "plan_id": "a" * 32, "outcome": "done"},
        {"project_id": P, "plan_id": "a" * 32},
        ["not", "an", "object"],
    ],
)
def test_a_line_of_the_wrong_shape_is_damage_before_the_last_line(
    tmp_path: Path, line: object
) -> None:
    """A line that is JSON but not an upload, snapshot or item line stops the resume, by line."""
    path = tmp_path / "r.jsonl"
    with Journal(path) as journal:
        journal.record(result("a" * 32))
    with path.open("a") as f:
        f.write(json.dumps(line) + "\n")
    with Journal(path) as journal:
        journal.record(result("b" * 32))
    with pytest.raises(ReportError) as info:
        read_report(path)
    assert str(info.value) == (
        f"{path}:2: not a report line ({(json.dumps(line) + chr(10))[:60]!r}); "
        "is this the right report? Nothing was changed in it"
    )


def test_an_unfinished_last_line_is_the_torn_one(tmp_path: Path) -> None:
    """A last line cut short while being written is reported as torn, not as an error."""
    path = tmp_path / "r.jsonl"
    with Journal(path) as journal:
        journal.record(result("a" * 32))
    with path.open("a") as f:
        f.write('{"project_id": "919bb351')
    state = read_report(path)
    assert (state.torn_line, state.lines) == (2, 2)
    assert state.is_done((P, "a" * 32))


def test_damage_is_quoted_cut_short(tmp_path: Path) -> None:
    """The error for a damaged line quotes its first 60 characters, not the whole line."""
    path = tmp_path / "r.jsonl"
    path.write_text("x" * 100 + "\n" + json.dumps({"project_id": P}) + "\n")
    with pytest.raises(ReportError) as info:
        read_report(path)
    assert str(info.value) == (
        f"{path}:1: not a report line ({'x' * 60!r}); "
        "is this the right report? Nothing was changed in it"
    )


def test_a_report_that_is_not_utf8_or_not_a_file_is_a_clear_error(tmp_path: Path) -> None:
    """Binary data or a directory in the report's place is a ReportError naming the path."""
    path = tmp_path / "r.jsonl"
    path.write_bytes(b"\xff\xfe\x00garbage\n")
    with pytest.raises(ReportError) as info:
        read_report(path)
    assert str(info.value) == f"{path}: not a batchthumb report (not UTF-8 text)"
    folder = tmp_path / "dir.jsonl"
    folder.mkdir()
    with pytest.raises(ReportError) as info:
        read_report(folder)
    assert str(info.value) == f"{folder}: is a directory, not a regular file"


def test_last_records_gives_each_items_last_line_in_first_seen_order(tmp_path: Path) -> None:
    """last_records keeps one line per item, the newest, in the order items first appeared."""
    path = tmp_path / "r.jsonl"
    with Journal(path) as journal:
        journal.record(result("b" * 32, Outcome.FAILED, "first"))
        journal.record_upload(P, "sha256:ab", "/v1/upload/x/202506/1.png")
        journal.record_snapshot(P, {"b" * 32: None})
        journal.record(result("a" * 32))
        journal.record(result("b" * 32))
    last = last_records(path)
    assert list(last) == [(P, "b" * 32), (P, "a" * 32)]
    assert last[(P, "b" * 32)]["outcome"] == "succeeded"
    assert last[(P, "a" * 32)]["plan_id"] == "a" * 32
    with pytest.raises(ReportError) as info:
        last_records(tmp_path / "missing.jsonl")
    assert str(info.value) == f"{tmp_path / 'missing.jsonl'}: no such report"


def test_the_journal_appends_to_an_existing_report_in_a_new_folder(tmp_path: Path) -> None:
    """The report's folders are created; a second journal appends and never truncates."""
    path = tmp_path / "a" / "b" / "r.jsonl"
    with Journal(path) as journal:
        journal.record(result("a" * 32, error="café"))
    with Journal(path) as journal:
        journal.record(result("b" * 32))
    lines = path.read_bytes().split(b"\n")
    assert lines[2] == b""
    assert [json.loads(line)["plan_id"] for line in lines[:2]] == ["a" * 32, "b" * 32]
    assert "café".encode() in lines[0]


def test_a_report_deleted_mid_run_stops_at_the_next_check(tmp_path: Path) -> None:
    """Once the report's folder is gone, the next write at a check raises, not later."""
    folder = tmp_path / "out"
    now = [0.0]
    journal = Journal(folder / "r.jsonl", check_every=10.0, clock=lambda: now[0])
    with pytest.raises(ReportError) as info, journal:  # noqa: PT012
        journal.record(result("a" * 32))
        for child in folder.iterdir():
            child.unlink()
        folder.rmdir()
        journal.record(result("b" * 32))  # before the check is due: not noticed yet
        now[0] = 10.0
        journal.record(result("c" * 32))
        pytest.fail("the deleted report went unnoticed")
    assert str(info.value) == (
        f"{folder / 'r.jsonl'}: the report was deleted or moved (or its folder was) during the "
        "run; the outcomes since are not recorded anywhere"
    )


def test_a_report_replaced_mid_run_is_noticed_when_the_journal_closes(tmp_path: Path) -> None:
    """A report renamed away and replaced by another file is an error at close at the latest."""
    path = tmp_path / "r.jsonl"
    with pytest.raises(ReportError) as info, Journal(path) as journal:  # noqa: PT012
        journal.record(result("a" * 32))
        path.rename(tmp_path / "elsewhere.jsonl")
        path.write_text("")
    assert str(info.value) == (
        f"{path}: the report was replaced by another file during the run; "
        "the outcomes since are not recorded there"
    )


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


def test_the_first_check_is_due_a_full_interval_after_opening(tmp_path: Path) -> None:
    """The report is looked at once per interval: not on the first line, nor right after a check."""
    folder = tmp_path / "out"
    now = [0.0]
    journal = Journal(folder / "r.jsonl", check_every=10.0, clock=lambda: now[0])
    with pytest.raises(ReportError, match="deleted or moved"), journal:  # noqa: PT012
        (folder / "r.jsonl").rename(tmp_path / "moved.jsonl")
        journal.record(result("a" * 32))  # at 0: the first check is due at 10
        (tmp_path / "moved.jsonl").rename(folder / "r.jsonl")
        now[0] = 10.0
        journal.record(result("b" * 32))  # checked: in place; the next check is due at 20
        (folder / "r.jsonl").rename(tmp_path / "moved.jsonl")
        now[0] = 15.0
        journal.record(result("c" * 32))  # not due yet: not noticed
        now[0] = 20.0
        journal.record(result("d" * 32))
        pytest.fail("the moved report went unnoticed")
    lines = (tmp_path / "moved.jsonl").read_text().splitlines()
    assert [json.loads(line)["plan_id"][0] for line in lines] == [
        "a", "b", "c", "d",
    ]  # fmt: skip


def test_a_journal_used_outside_a_with_block_says_how_to_use_it(tmp_path: Path) -> None:
    """Recording into a journal that was never opened is a clear programming error."""
    with pytest.raises(AssertionError, match=r"^use Journal as a context manager$"):
        Journal(tmp_path / "r.jsonl").record(result("a" * 32))


def test_a_write_that_fails_is_a_report_error_naming_the_report(tmp_path: Path) -> None:
    """A line the file system refuses (here: over the file size limit) is a ReportError."""
    path = tmp_path / "r.jsonl"
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a signal
    try:
        with pytest.raises(ReportError) as info, Journal(path) as journal:  # noqa: PT012
            resource.setrlimit(resource.RLIMIT_FSIZE, (10, hard))
            journal.record(result("a" * 32))
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)
    assert str(info.value) == f"{path}: cannot write the report: File too large"


def test_a_source_cache_key_with_a_colon_reads_back_whole(tmp_path: Path) -> None:
    """An upload keyed by a source URL holding ":" is keyed by that whole URL."""
    path = tmp_path / "r.jsonl"
    with Journal(path) as journal:
        journal.record_upload(P, "source:https://example.com/a.png", "/v1/upload/x/202506/1.png")
    assert read_report(path).uploads == {
        (P, "source:https://example.com/a.png"): "/v1/upload/x/202506/1.png"
    }


def test_a_carriage_return_does_not_end_a_line(tmp_path: Path) -> None:
    """Lines end at a newline only: two records joined by a CR are one damaged line."""
    path = tmp_path / "r.jsonl"
    with Journal(path) as journal:
        journal.record(result("a" * 32))
        journal.record(result("b" * 32))
    path.write_text(path.read_text().replace("\n", "\r", 1))
    with pytest.raises(ReportError, match=r"r\.jsonl:1: not a report line"):
        read_report(path)


def test_a_complete_last_record_without_its_newline_is_torn(tmp_path: Path) -> None:
    """A last line that parses but lacks its newline was cut short: it does not count as done."""
    path = tmp_path / "r.jsonl"
    with Journal(path) as journal:
        journal.record(result("a" * 32))
    path.write_text(path.read_text().rstrip("\n"))
    state = read_report(path)
    assert (state.torn_line, state.done) == (1, set())


def test_a_complete_last_line_of_the_wrong_shape_is_not_torn(tmp_path: Path) -> None:
    """A whole last line that starts like an item but is not one is an error, not a torn tail."""
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps({"project_id": P}) + "\n")
    with pytest.raises(ReportError, match="is this the right report"):
        read_report(path)


def test_a_line_of_an_unknown_kind_is_not_an_item(tmp_path: Path) -> None:
    """A line with an unknown "kind" is skipped, never read as an item, even with ids and an outcome."""
    path = tmp_path / "r.jsonl"
    line = {"kind": "note", "project_id": P, "plan_id": "a" * 32, "outcome": "succeeded"}
    path.write_text(json.dumps(line) + "\n")
    state = read_report(path)
    assert (state.done, state.failed, state.lines) == (set(), set(), 1)
    assert last_records(path) == {}


def test_a_snapshot_value_that_is_not_a_url_reads_as_no_thumbnail(tmp_path: Path) -> None:
    """In a snapshot, a plan whose value is not a string had no thumbnail (None)."""
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps({"kind": "snapshot", "project_id": P, "plans": {"a": 5}}) + "\n")
    assert read_report(path).previous == {(P, "a"): None}


def test_compact_keeps_the_snapshot_of_every_project(tmp_path: Path) -> None:
    """Snapshots of two projects are two entries: compaction keeps both, drops the repeat."""
    path = tmp_path / "r.jsonl"
    q = "q" * 32
    with Journal(path) as journal:
        journal.record_snapshot(P, {"a" * 32: "/p.png"})
        journal.record_snapshot(q, {"b" * 32: "/q.png"})
        journal.record_snapshot(P, {"a" * 32: "/later.png"})
    compact(path)
    assert len(path.read_text().splitlines()) == 2
    assert read_report(path).previous == {(P, "a" * 32): "/p.png", (q, "b" * 32): "/q.png"}


def test_a_compaction_that_cannot_write_is_a_report_error_and_keeps_the_report(
    tmp_path: Path,
) -> None:
    """If the temporary file cannot be made, compaction fails clearly and the report is intact."""
    path = tmp_path / "r.jsonl"
    with Journal(path) as journal:
        journal.record(result("a" * 32, Outcome.FAILED))
        journal.record(result("a" * 32))
    before = path.read_text()
    (tmp_path / "r.jsonl.tmp").mkdir()
    with pytest.raises(ReportError) as info:
        compact(path)
    assert str(info.value) == f"{path}: cannot compact the report: Is a directory"
    assert path.read_text() == before


def test_the_lock_refuses_a_report_path_it_cannot_use(tmp_path: Path) -> None:
    """A symlink, a directory, or a path through a file as the report: each a clear error."""
    link = tmp_path / "link.jsonl"
    link.symlink_to(tmp_path / "elsewhere.jsonl")
    folder = tmp_path / "folder.jsonl"
    folder.mkdir()
    blocker = tmp_path / "file"
    blocker.write_text("")
    expected = {
        link: f"{link}: is a symbolic link; refusing to write the report through it "
        "(give the real path with --report)",
        folder: f"{folder}: not a regular file; cannot use it as the report",
        blocker / "r.jsonl": f"{blocker / 'r.jsonl'}: cannot use as the report: Not a directory",
    }
    for report, message in expected.items():
        with pytest.raises(ReportError) as info, report_lock(report):
            pass
        assert str(info.value) == message


def test_compact_keeps_only_the_newest_of_three_lines_for_an_item(tmp_path: Path) -> None:
    """An item recorded three times keeps its third line alone; the first two are dropped."""
    path = tmp_path / "r.jsonl"
    with Journal(path) as journal:
        journal.record(result("a" * 32, Outcome.FAILED, "one"))
        journal.record(result("a" * 32, Outcome.FAILED, "two"))
        journal.record(result("a" * 32))
    compact(path)
    [line] = path.read_text().splitlines()
    assert json.loads(line)["outcome"] == "succeeded"


def test_scanning_a_missing_report_says_there_is_none(tmp_path: Path) -> None:
    """scan() of a path with no report is a ReportError saying so, not an empty scan."""
    with pytest.raises(ReportError) as info:
        list(scan(tmp_path / "none.jsonl"))
    assert str(info.value) == f"{tmp_path / 'none.jsonl'}: no such report"


def test_a_journal_never_writes_through_a_symlink(tmp_path: Path) -> None:
    """A report path that is a symlink is refused with a message, and its target stays absent."""
    path = tmp_path / "r.jsonl"
    path.symlink_to(tmp_path / "target.jsonl")
    with pytest.raises(ReportError) as info, Journal(path):
        pass
    assert str(info.value).startswith(f"{path}: cannot write the report: ")
    assert len(str(info.value)) > len(f"{path}: cannot write the report: ")
    assert not (tmp_path / "target.jsonl").exists()
