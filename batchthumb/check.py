"""Comparing a job with what the API shows, without changing anything.

Read-only by construction: the only requests are list calls, one paginated listing per
project, paced and retried like every request of a run. Items are streamed from the job once
per project and compared as they go, so a large job needs the memory of one project's listing.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from batchthumb.errors import RunAborted
from batchthumb.jobwriter import printable
from batchthumb.model import Item, Job, LocalImage, PlanSummary, RunSettings
from batchthumb.plans import list_project
from batchthumb.report import read_uploads
from batchthumb.sending import Sender, ThumbnailApi
from batchthumb.session import Connection, open_session

Key = tuple[str, str]


class Status(enum.Enum):
    """Where a plan stands against the job; the value is its mark in the diff-style table."""

    IN_SYNC = " "
    WOULD_CHANGE = "~"
    MISSING = "-"
    UNKNOWN = "?"

    @property
    def label(self) -> str:
        """How the counts name it."""
        return self.name.lower().replace("_", " ")


@dataclass(frozen=True, slots=True)
class Row:
    """One item of the job, compared."""

    item: Item
    status: Status
    name: str | None = None  # the plan's name, when listed
    current: str | None = None  # what the plan shows (None: no thumbnail, or not known)
    wanted: str | None = None  # the URL the job sets, when known
    note: str = ""


@dataclass(slots=True)
class CheckResult:
    """How many items are in each state, and what it cost."""

    counts: dict[Status, int] = field(default_factory=lambda: dict.fromkeys(Status, 0))
    projects: int = 0
    requests: int = 0

    @property
    def in_sync(self) -> bool:
        """Whether every item is provably in sync (an empty job is)."""
        return all(
            count == 0 for status, count in self.counts.items() if status is not Status.IN_SYNC
        )

    @property
    def items(self) -> int:
        """Items compared."""
        return sum(self.counts.values())


async def check_items(
    items: Iterable[Item],
    *,
    api: ThumbnailApi,
    sender: Sender,
    uploads: Mapping[Key, str],
    on_row: Callable[[Row], None],
) -> CheckResult:
    """Compare every item with its project's listing; hand each row to ``on_row``.

    ``uploads`` is what earlier reports journaled: (project_id, cache key) -> img_url, so a
    local image that was uploaded before is compared by the URL it got. Raise
    :class:`RunAborted` when the credentials are rejected.
    """
    result = CheckResult()
    projects = dict.fromkeys(item.project_id for item in items)
    for project in projects:
        result.projects += 1
        listed: dict[str, PlanSummary] | None = None
        why = ""
        try:
            listed = {p.plan_id: p for p in await list_project(api, sender, project)}
        except RunAborted as exc:
            if sender.aborted:
                raise RunAborted(f"credentials rejected: {sender.aborted}") from None
            why = str(exc)
        for item in items:
            if item.project_id != project:
                continue
            row = (
                Row(item, Status.UNKNOWN, note=why)
                if listed is None
                else compare(item, listed.get(item.plan_id), uploads)
            )
            result.counts[row.status] += 1
            on_row(row)
        del listed
    result.requests = sender.requests
    return result


def compare(item: Item, plan: PlanSummary | None, uploads: Mapping[Key, str]) -> Row:
    """Where one item stands against its plan as listed (None: not in the listing)."""
    if plan is None:
        return Row(item, Status.MISSING, note="no such plan in the project")
    wanted, note = item.img_url, ""
    if wanted is None:
        wanted = uploads.get((item.project_id, item.image.cache_key)) if item.image else None
        kind = "local image" if isinstance(item.image, LocalImage) else "image copy"
        if wanted is None:
            note = f"{kind} {item.thumbnail}: not uploaded yet as far as the report says"
        else:
            note = f"{kind} {item.thumbnail} was uploaded as {wanted}"
    if not plan.img_known:
        return Row(item, Status.UNKNOWN, plan.name, wanted=wanted, note="the list shows no img_url")
    if wanted is None:
        return Row(item, Status.UNKNOWN, plan.name, plan.img_url, note=note)
    status = Status.IN_SYNC if plan.img_url == wanted else Status.WOULD_CHANGE
    return Row(item, status, plan.name, plan.img_url, wanted, note)


def counts_line(result: CheckResult) -> str:
    """``N in sync, N would change, N missing, N unknown``."""
    return ", ".join(f"{result.counts[s]} {s.label}" for s in Status)


def format_row(row: Row) -> str:
    """One line of the diff-style table: mark, plan, name, then what differs."""
    item = row.item
    name = printable(row.name or "")[:24]
    head = f"{row.status.value} {item.project_id[:8]}/{item.plan_id}  {name:<24}"
    if row.status is Status.WOULD_CHANGE:
        detail = f"{row.current or '(none)'} -> {row.wanted}"
    elif row.status is Status.IN_SYNC:
        detail = row.wanted or ""
    else:
        detail = row.note
    if row.note and row.status in (Status.IN_SYNC, Status.WOULD_CHANGE):
        detail += f"  ({row.note})"
    return printable(f"{head}  {detail}".rstrip())


async def compare_job(
    job: Job,
    settings: RunSettings,
    connection: Connection,
    on_row: Callable[[Row], None],
    items: Iterable[Item],
) -> CheckResult:
    """The comparison itself, on an event loop: one listing per project."""
    uploads = read_uploads(settings.report_for(job.path))
    async with open_session(connection, settings) as (api, sender):
        return await check_items(items, api=api, sender=sender, uploads=uploads, on_row=on_row)
