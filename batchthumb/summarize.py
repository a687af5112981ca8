"""Reading reports back for people: every plan's last line, and what the lines add up to.

Reports are streamed, never loaded whole, and nothing is kept per line: a resumed run killed
before compacting can list a plan twice (the later line wins), and those repeats are found
with a Bloom filter of about one bit per byte of report over eight.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batchthumb.errors import ReportError
from batchthumb.model import ItemResult, Outcome, failure_label
from batchthumb.report import RUN, open_report, scan

# Outcomes in the order people want to see them: what needs attention first.
ORDER = (Outcome.FAILED, Outcome.SUCCEEDED, Outcome.SKIPPED)
EXAMPLES = 20  # changes kept as examples for the text and JSON summaries


@dataclass(frozen=True, slots=True)
class PlanLine:
    """One plan's last line in a report, as a result value."""

    report: Path
    line: int
    result: ItemResult

    @property
    def changed(self) -> bool:
        """Whether the run replaced a known, different thumbnail (or set a first one)."""
        r = self.result
        return (
            r.outcome is Outcome.SUCCEEDED and r.previous_known and r.previous_img_url != r.img_url
        )


def result_of(record: dict[str, Any]) -> ItemResult | None:
    """The item result an item line records, or None for any other or malformed line."""
    if "kind" in record:
        return None
    try:
        project, plan, outcome = record["project_id"], record["plan_id"], record["outcome"]
        if not isinstance(project, str) or not isinstance(plan, str):
            return None
        return ItemResult(
            project_id=project,
            plan_id=plan,
            img_url=_text(record.get("img_url")),
            outcome=Outcome(outcome),
            http_status=_number(record.get("http_status")),
            error_code=_text(record.get("error_code")),
            error=_text(record.get("error")),
            attempts=_number(record.get("attempts")) or 0,
            elapsed_ms=_number(record.get("elapsed_ms")) or 0,
            finished_at=_text(record.get("finished_at")) or "",
            request_id=_text(record.get("request_id")),
            previous_img_url=_text(record.get("previous_img_url")),
            previous_known="previous_img_url" in record,
        )
    except (KeyError, ValueError, TypeError):
        return None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _number(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class ReportFile:
    """One report, read as each plan's last line; :meth:`plans` may be called many times."""

    def __init__(self, path: Path) -> None:
        if not path.exists():
            raise ReportError(f"{path}: no such report")
        self.path = path
        self._superseded = _superseded(path)

    @property
    def repeats(self) -> int:
        """How many plans the report lists more than once (only the last line counts)."""
        return len(self._superseded)

    def plans(
        self, outcome: Outcome | None = None, *, runs: list[dict[str, Any]] | None = None
    ) -> Iterator[PlanLine]:
        """Each plan's last line, in report order; only those with ``outcome`` if given.

        With ``runs``, the run lines met on the way are appended to it.
        """
        last = self._superseded
        for number, record in scan(self.path):
            if runs is not None and record.get("kind") == RUN:
                runs.append(record)
            result = result_of(record)
            if result is None or (outcome is not None and result.outcome is not outcome):
                continue
            if last and last.get(_hash(result), number) != number:
                continue  # a later line of this report says what happened to this plan
            yield PlanLine(self.path, number, result)


# How the journal writes an item line's start; other spellings are parsed as JSON instead.
_KEY = re.compile(rb'\{"project_id": "([^"\\]*)", "plan_id": "([^"\\]*)"')


def _keys(path: Path) -> Iterator[tuple[int, int]]:
    """(line number, 64-bit hash of the plan's key) of every item line, parsed cheaply."""
    try:
        with open_report(path) as f:
            for number, raw in enumerate(f, 1):
                match = _KEY.match(raw)
                if match is not None:
                    yield number, hash(match.group(1, 2))
                elif b'"kind"' not in raw:
                    try:
                        record = json.loads(raw)
                    except ValueError:
                        continue
                    if isinstance(record, dict) and "kind" not in record:
                        project, plan = record.get("project_id"), record.get("plan_id")
                        if isinstance(project, str) and isinstance(plan, str):
                            yield number, hash((project.encode(), plan.encode()))
    except OSError as exc:  # not os_errors: a generator cannot be wrapped from outside
        raise ReportError(f"{path}: cannot read: {exc.strerror}") from exc


def _superseded(path: Path) -> dict[int, int]:
    """hash(key) -> line number of its last line, for the plans listed more than once.

    Two cheap passes in bounded memory instead of a set of every key: a Bloom filter of
    about one bit per byte of report over eight finds the keys that may repeat (a few
    false alarms among a million), and the second pass counts only those exactly.
    """
    size = path.stat().st_size
    bits = min(max(size // 8, 1 << 20), 1 << 28) & ~7
    seen = bytearray(bits // 8)
    maybe: set[int] = set()
    for _, digest in _keys(path):
        a, b = digest % bits, (digest >> 32) % bits
        if seen[a >> 3] & (1 << (a & 7)) and seen[b >> 3] & (1 << (b & 7)):
            maybe.add(digest)
        seen[a >> 3] |= 1 << (a & 7)
        seen[b >> 3] |= 1 << (b & 7)
    del seen
    if not maybe:
        return {}
    count: dict[int, int] = {}
    last: dict[int, int] = {}
    for number, digest in _keys(path):
        if digest in maybe:
            count[digest] = count.get(digest, 0) + 1
            last[digest] = number
    return {digest: number for digest, number in last.items() if count[digest] > 1}


def _hash(result: ItemResult) -> int:
    """The hash :func:`_keys` gives the same plan."""
    return hash((result.project_id.encode(), result.plan_id.encode()))


class Durations:
    """Elapsed times in buckets 5% wide: percentiles in bounded memory, to within 5%."""

    STEP = math.log(1.05)

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.total = 0
        self.count = 0
        self.highest = 0

    def add(self, ms: int) -> None:
        """Count one item's elapsed milliseconds."""
        bucket = int(math.log1p(max(ms, 0)) / self.STEP)
        self.counts[bucket] = self.counts.get(bucket, 0) + 1
        self.total += ms
        self.count += 1
        self.highest = max(self.highest, ms)

    def merge(self, other: Durations) -> None:
        """Add another set of durations to this one."""
        for bucket, count in other.counts.items():
            self.counts[bucket] = self.counts.get(bucket, 0) + count
        self.total += other.total
        self.count += other.count
        self.highest = max(self.highest, other.highest)

    def percentile(self, share: float) -> int:
        """The elapsed milliseconds ``share`` (0..1) of the items took at most, about."""
        if not self.count:
            return 0
        rank = math.ceil(share * self.count)
        seen = 0
        for bucket in sorted(self.counts):
            seen += self.counts[bucket]
            if seen >= rank:
                return min(round(math.expm1((bucket + 1) * self.STEP)), self.highest)
        return self.highest  # pragma: no cover - the counts add up to self.count


@dataclass(slots=True)
class FailureGroup:
    """The failures that share an error code: how many, and one of them as an example."""

    count: int
    example: ItemResult


@dataclass(frozen=True, slots=True)
class Change:
    """One plan whose thumbnail a run replaced."""

    project_id: str
    plan_id: str
    previous: str | None
    new: str | None


@dataclass(slots=True)
class Summary:
    """What one or more reports add up to."""

    reports: list[Path] = field(default_factory=list)
    outcomes: dict[Outcome, int] = field(default_factory=lambda: dict.fromkeys(ORDER, 0))
    failures: dict[str, FailureGroup] = field(default_factory=dict)
    durations: Durations = field(default_factory=Durations)
    attempts: int = 0
    retried: int = 0  # plans that took more than one attempt
    first_finished: str | None = None
    last_finished: str | None = None
    changed: int = 0  # a known thumbnail replaced by another, or a first one set
    first_set: int = 0  # of those: the plan had none before
    previous_unknown: int = 0  # succeeded, but what the plan showed before is not known
    changes: list[Change] = field(default_factory=list)  # the first EXAMPLES of them
    repeats: int = 0
    runs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def plans(self) -> int:
        """Plans counted, over all reports."""
        return sum(self.outcomes.values())

    def add(self, plan: PlanLine) -> None:
        """Count one plan's last line."""
        r = plan.result
        self.outcomes[r.outcome] += 1
        if r.outcome is Outcome.FAILED:
            label = failure_label(r)
            group = self.failures.get(label)
            if group is None:
                self.failures[label] = FailureGroup(1, r)
            else:
                group.count += 1
        if r.outcome is not Outcome.SKIPPED or r.attempts:
            self.durations.add(r.elapsed_ms)
        self.attempts += r.attempts
        self.retried += r.attempts > 1
        if r.finished_at:
            if self.first_finished is None or r.finished_at < self.first_finished:
                self.first_finished = r.finished_at
            if self.last_finished is None or r.finished_at > self.last_finished:
                self.last_finished = r.finished_at
        if r.outcome is Outcome.SUCCEEDED and not r.previous_known:
            self.previous_unknown += 1
        if plan.changed:
            self.changed += 1
            self.first_set += r.previous_img_url is None
            if len(self.changes) < EXAMPLES:
                self.changes.append(Change(r.project_id, r.plan_id, r.previous_img_url, r.img_url))

    @property
    def throttled(self) -> int:
        """Throttled answers over every run line."""
        return sum(_count(run.get("throttled")) for run in self.runs)

    @property
    def requests(self) -> int:
        """Requests sent, over every run line."""
        return sum(_count(run.get("requests")) for run in self.runs)


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def summarize(reports: Iterable[ReportFile]) -> Summary:
    """Stream every report once and add up what its plans' last lines and run lines say."""
    summary = Summary()
    for report in reports:
        summary.reports.append(report.path)
        summary.repeats += report.repeats
        for plan in report.plans(runs=summary.runs):
            summary.add(plan)
    return summary
