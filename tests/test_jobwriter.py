"""Written job files read back unchanged, whatever the plan names hold."""

from __future__ import annotations

from pathlib import Path

from batchthumb.jobfile import load_job
from batchthumb.jobwriter import Entry, render_job

P = "919bb351ef424e2daaf3dd80c179fae9"
URL = f"/v1/upload/{P}/202506/1.png"


def test_rendered_jobs_round_trip_through_load_job(tmp_path: Path) -> None:
    """Names with YAML syntax and newlines stay in comments; items load back exactly."""
    entries = [Entry(P, f"{n:032d}", img_url=URL, note="a: b\n# c {d}") for n in range(3)]
    text = render_job(entries, header=["h"], comments=["x\ny: z"], endpoint="http://h:1")
    path = tmp_path / "job.yaml"
    path.write_text(text)
    job = load_job(path)
    assert [(i.project_id, i.plan_id, i.img_url) for i in job.items] == [
        (e.project_id, e.plan_id, e.img_url) for e in entries
    ]
    assert job.settings.endpoint == "http://h:1"
