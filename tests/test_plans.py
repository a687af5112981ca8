"""Pairing plans of two projects by name and type."""

from __future__ import annotations

from batchthumb.model import PlanSummary
from batchthumb.plans import pair_by_name

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
