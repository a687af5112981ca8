"""The report: a JSON-lines file of item outcomes, written as a journal, and read back.

Each finished item is one line, written whole and flushed before the next item counts, so a
crash loses nothing already done. Each image upload is a line too (``"kind": "upload"``),
written as soon as the upload succeeds, so a resumed run never uploads the same image twice.
The last line may be torn by a hard kill; reading tolerates that, and a resumed run compacts
the journal so each item appears once, with its last outcome. A run that ends (however it
ends, short of a kill) appends one ``"kind": "run"`` line with its start, end, request and
throttling counts, for ``batchthumb report``; every reader skips lines of a kind it does not
use, so older readers and newer kinds get along.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import stat
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, BinaryIO

from batchthumb.errors import LockHeldError, ReportError, UsageError, os_errors
from batchthumb.files import APPEND, NOFOLLOW, FileRefused, open_fd, open_new, open_regular
from batchthumb.model import ItemResult, Outcome

if sys.platform != "win32":  # the lock is flock(2): POSIX only (Linux, macOS)
    import fcntl

POSIX_ONLY = (
    "batchthumb needs a POSIX system (Linux or macOS; on Windows, WSL) for the report's lock"
)

Key = tuple[str, str]
FIELDS = (
    "project_id",
    "plan_id",
    "img_url",
    "outcome",
    "http_status",
    "error_code",
    "error",
    "attempts",
    "elapsed_ms",
    "finished_at",
    "request_id",
    "previous_img_url",
)
UPLOAD = "upload"
SNAPSHOT = "snapshot"
START = "start"  # a run (fresh or resumed) began: when, where, how many items
RUN = "run"  # a run ended (done, stopped or aborted; a killed run has none): its facts
CHECK_EVERY = 1.0  # seconds between checks that the report is still where it was opened


def key_digest(key: tuple[str, ...]) -> bytes:
    """A 16-byte stand-in for an item's key: a million of them fit in a few dozen MB."""
    return hashlib.blake2b("/".join(key).encode(), digest_size=16).digest()


@dataclass(slots=True)
class ReportState:
    """What a report says was done: the last outcome of every item, uploads, the snapshot.

    Items are held as :func:`key_digest` values, not as their ids, so resuming a run of a
    million plans does not need the memory of a million pairs of strings.
    """

    done: set[bytes] = field(default_factory=set)  # last outcome succeeded or skipped
    failed: set[bytes] = field(default_factory=set)  # last outcome failed
    uploads: dict[Key, str] = field(default_factory=dict)  # (project_id, cache key) -> img_url
    # Thumbnails before the first run changed anything: (project_id, plan_id) -> img_url.
    previous: dict[Key, str | None] = field(default_factory=dict)
    snapshotted: set[str] = field(default_factory=set)  # projects with a snapshot line
    lines: int = 0
    torn_line: int | None = None  # a last line cut short by a crash, ignored

    def is_done(self, key: Key) -> bool:
        """Whether the item needs no more work."""
        return key_digest(key) in self.done

    def has_failed(self, key: Key) -> bool:
        """Whether the item's last attempt failed."""
        return key_digest(key) in self.failed

    def record(self, key: Key, outcome: Outcome) -> None:
        """Take one item line; a later line for the same item replaces what an earlier said."""
        digest = key_digest(key)
        if outcome is Outcome.FAILED:
            self.done.discard(digest)
            self.failed.add(digest)
        else:
            self.failed.discard(digest)
            self.done.add(digest)


def open_report(path: Path) -> BinaryIO:
    """The report opened for reading in binary; a FIFO, device or directory is refused."""
    try:
        return open_regular(path)
    except FileRefused as exc:
        raise ReportError(f"{path}: {exc.reason}") from None


