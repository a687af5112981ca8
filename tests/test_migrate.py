"""The migration's own outputs: the unpaired CSV of every pair."""

from __future__ import annotations

import csv
import io

from batchthumb.migrate import PairPlan, plan_migration, unpaired_csv
from batchthumb.model import PlanSummary
from batchthumb.plans import pair_by_name

S1, T1, S2, T2 = "1" * 32, "a" * 32, "2" * 32, "b" * 32


def pair(source: str, target: str, *names: str) -> PairPlan:
    plans = [PlanSummary(source, f"{n:032d}", name, "mind", None) for n, name in enumerate(names)]
    pairing = pair_by_name(plans, [])
    return PairPlan(source, target, pairing, plan_migration(pairing))


def test_the_unpaired_csv_lists_each_pair_and_opens_safely_in_a_spreadsheet() -> None:
    """One CSV for all pairs, each row naming its pair and why; the cells of every pair are
    neutralised (a name that would be a formula starts with a quote)."""
    text = unpaired_csv([pair(S1, T1, "Roadmap"), pair(S2, T2, '=HYPERLINK("http://x")')])
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == [
        "source_project", "target_project", "side", "plan_id", "name", "type", "why", "reason",
    ]  # fmt: skip
    assert rows[1][:3] + rows[1][4:7] == [S1, T1, "source", "Roadmap", "mind", "no partner"]
    assert rows[2][:2] == [S2, T2]
    assert rows[2][4] == '\'=HYPERLINK("http://x")'
    assert len(rows) == 3
