"""`batchthumb report` end to end: reports of real runs against the sandbox, every format."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import pytest
from lxml import etree

from batchthumb.sandbox import Sandbox
from tests.clihelp import cli, environment, read_report
from tests.conftest import P1, plan_id
from tests.scenario import FAILING, FORMULA, run_scenario

pytestmark = pytest.mark.anyio

# A strict reading of the JUnit XML that Jenkins, GitLab and Ant's junitreport accept
# (testsuites > testsuite > testcase, a failure with message and type): written for these
# tests after the Jenkins xunit plugin's junit-10.xsd, with counts and times typed.
JUNIT_XSD = b"""<?xml version="1.0" encoding="UTF-8"?>
<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" elementFormDefault="qualified">
  <xs:simpleType name="count"><xs:restriction base="xs:nonNegativeInteger"/></xs:simpleType>
  <xs:simpleType name="seconds"><xs:restriction base="xs:decimal">
    <xs:minInclusive value="0"/></xs:restriction></xs:simpleType>
  <xs:complexType name="problem" mixed="true">
    <xs:attribute name="message" type="xs:string" use="required"/>
    <xs:attribute name="type" type="xs:string" use="required"/>
  </xs:complexType>
  <xs:complexType name="skip" mixed="true">
    <xs:attribute name="message" type="xs:string" use="optional"/>
  </xs:complexType>
  <xs:element name="testsuites">
    <xs:complexType>
      <xs:sequence>
        <xs:element name="testsuite" minOccurs="0" maxOccurs="unbounded">
          <xs:complexType>
            <xs:sequence>
              <xs:element name="testcase" minOccurs="0" maxOccurs="unbounded">
                <xs:complexType>
                  <xs:choice minOccurs="0" maxOccurs="1">
                    <xs:element name="failure" type="problem"/>
                    <xs:element name="error" type="problem"/>
                    <xs:element name="skipped" type="skip"/>
                  </xs:choice>
                  <xs:attribute name="name" type="xs:string" use="required"/>
                  <xs:attribute name="classname" type="xs:string" use="required"/>
                  <xs:attribute name="time" type="seconds" use="required"/>
                </xs:complexType>
              </xs:element>
            </xs:sequence>
            <xs:attribute name="name" type="xs:string" use="required"/>
            <xs:attribute name="tests" type="count" use="required"/>
            <xs:attribute name="failures" type="count" use="required"/>
            <xs:attribute name="errors" type="count" use="required"/>
            <xs:attribute name="skipped" type="count" use="optional"/>
            <xs:attribute name="time" type="seconds" use="required"/>
            <xs:attribute name="timestamp" type="xs:string" use="optional"/>
          </xs:complexType>
        </xs:element>
      </xs:sequence>
      <xs:attribute name="name" type="xs:string" use="optional"/>
      <xs:attribute name="tests" type="count" use="required"/>
      <xs:attribute name="failures" type="count" use="required"/>
      <xs:attribute name="errors" type="count" use="required"/>
      <xs:attribute name="skipped" type="count" use="optional"/>
      <xs:attribute name="time" type="seconds" use="optional"/>
    </xs:complexType>
  </xs:element>
</xs:schema>
"""


def no_credentials() -> dict[str, str]:
    """The environment without any token: report must not need one."""
    env = environment()
    del env["BATCHTHUMB_TOKEN"]
    return env


async def test_text_report_counts_groups_failures_and_shows_what_changed(
    tmp_path: Path, sandbox: tuple[Sandbox, str]
) -> None:
    """Text: counts by outcome, the failure's code with an example plan, the run's
    throttling, and previous -> new for a change; no credentials needed."""
    box, url = sandbox
    run = await run_scenario(box, url, tmp_path)
    requests_before = box.stats.requests
    result = await cli("report", str(run.report), env=no_credentials())
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0] == f"6 plans in {run.report}: 1 failed, 4 succeeded, 1 skipped"
    assert any(
        line.split()[:2] == ["PM.02175006", "x1"] and f"plan {plan_id(FAILING)}" in line
        for line in lines
    ), result.out
    run_line = next(line for line in lines if line.startswith("run "))
    assert "throttled 1 times" in run_line
    changed = plan_id(1)
    assert f"  {changed}  {run.previous[changed]} -> {run.wanted[changed]}" in lines
    assert "changed: 4 thumbnails (2 where the plan had none)" in lines
    assert box.stats.requests == requests_before  # nothing was asked of the API


async def test_json_report_is_one_document_with_the_same_facts(
    tmp_path: Path, sandbox: tuple[Sandbox, str]
) -> None:
    """JSON: outcomes, failure groups with an example, throttling and changes, parseable."""
    box, url = sandbox
    run = await run_scenario(box, url, tmp_path)
    result = await cli("report", str(run.report), "--format", "json", env=no_credentials())
    assert result.code == 0, result.err
    doc = json.loads(result.out)
    assert doc["outcomes"] == {"failed": 1, "succeeded": 4, "skipped": 1}
    assert doc["failures"] == [
        {
            "error_code": "PM.02175006",
            "count": 1,
            "example": {
                "project_id": P1,
                "plan_id": plan_id(FAILING),
                "http_status": 400,
                "error": FORMULA,
            },
        }
    ]
    assert doc["throttled"] == 1
    assert doc["changed"] == 4
    assert doc["timing"]["attempts"] == 6  # five PUTs (one throttled once), one skip


async def test_csv_has_a_row_per_plan_and_nothing_a_spreadsheet_runs(
    tmp_path: Path, sandbox: tuple[Sandbox, str]
) -> None:
    """CSV: one row per plan; a server message starting with = is neutralised, and no cell
    starts like a formula."""
    box, url = sandbox
    run = await run_scenario(box, url, tmp_path)
    out = tmp_path / "report.csv"
    result = await cli("report", str(run.report), "--format", "csv", "-o", str(out))
    assert result.code == 0, result.err
    assert f"csv report of 6 plans: {out}" in result.err
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert sorted(row["plan_id"] for row in rows) == [plan_id(n) for n in range(6)]
    failed = next(row for row in rows if row["plan_id"] == plan_id(FAILING))
    assert failed["error"] == "'" + FORMULA
    for row in rows:
        for cell in row.values():
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell


async def test_junit_is_valid_against_the_schema_with_one_case_per_plan(
    tmp_path: Path, sandbox: tuple[Sandbox, str]
) -> None:
    """JUnit: valid against the schema; one testcase per plan with its project as classname;
    the failure carries the server's message and code."""
    box, url = sandbox
    run = await run_scenario(box, url, tmp_path)
    result = await cli("report", str(run.report), "--format", "junit", env=no_credentials())
    assert result.code == 0, result.err
    schema = etree.XMLSchema(etree.fromstring(JUNIT_XSD))
    document = etree.fromstring(result.out.encode())
    assert schema.validate(document), schema.error_log
    cases = document.findall("testsuite/testcase")
    assert len(cases) == 6
    assert {case.get("classname") for case in cases} == {P1}
    assert document.get("tests") == "6" and document.get("failures") == "1"
    failures = document.findall("testsuite/testcase/failure")
    assert [(f.getparent().get("name"), f.get("type"), f.get("message")) for f in failures] == [
        (plan_id(FAILING), "PM.02175006", FORMULA)
    ]
    assert len(document.findall("testsuite/testcase/skipped")) == 1