def _records(path: Path) -> Iterator[tuple[int, dict[str, Any] | None, str]]:
    """(line number, record or None if unparseable, raw line) for every line of a report."""
    binary = open_report(path)
    try:
        with io.TextIOWrapper(binary, encoding="utf-8", newline="\n") as f:
            for number, raw in enumerate(f, 1):
                try:
                    record = json.loads(raw) if raw.endswith("\n") else None
                except ValueError:
                    record = None
                yield number, record if isinstance(record, dict) else None, raw
    except UnicodeDecodeError:
        raise ReportError(f"{path}: not a batchthumb report (not UTF-8 text)") from None
    except OSError as exc:  # not os_errors: a generator cannot be wrapped from outside
        raise ReportError(f"{path}: cannot read: {exc.strerror}") from exc


# How every line batchthumb writes begins: an item, or an upload or snapshot.
_LINE_STARTS = ('{"project_id": ', '{"kind": ')


def _torn(raw: str) -> bool:
    """Whether a line can be one this tool was writing when it was killed.

    Every line it writes starts like one of ``_LINE_STARTS`` and is written whole with its
    newline, so a torn one lacks the newline and begins (or is the beginning of) a start.
    """
    return not raw.endswith("\n") and any(
        raw.startswith(start) or start.startswith(raw) for start in _LINE_STARTS
    )


def read_report(path: Path) -> ReportState:
    """Read a report back for ``--resume``; a missing report means nothing was done yet."""
    state = ReportState()
    if not path.exists():
        return state
    bad: tuple[int, str] | None = None
    for number, record, raw in _records(path):
        if bad is not None:
            # Only the very last line can be torn by a crash; damage before it is not ours.
            raise ReportError(
                f"{path}:{bad[0]}: not a report line ({bad[1][:60]!r}); fix or remove it"
            )
        state.lines = number
        upload = _upload(record)
        if upload is not None:
            state.uploads[upload[0]] = upload[1]
            continue
        if _snapshot(record, state) or _other_kind(record):
            continue
        key = _key(record)
        outcome = _outcome(record)
        if key is None or outcome is None:
            if not _torn(raw):
                raise ReportError(
                    f"{path}:{number}: not a report line ({raw[:60]!r}); "
                    "is this the right report? Nothing was changed in it"
                )
            bad = (number, raw)
            continue
        state.record(key, outcome)
    if bad is not None:
        state.torn_line = bad[0]
    return state


def last_records(path: Path) -> dict[Key, dict[str, Any]]:
    """The last line of every item a report records, in first-seen order (uploads left out)."""
    if not path.exists():
        raise ReportError(f"{path}: no such report")
    last: dict[Key, dict[str, Any]] = {}
    for _, record, _raw in _records(path):
        key = _key(record)
        if key is not None and record is not None:
            last[key] = record
    return last


def report_lines(path: Path) -> Iterator[dict[str, Any]]:
    """Every well-formed line of a report, in order (a torn last line left out)."""
    for _, record, _raw in _records(path):
        if record is not None:
            yield record


def read_uploads(path: Path) -> dict[Key, str]:
    """(project_id, cache key) -> img_url of every upload a report journals; {} without one."""
    if not path.is_file():
        return {}
    uploads: dict[Key, str] = {}
    for _, record in scan(path):
        upload = _upload(record)
        if upload is not None:
            uploads[upload[0]] = upload[1]
    return uploads


def _upload(record: dict[str, Any] | None) -> tuple[Key, str] | None:
    """((project_id, cache key), img_url) of an upload line; None for any other line."""
    if record is None or record.get("kind") != UPLOAD:
        return None
    project, img_url = record.get("project_id"), record.get("img_url")
    cache_key = (
        f"sha256:{record['sha256']}" if "sha256" in record else f"source:{record.get('source')}"
    )
    if isinstance(project, str) and isinstance(img_url, str):
        return (project, cache_key), img_url
    return None


