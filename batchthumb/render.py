"""A report summary as text, JSON, CSV or JUnit XML, written to a stream as it is read.

CSV and JUnit have one row or test case per plan and are streamed: a million plans never sit
in memory. Everything that comes from a plan or a server (names, messages, URLs) is escaped
for the format: XML-escaped for JUnit, neutralised for spreadsheets in CSV.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from typing import Any, TextIO
from xml.sax.saxutils import escape as xml_escape
from xml.sax.saxutils import quoteattr

from batchthumb.jobwriter import csv_cell, printable
from batchthumb.model import Outcome, failure_label
from batchthumb.summarize import ORDER, PlanLine, ReportFile, Summary

CSV_COLUMNS = (
    "report",
    "project_id",
    "plan_id",
    "outcome",
    "previous_img_url",
    "img_url",
    "http_status",
    "error_code",
    "error",
    "attempts",
    "elapsed_ms",
    "finished_at",
    "request_id",
)


def text_summary(summary: Summary) -> str:
    """The summary for a person at a terminal."""
    o = summary.outcomes
    names = ", ".join(str(path) for path in summary.reports)
    lines = [
        f"{summary.plans} plans in {names}: "
        + ", ".join(f"{o[outcome]} {outcome.value}" for outcome in ORDER)
    ]
    if summary.repeats:
        lines.append(f"  ({summary.repeats} plans listed more than once: the last line counts)")
    if summary.failures:
        lines.append("failures by error code:")
        width = max(len(code) for code in summary.failures)
        for code, group in _by_count(summary):
            ex = group.example
            why = f": {ex.error}" if ex.error else ""
            lines.append(
                f"  {code:<{width}}  x{group.count:<5} e.g. plan {ex.plan_id} "
                f"(project {ex.project_id}){why}"
            )
    d = summary.durations
    if d.count:
        lines.append(
            f"timing: per plan p50 {d.percentile(0.5)} ms, p95 {d.percentile(0.95)} ms, "
            f"max {d.highest} ms; {summary.attempts} attempts, {summary.retried} plans retried"
        )
    if summary.first_finished and summary.last_finished:
        lines.append(f"finished between {summary.first_finished} and {summary.last_finished}")
    for run in summary.runs:
        lines.append(_run_line(run))
    lines.append(
        f"changed: {summary.changed} thumbnails"
        + (f" ({summary.first_set} where the plan had none)" if summary.first_set else "")
        + (
            f"; {summary.previous_unknown} set with the previous one unknown"
            if summary.previous_unknown
            else ""
        )
    )
    for change in summary.changes:
        lines.append(f"  {change.plan_id}  {change.previous or '(none)'} -> {change.new}")
    if summary.changed > len(summary.changes):
        lines.append(f"  ... and {summary.changed - len(summary.changes)} more")
    return "\n".join(printable(line) for line in lines) + "\n"


def _by_count(summary: Summary) -> Sequence[tuple[str, Any]]:
    return sorted(summary.failures.items(), key=lambda kv: (-kv[1].count, kv[0]))


def _run_line(run: dict[str, Any]) -> str:
    rate = run.get("settled_rate")
    settled = f", settled at {rate:.1f}/s" if isinstance(rate, int | float) else ""
    end = run.get("aborted") or run.get("stopped")
    how = f"; ended early: {end}" if end else ""
    return (
        f"run {run.get('started_at')} to {run.get('finished_at')}: "
        f"{run.get('requests')} requests, throttled {run.get('throttled')} times, "
        f"rate cut {run.get('rate_cuts')} times{settled}{how}"
    )


def json_summary(summary: Summary) -> str:
    """The summary as one JSON document, for scripts."""
    d = summary.durations
    document = {
        "reports": [str(path) for path in summary.reports],
        "plans": summary.plans,
        "outcomes": {outcome.value: summary.outcomes[outcome] for outcome in ORDER},
        "repeats": summary.repeats,
        "failures": [
            {
                "error_code": code,
                "count": group.count,
                "example": {
                    "project_id": group.example.project_id,
                    "plan_id": group.example.plan_id,
                    "http_status": group.example.http_status,
                    "error": group.example.error,
                },
            }
            for code, group in _by_count(summary)
        ],
        "timing": {
            "first_finished": summary.first_finished,
            "last_finished": summary.last_finished,
            "p50_ms": d.percentile(0.5),
            "p95_ms": d.percentile(0.95),
            "max_ms": d.highest,
            "attempts": summary.attempts,
            "retried": summary.retried,
        },
        "throttled": summary.throttled,
        "requests": summary.requests,
        "runs": summary.runs,
        "changed": summary.changed,
        "first_set": summary.first_set,
        "previous_unknown": summary.previous_unknown,
        "changes": [
            {"project_id": c.project_id, "plan_id": c.plan_id, "previous": c.previous, "new": c.new}
            for c in summary.changes
        ],
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def write_csv(reports: Sequence[ReportFile], out: TextIO) -> int:
    """One row per plan (its last line in each report); return the rows written."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    rows = 0
    for report in reports:
        for plan in report.plans():
            writer.writerow([csv_cell(cell) for cell in _csv_cells(plan)])
            rows += 1
    return rows