async def test_a_plan_listed_twice_counts_once_with_its_last_line(tmp_path: Path) -> None:
    """A report whose resumed run was killed before compacting: the later line wins."""
    report = tmp_path / "r.jsonl"
    first = {"project_id": P1, "plan_id": plan_id(1), "outcome": "failed", "error_code": "X.1"}
    other = {"project_id": P1, "plan_id": plan_id(2), "outcome": "succeeded"}
    again = {"project_id": P1, "plan_id": plan_id(1), "outcome": "succeeded"}
    report.write_text("".join(json.dumps(r) + "\n" for r in (first, other, again)))
    result = await cli("report", str(report), "--format", "json", env=no_credentials())
    doc = json.loads(result.out)
    assert doc["outcomes"] == {"failed": 0, "succeeded": 2, "skipped": 0}
    assert doc["repeats"] == 1
    listed = await cli("report", str(report), "--format", "csv", env=no_credentials())
    assert [row["outcome"] for row in csv.DictReader(io.StringIO(listed.out))] == [
        "succeeded",
        "succeeded",
    ]


async def test_several_reports_make_one_summary_and_a_suite_each(
    tmp_path: Path, sandbox: tuple[Sandbox, str]
) -> None:
    """Two reports (a run and the one before it, kept as REPORT.1): counts add up, and the
    JUnit output has a test suite per report."""
    box, url = sandbox
    run = await run_scenario(box, url, tmp_path)
    again = await cli("run", str(run.job), "--no-progress", "--backoff", "0")
    assert again.code == 0, again.err  # the failing plan's fault was used up
    kept = run.report.with_name(run.report.name + ".1")
    result = await cli("report", str(run.report), str(kept), "--format", "junit")
    document = etree.fromstring(result.out.encode())
    assert [suite.get("name") for suite in document.findall("testsuite")] == [
        str(run.report),
        str(kept),
    ]
    assert document.get("tests") == "12"


async def test_run_lines_leave_resume_compaction_and_undo_working(
    tmp_path: Path, sandbox: tuple[Sandbox, str]
) -> None:
    """Every run appends a run line; resume, compaction and undo read past them."""
    box, url = sandbox
    run = await run_scenario(box, url, tmp_path)
    resumed = await cli("run", str(run.job), "--no-progress", "--retry-failed", "--backoff", "0")
    assert resumed.code == 0, resumed.err
    assert "1 of 6 plans to retry" in resumed.err
    lines = [json.loads(line) for line in run.report.read_text().splitlines()]
    # Each run: its list call, then its PUTs (5 and a throttled retry; then the one left).
    assert [line["requests"] for line in lines if line.get("kind") == "run"] == [7, 2]
    assert len(read_report(run.report)) == 6  # compacted: each plan once
    undo = await cli("undo", str(run.report), "-o", str(tmp_path / "undo.yaml"))
    assert undo.code == 0, undo.err
    assert "restores 3 plans; 2 cannot be restored" in undo.out  # 2 had no thumbnail


async def test_a_missing_report_is_a_clear_error(tmp_path: Path) -> None:
    """A report that does not exist: one line naming it, exit 2."""
    result = await cli("report", str(tmp_path / "nope.jsonl"), env=no_credentials())
    assert result.code == 2
    assert result.err == f"batchthumb: {tmp_path / 'nope.jsonl'}: no such report\n"


async def test_a_report_that_is_not_a_regular_file_is_refused(tmp_path: Path) -> None:
    """A FIFO named as the report: refused at once with what it is (it would block), exit 2."""
    fifo = tmp_path / "r.jsonl"
    os.mkfifo(fifo)
    result = await cli("report", str(fifo), env=no_credentials())
    assert result.code == 2
    assert result.err == f"batchthumb: {fifo}: is a FIFO (named pipe), not a regular file\n"
