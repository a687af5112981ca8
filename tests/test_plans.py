"""Pairing plans of two projects by name and type."""

from __future__ import annotations

from pathlib import Path

import pytest

from batchthumb.errors import JobFileError
from batchthumb.model import PlanSummary
from batchthumb.plans import pair_by_mapping, pair_by_name

S, T = "a" * 32, "b" * 32


def plan(project: str, n: int, name: str, kind: str = "mind") -> PlanSummary:
    return PlanSummary(project, f"{n:032d}", name, kind, None)


def test_same_name_different_type_does_not_pair() -> None:
    """Name and type must both match; a duplicate target name is ambiguous, never guessed."""
    source = [plan(S, 1, "A"), plan(S, 2, "B", "gantt"), plan(S, 3, "C")]
    target = [plan(T, 1, "A"), plan(T, 2, "B", "mind"), plan(T, 3, "C"), plan(T, 4, "C")]
    pairing = pair_by_name(source, target)
    assert [(s.name, t.plan_id) for s, t in pairing.pairs] == [("A", f"{1:032d}")]
    reasons = {(u.side, u.plan.name): u.reason for u in pairing.unpaired}
    assert reasons[("source", "C")].startswith("ambiguous: 2 target plans")
    assert reasons[("source", "B")] == "no target plan with this name and type"
    assert ("target", "B") in reasons


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
