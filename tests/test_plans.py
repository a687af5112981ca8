"""Pairing plans of two projects by name and type, exactly or loosely, and reading pair files."""

from __future__ import annotations

from pathlib import Path

import pytest

from batchthumb.errors import JobFileError
from batchthumb.model import PlanSummary
from batchthumb.plans import (
    AMBIGUOUS,
    NO_PARTNER,
    TYPE_MISMATCH,
    ProjectPair,
    loose_name,
    pair_by_mapping,
    pair_by_name,
    read_project_pairs,
)

S, T = "a" * 32, "b" * 32


def plan(project: str, n: int, name: str, kind: str = "mind") -> PlanSummary:
    return PlanSummary(project, f"{n:032d}", name, kind, None)


def test_same_name_different_type_does_not_pair() -> None:
    """Name and type must both match; a duplicate target name is ambiguous, never guessed."""
    source = [plan(S, 1, "A"), plan(S, 2, "B", "gantt"), plan(S, 3, "C")]
    target = [plan(T, 1, "A"), plan(T, 2, "B", "mind"), plan(T, 3, "C"), plan(T, 4, "C")]
    pairing = pair_by_name(source, target)
    assert [(s.name, t.plan_id) for s, t in pairing.pairs] == [("A", f"{1:032d}")]
    whys = {(u.side, u.plan.plan_id): (u.why, u.reason) for u in pairing.unpaired}
    assert whys[("source", f"{3:032d}")] == (
        AMBIGUOUS,
        "1 source and 2 target plans have this name and type",
    )
    assert whys[("target", f"{3:032d}")][0] == AMBIGUOUS
    assert whys[("target", f"{4:032d}")][0] == AMBIGUOUS
    assert whys[("source", f"{2:032d}")] == (
        TYPE_MISMATCH,
        "the target project has this name only as type mind",
    )
    assert whys[("target", f"{2:032d}")][0] == TYPE_MISMATCH
    assert len(pairing.unpaired) == 5


def test_a_name_the_other_side_lacks_has_no_partner() -> None:
    """A name found on one side only is unpaired as "no partner", on either side."""
    pairing = pair_by_name([plan(S, 1, "Only here")], [plan(T, 2, "Only there")])
    assert not pairing.pairs
    assert [(u.side, u.why) for u in pairing.unpaired] == [
        ("source", NO_PARTNER),
        ("target", NO_PARTNER),
    ]


def test_exact_names_keep_case_and_spacing_apart() -> None:
    """--match name: "Roadmap 2025" and "roadmap 2025 " do not pair."""
    pairing = pair_by_name([plan(S, 1, "Roadmap 2025")], [plan(T, 1, "roadmap 2025 ")])
    assert not pairing.pairs


def test_loose_names_ignore_case_width_and_spacing() -> None:
    """name-loose pairs names that differ in case, full-width forms and repeated or outer spaces."""
    source = [plan(S, 1, "Roadmap 2025"), plan(S, 2, "Ｑ３  Ｐｌａｎ"), plan(S, 3, "STRASSE")]
    target = [plan(T, 1, " roadmap   2025 "), plan(T, 2, "q3 plan"), plan(T, 3, "Straße")]
    pairing = pair_by_name(source, target, normalise=loose_name)
    assert [(s.plan_id, t.plan_id) for s, t in pairing.pairs] == [
        (f"{n:032d}", f"{n:032d}") for n in (1, 2, 3)
    ]
    assert not pairing.unpaired


def test_loose_names_that_collide_are_ambiguous() -> None:
    """Two source plans that become one name loosely are both left unpaired: never guessed."""
    source = [plan(S, 1, "Roadmap"), plan(S, 2, "ROADMAP ")]
    pairing = pair_by_name(source, [plan(T, 1, "roadmap")], normalise=loose_name)
    assert not pairing.pairs
    assert {u.why for u in pairing.unpaired} == {AMBIGUOUS}
    assert len(pairing.unpaired) == 3


def test_a_projects_file_reads_pairs_with_an_optional_header(tmp_path: Path) -> None:
    """Header, blank lines and # comments are skipped; each pair keeps its line number."""
    path = tmp_path / "projects.csv"
    path.write_text(
        f"source_project,target_project\n\n# old -> new\n{S},{T}\n{'c' * 32},{'d' * 32}\n"
    )
    assert read_project_pairs(path, same_side=True) == (
        ProjectPair(4, S, T),
        ProjectPair(5, "c" * 32, "d" * 32),
    )


def test_a_projects_file_names_the_line_of_each_problem(tmp_path: Path) -> None:
    """A source or target listed twice, a bad id, a short line, a self-pair: each names its line."""
    path = tmp_path / "projects.csv"
    c, d, e = "c" * 32, "d" * 32, "e" * 32
    path.write_text(f"{S},{T}\n{S},{c}\n{d},{T}\nnot-an-id,{c}\n{c}\n{e},{e}\n")
    with pytest.raises(JobFileError) as caught:
        read_project_pairs(path, same_side=True)
    assert [str(p) for p in caught.value.problems] == [
        f"{path}:2: source project {S} is already listed at line 1",
        f"{path}:3: target project {T} is already listed at line 1",
        f"{path}:4: 'not-an-id' is not a project id (32 letters or digits)",
        f"{path}:5: expected two columns: source_project,target_project",
        f"{path}:6: project {e} is paired with itself",
    ]


def test_a_project_may_pair_with_its_namesake_on_another_side(tmp_path: Path) -> None:
    """Across two endpoints, the same project id on both sides is a pair, not a mistake."""
    path = tmp_path / "projects.csv"
    path.write_text(f"{S},{S}\n")
    assert read_project_pairs(path, same_side=False) == (ProjectPair(1, S, S),)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            b'source_plan_id,target_plan_id\n"unclosed,x\n',
            ":2: not valid CSV: unexpected end of data",
        ),
        (b"source_plan_id,target_plan_id\n\xff\xfe,x\n", ":2: not UTF-8 text"),
    ],
)
def test_a_broken_mapping_file_is_one_problem_naming_its_line(
    tmp_path: Path, content: bytes, expected: str
) -> None:
    """Quoting errors and bytes that are not UTF-8 in a mapping CSV name their line."""
    path = tmp_path / "map.csv"
    path.write_bytes(content)
    with pytest.raises(JobFileError) as raised:
        pair_by_mapping(path, [plan(S, 1, "A")], [plan(T, 1, "A")])
    assert [str(p) for p in raised.value.problems] == [f"{path}{expected}"]


def test_a_projects_file_that_is_not_utf8_names_its_line(tmp_path: Path) -> None:
    """A projects CSV is read as carefully as a mapping file: bad bytes name their line."""
    path = tmp_path / "projects.csv"
    path.write_bytes(f"{S},{T}\n".encode() + b"\xff\xfe,x\n")
    with pytest.raises(JobFileError) as raised:
        read_project_pairs(path, same_side=True)
    assert [str(p) for p in raised.value.problems] == [f"{path}:2: not UTF-8 text"]