def _csv_cells(plan: PlanLine) -> list[str]:
    r = plan.result
    previous = (r.previous_img_url or "") if r.previous_known else "(unknown)"
    return [
        str(plan.report),
        r.project_id,
        r.plan_id,
        r.outcome.value,
        previous,
        r.img_url or "",
        "" if r.http_status is None else str(r.http_status),
        r.error_code or "",
        r.error or "",
        str(r.attempts),
        str(r.elapsed_ms),
        r.finished_at,
        r.request_id or "",
    ]


def write_junit(reports: Sequence[ReportFile], summaries: Sequence[Summary], out: TextIO) -> None:
    """JUnit XML: a test suite per report, a test case per plan (class name: its project).

    ``summaries`` are the reports' own summaries, in the same order: a suite's counts come
    before its cases.
    """
    total = sum(s.plans for s in summaries)
    failures = sum(s.outcomes[Outcome.FAILED] for s in summaries)
    skipped = sum(s.outcomes[Outcome.SKIPPED] for s in summaries)
    seconds = sum(s.durations.total for s in summaries) / 1000
    out.write('<?xml version="1.0" encoding="UTF-8"?>\n')
    out.write(
        f'<testsuites name="batchthumb" tests="{total}" failures="{failures}" errors="0" '
        f'skipped="{skipped}" time="{seconds:.3f}">\n'
    )
    for report, summary in zip(reports, summaries, strict=True):
        stamp = summary.first_finished or ""
        out.write(
            f'  <testsuite name={quoteattr(str(report.path))} tests="{summary.plans}" '
            f'failures="{summary.outcomes[Outcome.FAILED]}" errors="0" '
            f'skipped="{summary.outcomes[Outcome.SKIPPED]}" '
            f'time="{summary.durations.total / 1000:.3f}" timestamp={quoteattr(stamp[:19])}>\n'
        )
        for plan in report.plans():
            out.write(_testcase(plan))
        out.write("  </testsuite>\n")
    out.write("</testsuites>\n")


def _testcase(plan: PlanLine) -> str:
    r = plan.result
    head = (
        f"    <testcase classname={quoteattr(r.project_id)} name={quoteattr(r.plan_id)} "
        f'time="{r.elapsed_ms / 1000:.3f}"'
    )
    if r.outcome is Outcome.SUCCEEDED:
        return head + "/>\n"
    if r.outcome is Outcome.SKIPPED:
        return (
            head + f"><skipped message={quoteattr(_xml_text(r.error or 'skipped'))}/></testcase>\n"
        )
    label = failure_label(r)
    detail = [
        f"img_url: {r.img_url}",
        f"http_status: {r.http_status}",
        f"error_code: {r.error_code}",
        f"attempts: {r.attempts}",
        f"request_id: {r.request_id}",
        f"finished_at: {r.finished_at}",
    ]
    return (
        head
        + f"><failure message={quoteattr(_xml_text(r.error or label))} "
        + f"type={quoteattr(_xml_text(label))}>"
        + xml_escape(_xml_text("\n".join(detail)))
        + "</failure></testcase>\n"
    )


def _xml_text(text: str) -> str:
    """``text`` without the characters XML 1.0 cannot carry at all (control characters)."""
    return "".join(
        c
        for c in text
        if c in "\t\n\r"
        or (0x20 <= ord(c) < 0xD800)
        or (0xE000 <= ord(c) <= 0xFFFD)
        or ord(c) >= 0x10000
    )