def _snapshot(record: dict[str, Any] | None, state: ReportState) -> bool:
    """Take a snapshot line into ``state`` (the earliest one of a project wins)."""
    if record is None or record.get("kind") != SNAPSHOT:
        return False
    project, plans = record.get("project_id"), record.get("plans")
    if not isinstance(project, str) or not isinstance(plans, dict):
        return False
    if project not in state.snapshotted:
        state.snapshotted.add(project)
        for plan_id, img_url in plans.items():
            state.previous[(project, plan_id)] = img_url if isinstance(img_url, str) else None
    return True


def _other_kind(record: dict[str, Any] | None) -> bool:
    """A line of a kind resume does not use (a run line, or a kind of a newer version)."""
    kind = None if record is None else record.get("kind")
    return isinstance(kind, str) and kind not in (UPLOAD, SNAPSHOT)


def scan(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, record) of every whole JSON-object line of a report, streamed.

    Lines that are not (a torn last line, damage) are left out; :func:`read_report` is the
    reader that insists on them.
    """
    if not path.exists():
        raise ReportError(f"{path}: no such report")
    for number, record, _ in _records(path):
        if record is not None:
            yield number, record


def _outcome(record: dict[str, Any] | None) -> Outcome | None:
    value = None if record is None else record.get("outcome")
    try:
        return Outcome(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _key(record: dict[str, Any] | None) -> Key | None:
    if record is None or "kind" in record:
        return None
    project, plan = record.get("project_id"), record.get("plan_id")
    if isinstance(project, str) and isinstance(plan, str):
        return (project, plan)
    return None


class Journal:
    """The report's writer: appends each outcome, upload and snapshot as one flushed line.

    "Report" is the file users read; "journal" names only this way of writing it (append,
    flush, before the next item counts), which is what makes a run resumable.
    """

    def __init__(
        self,
        path: Path,
        *,
        redact: Callable[[str], str] = str,
        check_every: float = CHECK_EVERY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self._redact = redact
        self._file: IO[str] | None = None
        self._identity = (0, 0)
        self._check_every = check_every
        self._clock = clock
        self._next_check = 0.0

    def __enter__(self) -> Journal:
        with os_errors(self.path, "write the report"):
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = open_fd(self.path, APPEND)
        except FileRefused as exc:
            raise ReportError(f"{self.path}: cannot write the report: {exc.reason}") from None
        info = os.fstat(fd)
        self._identity = (info.st_dev, info.st_ino)
        self._file = os.fdopen(fd, "a", encoding="utf-8", newline="\n")
        self._next_check = self._clock() + self._check_every
        return self

    def __exit__(self, exc_type: object, *exc_info: object) -> None:
        if self._file is None:
            return
        file, self._file = self._file, None
        try:
            file.flush()
            os.fsync(file.fileno())
            if exc_type is None:
                self._check_in_place()
        except OSError as exc:
            if exc_type is None:  # otherwise the error already on its way says it first
                raise ReportError(f"{self.path}: cannot write the report: {exc.strerror}") from None
        finally:
            with contextlib.suppress(OSError):  # the same failed flush again: already reported
                file.close()

    def _check_in_place(self) -> None:
        """Raise if the report was deleted, renamed or replaced since it was opened.

        Lines written to a file no longer at the path are lost to ``--resume`` and ``undo``.
        """
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            raise ReportError(
                f"{self.path}: the report was deleted or moved (or its folder was) during the run; "
                "the outcomes since are not recorded anywhere"
            ) from None
        if (info.st_dev, info.st_ino) != self._identity:
            raise ReportError(
                f"{self.path}: the report was replaced by another file during the run; "
                "the outcomes since are not recorded there"
            )

    def record(self, result: ItemResult) -> None:
        """Append one result; it is on disk (as far as a crash of this process goes) on return."""
        self._write(_as_record(result))

    def _write(self, record: dict[str, Any]) -> None:
        assert self._file is not None, "use Journal as a context manager"
        line = _ENCODE(record)
        with os_errors(self.path, "write the report"):
            # One write per line: a kill mid-run tears at most the line being written.
            self._file.write(self._redact(line) + "\n")
            self._file.flush()
            # A stat a second, not per line: the hot path stays one write and one flush.
            now = self._clock()
            if now >= self._next_check:
                self._next_check = now + self._check_every
                self._check_in_place()

    def record_snapshot(self, project_id: str, plans: dict[str, str | None]) -> None:
        """Append the thumbnails of a project's plans before anything is changed.

        A run killed after a PUT was applied but before its line was written still knows,
        when resumed, what that plan showed before: undo depends on it.
        """
        self._write({"kind": SNAPSHOT, "project_id": project_id, "plans": plans})

    def record_start(self, **fields: object) -> None:
        """Append the line that starts a run: its time and the fields given (endpoint...)."""
        started = datetime.now(UTC).isoformat(timespec="seconds")
        self._write({"kind": START, "started_at": started, **fields})

    def record_run(self, facts: dict[str, Any]) -> None:
        """Append what a run as a whole did: start and end, requests, throttling, the end's why.

        Written as the run ends: a report whose last start line has no run line after it
        was killed (:func:`batchthumb.history.changed_anything`).
        """
        self._write({"kind": RUN, **facts})

    def record_upload(self, project_id: str, cache_key: str, img_url: str) -> None:
        """Append one upload: ``cache_key`` is ``sha256:HEX`` or ``source:IMG_URL``."""
        kind, _, value = cache_key.partition(":")
        self._write({"kind": UPLOAD, "project_id": project_id, kind: value, "img_url": img_url})


# Not mutated: it runs once, at import, before mutmut switches a mutant on (tests/MUTANTS.md).
def _encoder() -> Callable[[object], str]:  # pragma: no mutate block
    """``json.JSONEncoder(ensure_ascii=False).encode``, minus its per-call set-up.

    json.dumps with any option builds a new encoder per call, and even a kept encoder builds
    its C scanner anew for every line; this one is built once (records are never circular).
    """
    encoder = json.JSONEncoder(ensure_ascii=False)
    make = json.encoder.c_make_encoder  # type: ignore[attr-defined]
    if make is None:  # a Python without the C accelerator
        return encoder.encode
    chunks = make(
        None,
        encoder.default,
        json.encoder.encode_basestring,
        None,
        encoder.key_separator,
        encoder.item_separator,
        False,
        False,
        True,
    )
    return lambda record: "".join(chunks(record, 0))


_ENCODE = _encoder()


def _as_record(result: ItemResult) -> dict[str, Any]:
    # Built by hand: dataclasses.asdict deep-copies every field and cost a third of the
    # client's CPU per item in the benchmark's profile.
    # In the order of FIELDS, spelled out: a loop of getattr calls cost more than the line.
    record: dict[str, Any] = {
        "project_id": result.project_id,
        "plan_id": result.plan_id,
        "img_url": result.img_url,
        "outcome": result.outcome.value,
        "http_status": result.http_status,
        "error_code": result.error_code,
        "error": result.error,
        "attempts": result.attempts,
        "elapsed_ms": result.elapsed_ms,
        "finished_at": result.finished_at,
    }
    if result.request_id is not None:
        record["request_id"] = result.request_id
    # Absent: the previous thumbnail is unknown; null: the plan had none.
    if result.previous_known:
        record["previous_img_url"] = result.previous_img_url
    return record


def drop_torn_tail(path: Path, state: ReportState) -> None:
    """Cut a torn last line off, so that appended lines start on a line of their own."""
    if state.torn_line is None:
        return
    with path.open("rb+") as f:
        keep = sum(len(line) for _, line in zip(range(state.torn_line - 1), f, strict=False))
        f.truncate(keep)


def compact(path: Path) -> None:
    """Rewrite the report so each item and upload appears once, with its last line.

    Snapshot lines are kept as first written: they are the state before any change. Only
    entries that appear more than once cost memory beyond one set of 16-byte digests, and a
    report without repeats is left as it is. Written to a temporary file and renamed over the
    report, so a crash here loses nothing.
    """
    seen: set[bytes] = set()
    repeated: set[bytes] = set()
    for _, record, _ in _records(path):
        entry = _entry(record)
        if entry is not None:
            (repeated if entry in seen else seen).add(entry)
    del seen
    if not repeated:
        return
    kept: dict[bytes, int] = {}
    drop: set[int] = set()
    for number, record, _ in _records(path):
        entry = _entry(record)
        if record is None or entry is None or entry not in repeated:
            continue
        if entry not in kept:
            kept[entry] = number
        elif record.get("kind") == SNAPSHOT:
            drop.add(number)  # the earliest snapshot counts
        else:
            drop.add(kept[entry])
            kept[entry] = number
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open_regular(path) as lines, open_new(tmp) as f:
            f.writelines(line for number, line in enumerate(lines, 1) if number not in drop)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except (OSError, FileRefused) as exc:
        reason = exc.reason if isinstance(exc, FileRefused) else exc.strerror
        raise ReportError(f"{path}: cannot compact the report: {reason}") from None


def _entry(record: dict[str, Any] | None) -> bytes | None:
    """What a line is about (an item, an upload, a project's snapshot), as a digest."""
    if record is None:
        return None
    if record.get("kind") == SNAPSHOT:
        return key_digest((SNAPSHOT, str(record.get("project_id"))))
    upload = _upload(record)
    if upload is not None:
        return key_digest((UPLOAD, *upload[0]))
    key = _key(record)
    return None if key is None else key_digest(key)


def _refuse_link(report: Path) -> None:
    """Refuse a report path that is a symlink (dangling or not) or not a regular file."""
    try:
        mode = os.lstat(report).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise ReportError(f"{report}: cannot use as the report: {exc.strerror}") from None
    if stat.S_ISLNK(mode):
        raise ReportError(
            f"{report}: is a symbolic link; refusing to write the report through it "
            "(give the real path with --report)"
        )
    if not stat.S_ISREG(mode):
        raise ReportError(f"{report}: not a regular file; cannot use it as the report")


@contextmanager
def report_lock(
    report: Path, *, wait: float = 0.0, on_wait: Callable[[str], None] = lambda message: None
) -> Iterator[Path]:
    """Hold an exclusive lock beside the report for as long as a run uses it.

    flock locks die with the process, so a run killed with -9 never leaves a stale lock behind.
    With ``wait`` > 0, poll for up to that many seconds before giving up, telling ``on_wait``
    once that it waits.
    """
    if sys.platform == "win32":
        raise UsageError(POSIX_ONLY)
    path = report.with_name(report.name + ".lock")
    _refuse_link(report)
    with os_errors(path, "create the lock file"):
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # Never through a symlink: in a shared folder it could point at another file of ours,
        # which the pid written below would overwrite. A hard link would do the same.
        fd = open_fd(path, os.O_RDWR | os.O_CREAT | NOFOLLOW)
    except FileRefused as exc:
        raise ReportError(f"{path}: cannot use as the lock file: {exc.reason}") from None
    if os.fstat(fd).st_nlink != 1:
        os.close(fd)
        raise ReportError(f"{path}: cannot use as the lock file: it has other hard links")
    try:
        deadline = time.monotonic() + wait
        waiting = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another run"
                    raise LockHeldError(
                        f"{report} is in use by {holder}; wait for it to finish, or pass "
                        "--lock-wait SECONDS to wait for it"
                    ) from None
                if not waiting:
                    waiting = True
                    on_wait(f"{report} is in use; waiting up to {wait:g} s for it (--lock-wait)")
                time.sleep(min(0.2, max(deadline - time.monotonic(), 0.0)))
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}".encode(), 0)
        yield path
    finally:
        os.close(fd)  # closing the descriptor releases the lock
