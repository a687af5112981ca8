"""Jobs that reproduce a state: a project's current thumbnails, or what a run replaced."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from batchthumb.errors import UsageError
from batchthumb.history import last_changes
from batchthumb.jobwriter import Entry, render_job
from batchthumb.model import PlanSummary


def export_job(
    plans: Sequence[PlanSummary], *, project_id: str, endpoint: str | None
) -> tuple[str, int]:
    """A job setting each plan's current thumbnail (the others as comments); its item count."""
    if not plans:
        raise UsageError(
            f"project {project_id} has no plans (matching the filters); nothing to export"
        )
    entries: list[Entry] = []
    comments: list[str] = []
    for plan in plans:
        label = f"{plan.name} ({plan.type})"
        if plan.img_url is not None:
            entries.append(Entry(plan.project_id, plan.plan_id, img_url=plan.img_url, note=label))
        elif plan.img_known:
            comments.append(f"{plan.plan_id}  {label}: no thumbnail")
        else:
            comments.append(f"{plan.plan_id}  {label}: thumbnail unknown (not in the plan list)")
    if not entries:
        raise UsageError(
            f"none of the {len(plans)} plans of project {project_id} has a thumbnail; "
            "nothing to export"
        )
    header = [
        f"The thumbnails of project {project_id}, exported by batchthumb export.",
        "`batchthumb run` this file to set them again.",
    ]
    return render_job(entries, header=header, comments=comments, endpoint=endpoint), len(entries)


def undo_job(report: Path, *, endpoint: str | None) -> tuple[str, int, int]:
    """A job restoring every plan the report's history changed: (text, restored, cannot).

    Each plan goes back to what it showed before the newest run that changed it, whichever
    report of the history (``REPORT``, ``REPORT.1``...) records that run.
    """
    entries: list[Entry] = []
    comments: list[str] = []
    sources: set[Path] = set()
    for (project_id, plan_id), change in last_changes(report).items():
        record = change.record
        if "previous_img_url" not in record:
            comments.append(f"{plan_id}: previous thumbnail unknown; cannot restore")
        elif not isinstance(record["previous_img_url"], str):
            comments.append(
                f"{plan_id}: had no thumbnail; the API has no documented way to clear one"
            )
        else:
            entries.append(Entry(project_id, plan_id, img_url=record["previous_img_url"]))
            sources.add(change.report)
    if not entries:
        why = "; ".join(sorted({comment.split(": ", 1)[1] for comment in comments}))
        raise UsageError(
            f"{report}: no plan a run changed can be restored"
            + (f" ({len(comments)} plans: {why})" if comments else " (no run changed any)")
        )
    names = ", ".join(sorted(path.name for path in sources))
    header = [
        f"Restores each plan to what it showed before the last run that changed it ({names}).",
    ]
    text = render_job(entries, header=header, comments=comments, endpoint=endpoint)
    return text, len(entries), len(comments)
