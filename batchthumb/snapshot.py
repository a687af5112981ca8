"""The plans' thumbnails before a run: each project listed when its first item needs it.

A project is listed once (single-flight, like the runner's uploads), by the first worker that
needs it, through the run's sender: listings share the run's workers and rate, other projects'
PUTs go on meanwhile, and a project's first PUT waits only for its own listing. A worker whose
item waits for a listing already under way lists a project coming later in the job meanwhile,
rather than idling. Each listing is journaled before any item of its project is sent, so a run
killed at any moment still knows what every plan it changed showed before, and undo restores it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import anyio

from batchthumb.console import Console
from batchthumb.errors import ReportError, RunAborted
from batchthumb.model import DEFAULT_MAX_LIST_PAGES, Attempt
from batchthumb.plans import ListingFailed, list_project, thumbnails
from batchthumb.progress import Progress
from batchthumb.report import ReportState
from batchthumb.runner import Key
from batchthumb.sending import Sender, ThumbnailApi

# Items a waiting worker looks through for a project to list: a bound on how long it can hold
# the event loop when the rest of the job is in projects listed already.
_LOOK_AHEAD = 256


class SnapshotRecorder(Protocol):
    """Where a project's listing is kept durably (the journal)."""

    def record_snapshot(self, project_id: str, plans: dict[str, str | None]) -> None:
        """Keep the thumbnails of a project's plans before anything there changes."""
        ...


class Previous(Mapping[Key, "str | None"]):
    """(project_id, plan_id) -> the plan's thumbnail before the run (None: it had none).

    Held as one dict of plan ids per project: no key tuple and no project id string per plan,
    which were a third of the memory a listed plan cost.
    """

    __slots__ = ("_count", "_projects")

    def __init__(self) -> None:
        self._projects: dict[str, dict[str, str | None]] = {}
        self._count = 0

    def add(self, project_id: str, plans: Mapping[str, str | None]) -> None:
        """Take the thumbnails of plans of a project; those already known stay as they are."""
        known = self._projects.setdefault(project_id, {})
        before = len(known)
        for plan_id, img_url in plans.items():
            known.setdefault(plan_id, img_url)
        self._count += len(known) - before

    def shows(self, project_id: str, img_url: str) -> bool:
        """Whether a plan of the project shows ``img_url``."""
        return img_url in self._projects.get(project_id, {}).values()

    def __getitem__(self, key: Key) -> str | None:
        return self._projects[key[0]][key[1]]

    def __iter__(self) -> Iterator[Key]:
        for project_id, plans in self._projects.items():
            for plan_id in plans:
                yield project_id, plan_id

    def __len__(self) -> int:
        return self._count


@dataclass(slots=True)
class Snapshot:
    """Lists projects on demand and collects ``previous``: (project, plan) -> img_url or None.

    ``known`` is what an interrupted run journaled: its listings win over today's, which may
    show that run's changes. ``total`` is how many projects the run may list (for progress).
    ``ahead`` is the project of each item in job order, read apart from the workers' stream:
    where a waiting worker finds the next project to list.
    """

    api: ThumbnailApi
    sender: Sender
    journal: SnapshotRecorder
    console: Console
    progress: Progress
    known: ReportState = field(default_factory=ReportState)
    total: int = 0
    previous: Previous = field(default_factory=Previous)
    listed: set[str] = field(default_factory=set)
    flying: dict[str, anyio.Event] = field(default_factory=dict)
    ahead: Iterator[str] | None = None
    max_pages: int = DEFAULT_MAX_LIST_PAGES  # a server cannot keep a listing going forever
    # Projects that could not be listed, and the answer that said so: their items fail.
    unlisted: dict[str, Attempt] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # What an interrupted run journaled comes first: a listing now may show its changes.
        by_project: dict[str, dict[str, str | None]] = {}
        for (project_id, plan_id), img_url in self.known.previous.items():
            by_project.setdefault(project_id, {})[plan_id] = img_url
        for project_id, plans in by_project.items():
            self.previous.add(project_id, plans)

    def shows(self, project_id: str, img_url: str) -> bool:
        """Whether a plan of the project showed ``img_url`` when it was listed."""
        return self.previous.shows(project_id, img_url)

    async def ready(self, project_id: str) -> bool:
        """Wait until the project is listed and journaled; False if the run must not go on.

        Raises :class:`ReportError` when the journal cannot be written.
        """
        while project_id not in self.listed:
            flying = self.flying.get(project_id)
            if flying is None:
                await self._list(project_id)
            elif (later := self._next_unlisted()) is not None:
                await self._list(later)  # work meanwhile: one listing less to wait for later
            else:
                await flying.wait()
            if self.sender.stop.requested:
                return False
        return True

    def _next_unlisted(self) -> str | None:
        """A project further on in the job that nobody has listed or is listing."""
        if self.ahead is None:
            return None
        for looked, project_id in enumerate(self.ahead, 1):
            if project_id not in self.listed and project_id not in self.flying:
                return project_id
            if looked == _LOOK_AHEAD:
                return None
        self.ahead = None  # the whole job looked through
        return None

    async def list_all(self, projects: Iterable[str], *, concurrency: int) -> bool:
        """List every project before anything changes (``--backup``), ``concurrency`` at once.

        False if the run stopped or gave up meanwhile.
        """
        pending = iter(projects)
        failure: ReportError | None = None

        async def lister() -> None:
            nonlocal failure
            for project_id in pending:
                try:
                    if not await self.ready(project_id):
                        return
                except ReportError as exc:  # raised below, not wrapped in an exception group
                    failure = failure or exc
                    self.sender.stop.request("the report cannot be written")
                    return

        async with anyio.create_task_group() as listers:
            for _ in range(concurrency):
                listers.start_soon(lister)
        if failure is not None:
            raise failure
        return not self.sender.stop.requested

    async def _list(self, project_id: str) -> None:
        self.flying[project_id] = anyio.Event()
        try:
            try:
                plans = await list_project(
                    self.api, self.sender, project_id, max_pages=self.max_pages
                )
            except RunAborted as exc:
                sender = self.sender
                if sender.stop.requested:
                    return
                if isinstance(exc, ListingFailed) and not exc.credentials:
                    # This project only: its items fail with the answer, the others go on.
                    self.console.warn(f"{exc}; its items fail, the other projects go on")
                    self.unlisted[project_id] = exc.attempt
                    self.listed.add(project_id)
                    self.progress.listed(len(self.listed), self.total)
                    return
                # Refused credentials (or a stop): no other project would fare better.
                sender.aborted = sender.aborted or str(exc)
                sender.stop.request("aborted")
                return
            if any(not plan.img_known for plan in plans):
                self.console.warn(
                    f"the plan list of project {project_id} does not show img_url; previous "
                    "thumbnails are unknown there, so undo cannot restore them"
                )
            current = {plan: url for (_, plan), url in thumbnails(plans).items()}
            if project_id not in self.known.snapshotted and current:
                self.journal.record_snapshot(project_id, current)
            self.previous.add(project_id, current)
            self.listed.add(project_id)
            self.progress.listed(len(self.listed), self.total)
        finally:
            self.flying.pop(project_id).set()
