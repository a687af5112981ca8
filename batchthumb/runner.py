"""The run: a fixed pool of workers in one task group, pulling items from a shared stream.

Each worker takes the next item, waits for the rate governor, sends, classifies, retries what is
worth retrying, and journals the outcome. A million items never become a million tasks. The
runner never prints and never exits; it returns a :class:`RunSummary`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol

import anyio

from batchthumb.errors import ReportError
from batchthumb.images import ImageProblem, read_image, upload_name
from batchthumb.model import (
    Attempt,
    Item,
    ItemResult,
    LocalImage,
    Outcome,
    Tally,
    Verdict,
    failure_label,
)
from batchthumb.progress import Progress, Silent
from batchthumb.ratelimit import GovernorStats
from batchthumb.sending import Channel, Sender, ThumbnailApi

Key = tuple[str, str]


class Recorder(Protocol):
    """Where finished items and uploads go (the journal)."""

    def record(self, result: ItemResult) -> None:
        """Keep one result durably before the next item counts."""
        ...

    def record_upload(self, project_id: str, cache_key: str, img_url: str) -> None:
        """Keep one upload durably, so that a resumed run does not upload it again."""
        ...


class Listings(Protocol):
    """The plans' thumbnails before the run, listed per project when first needed."""

    async def ready(self, project_id: str) -> bool:
        """Wait until the project's plans are known and journaled; False: send nothing."""
        ...

    @property
    def unlisted(self) -> Mapping[str, Attempt]:
        """The projects that could not be listed, and the answer that said so."""
        ...

    def shows(self, project_id: str, img_url: str) -> bool:
        """Whether a plan of the (listed) project showed ``img_url`` before the run."""
        ...


@dataclass(frozen=True, slots=True)
class RunSummary:
    """What a run did, for the summary and the exit code."""

    tally: Tally
    elapsed: float
    requests: int
    governor: GovernorStats
    stopped: str | None = None  # why the run stopped before the end, if it did
    aborted: str | None = None  # why the run gave up, if it did
    source_governor: GovernorStats | None = None  # a migration's source side, when separate


@dataclass(slots=True)
class _Resolved:
    """An item's thumbnail as an uploaded URL, or the answer that stopped it from being one."""

    img_url: str | None
    attempt: Attempt
    attempts: int = 0


@dataclass(slots=True)
class Uploads:
    """Single-flight uploads: each (project, image) is uploaded once, whoever needs it first.

    ``done`` maps (project_id, cache key) to the uploaded img_url; a resumed run starts with
    what the journal recorded, so it uploads nothing twice. ``remembered`` holds what earlier
    reports uploaded: used (and journaled again) only where the project's listing shows it.
    """

    done: dict[Key, str] = field(default_factory=dict)
    remembered: dict[Key, str] = field(default_factory=dict)
    failed: dict[Key, Attempt] = field(default_factory=dict)
    flying: dict[Key, anyio.Event] = field(default_factory=dict)


@dataclass(slots=True)
class _Batch:
    api: ThumbnailApi
    sender: Sender
    journal: Recorder
    progress: Progress
    uploads: Uploads
    previous: Mapping[Key, str | None]
    listings: Listings | None
    clock: Callable[[], float]
    downloads: Channel  # where source images come from: this side, or a migration's source
    stamp: Callable[[], str] = field(default_factory=lambda: UtcStamp())
    tally: Tally = field(default_factory=Tally)
    streak: tuple[object, int] = (None, 0)  # (failure signature, items in a row)
    fatal: ReportError | None = None  # the journal failed: the run cannot go on

    def fail(self, error: ReportError) -> None:
        """Stop at once: without a journal, nothing more may be sent."""
        if self.fatal is None:
            self.fatal = error
        self.sender.stop.force("the report cannot be written")

    async def work(self, items: Iterator[Item]) -> None:
        for item in items:
            if self.sender.stop.requested:
                return
            result = await self.process(item)
            if result is None:
                return
            try:
                self.journal.record(result)
            except ReportError as exc:
                self.fail(exc)
                return
            self.tally.add(result)
            self.progress.update(self.tally)
            if result.outcome is Outcome.FAILED:
                self.sender.events.emit("item_failed", **_event_fields(result))
            self.trip_breaker(result)

    async def process(self, item: Item) -> ItemResult | None:
        """Resolve the item's image, then PUT it; None when the run stopped first."""
        began = self.clock()
        listings = self.listings
        if listings is not None:  # the project's listing first: it is journaled before any change
            try:
                if not await listings.ready(item.project_id):
                    return None
            except ReportError as exc:
                self.fail(exc)
                return None
            unlisted = listings.unlisted.get(item.project_id)
            if unlisted is not None:  # the project could not be listed: its items fail unsent
                listing = _prefixed(unlisted, "listing the project")
                return self.result(item, item.img_url, listing, Outcome.FAILED, 0, began)
        img_url = item.img_url
        attempts = 0
        if img_url is None:  # an image to upload first; most items name their img_url
            resolved = await self.resolve(item)
            if resolved is None:
                return None
            if resolved.img_url is None:
                attempt = resolved.attempt
                return self.result(item, None, attempt, Outcome.FAILED, resolved.attempts, began)
            img_url, attempts = resolved.img_url, resolved.attempts
        previous = self.previous
        # img_url is a str here, so neither an unknown plan nor one without a thumbnail matches.
        if previous and previous.get(item.key) == img_url:
            already = Attempt(Verdict.OK, error="already set")
            return self.result(item, img_url, already, Outcome.SKIPPED, attempts, began)
        api = self.api
        subject = f"plan {item.plan_id}"
        sent = await self.sender.send_attempt(
            api.set_thumbnail, item.project_id, item.plan_id, img_url, subject=subject
        )
        if sent is None:
            return None
        attempt, more = sent
        outcome = Outcome.SUCCEEDED if attempt.verdict is Verdict.OK else Outcome.FAILED
        return self.result(item, img_url, attempt, outcome, attempts + more, began)

    async def resolve(self, item: Item) -> _Resolved | None:
        """The item's uploaded img_url: its image uploaded first (once per project and image)."""
        assert item.image is not None
        key = (item.project_id, item.image.cache_key)
        uploads = self.uploads
        while True:
            if key in uploads.done:
                return _Resolved(uploads.done[key], Attempt(Verdict.OK))
            if key in uploads.remembered:  # an earlier run's: kept if a plan shows it, else dropped
                self.trust(key, uploads.remembered.pop(key))
                continue
            if key in uploads.failed:
                return _Resolved(None, uploads.failed[key])
            flying = uploads.flying.get(key)
            if flying is None:
                break
            await flying.wait()
            if self.sender.stop.requested:
                return None
        uploads.flying[key] = anyio.Event()
        try:
            resolved = await self.upload(item)
            if resolved is not None and resolved.img_url is not None:
                uploads.done[key] = resolved.img_url
                try:
                    self.journal.record_upload(
                        item.project_id, item.image.cache_key, resolved.img_url
                    )
                except ReportError as exc:
                    self.fail(exc)
                    return None
            elif resolved is not None:
                uploads.failed[key] = resolved.attempt
            return resolved
        finally:
            uploads.flying.pop(key).set()

    def trust(self, key: Key, img_url: str) -> None:
        """Take an earlier run's upload if a plan of its project shows it: the server has it."""
        listings = self.listings
        if listings is None or not listings.shows(key[0], img_url):
            return
        try:
            self.journal.record_upload(key[0], key[1], img_url)  # kept as the history rotates
        except ReportError as exc:
            self.fail(exc)
            return
        self.uploads.done[key] = img_url

    async def upload(self, item: Item) -> _Resolved | None:
        image = item.image
        assert image is not None
        attempts = 0
        if isinstance(image, LocalImage):
            try:
                data = read_image(image)
            except ImageProblem as exc:
                return _Resolved(None, Attempt(Verdict.PERMANENT, error=str(exc)))
        else:
            source = image
            downloads = self.downloads

            async def download() -> tuple[Attempt, bytes | None]:
                return await downloads.api.download_image(source.project_id, source.img_url)

            fetched = await downloads.sender.send(download, subject=f"download {source.img_url}")
            if fetched is None:
                return None
            attempt, body, attempts = fetched
            if body is None:
                return _Resolved(None, _prefixed(attempt, "download"), attempts)
            data = body
        name = upload_name(data)

        async def upload() -> tuple[Attempt, str | None]:
            return await self.api.upload_image(item.project_id, data, name)

        sent = await self.sender.send(upload, subject=f"upload {image.cache_key}")
        if sent is None:
            return None
        attempt, img_url, more = sent
        if img_url is None:
            attempt = _prefixed(attempt, "upload")
        return _Resolved(img_url, attempt, attempts + more)

    def result(
        self,
        item: Item,
        img_url: str | None,
        attempt: Attempt,
        outcome: Outcome,
        attempts: int,
        began: float,
    ) -> ItemResult:
        previous = self.previous
        return ItemResult(
            project_id=item.project_id,
            plan_id=item.plan_id,
            img_url=img_url,
            outcome=outcome,
            http_status=attempt.http_status,
            error_code=attempt.error_code,
            error=attempt.error,
            attempts=attempts,
            elapsed_ms=round((self.clock() - began) * 1000),
            finished_at=self.stamp(),
            request_id=attempt.request_id,
            previous_img_url=previous.get(item.key) if previous else None,
            previous_known=bool(previous) and item.key in previous,
        )

    def trip_breaker(self, result: ItemResult) -> None:
        """Stop when items keep failing the same permanent way: the job, not the item, is wrong."""
        if self.sender.retry.breaker <= 0:
            return
        status = result.http_status
        # A 4xx other than 408/429 is the request's own fault; no answer at all after every
        # retry (a wrong host or port) is the endpoint's. 5xx and throttling are passing.
        permanent = status is None or (400 <= status < 500 and status not in (408, 429))
        if result.outcome is not Outcome.FAILED or not permanent:
            self.streak = (None, 0)
            return
        signature = failure_label(result)
        count = self.streak[1] + 1 if self.streak[0] == signature else 1
        self.streak = (signature, count)
        if count >= self.sender.retry.breaker and self.sender.aborted is None:
            how = f"HTTP {status} {result.error_code or ''}".strip() if status else signature
            self.sender.aborted = (
                f"{count} items in a row failed with {how} ({result.error}); "
                "check the endpoint and the job before running again"
            )
            self.sender.stop.request("aborted")


class UtcStamp:
    """The time now as ``datetime.now(UTC).isoformat(timespec="milliseconds")`` would give it.

    The date and time of day are formatted once per second, not once per item: building a
    datetime for every finished item was a measurable share of the client's CPU.
    """

    def __init__(self, clock: Callable[[], int] = time.time_ns) -> None:
        self._clock = clock  # nanoseconds since the epoch
        self._second = self._millis = -1
        self._prefix = self._text = ""

    def __call__(self) -> str:
        """``YYYY-MM-DDTHH:MM:SS.mmm+00:00``, in UTC."""
        millis = self._clock() // 1_000_000
        if millis != self._millis:  # several items finish within a millisecond at full speed
            second, milli = divmod(millis, 1000)
            if second != self._second:
                self._second = second
                self._prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S.")
            self._millis = millis
            self._text = f"{self._prefix}{milli:03d}+00:00"
        return self._text


def _prefixed(attempt: Attempt, step: str) -> Attempt:
    """Say which step of an item failed: the image's download or upload, not the PUT."""
    error = f"{step} failed: {attempt.error}" if attempt.error else f"{step} failed"
    return replace(attempt, error=error)


def _event_fields(result: ItemResult) -> dict[str, Any]:
    return {
        "project_id": result.project_id,
        "plan_id": result.plan_id,
        "http_status": result.http_status,
        "error_code": result.error_code,
        "error": result.error,
        "attempts": result.attempts,
    }


async def run_batch(
    items: Iterable[Item],
    *,
    api: ThumbnailApi,
    sender: Sender,
    journal: Recorder,
    concurrency: int,
    progress: Progress | None = None,
    uploads: Uploads | None = None,
    previous: Mapping[Key, str | None] | None = None,
    downloads: Channel | None = None,
    listings: Listings | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> RunSummary:
    """Set every item's thumbnail with ``concurrency`` workers; journal each outcome.

    ``sender`` paces, retries and stops every request (:class:`~batchthumb.sending.Sender`).
    Items with an ``image`` have it uploaded first, once per (project, image), through the
    same sender; ``uploads`` starts with what earlier runs uploaded. ``previous``
    maps the plans whose thumbnail is known to it (None: none): those are recorded as the
    previous state, and an item already showing its img_url is skipped without a PUT.
    Source images are downloaded through ``downloads`` (a migration's source side, with its
    own API and sender sharing ``sender``'s stop), else through ``api`` and ``sender``.
    ``listings``, when given, is waited for before each item: it lists the item's project (once)
    and fills ``previous``; the items of a project it could not list fail with the answer its
    listing got, unsent. The summary counts every request the sender sent, listings included.
    """
    separate = downloads is not None
    downloads = downloads or Channel(api, sender)
    run = _Batch(
        api=api,
        sender=sender,
        journal=journal,
        progress=progress or Silent(),
        uploads=uploads or Uploads(),
        previous=previous if previous is not None else {},
        listings=listings,
        clock=clock,
        downloads=downloads,
    )
    began = clock()
    shared = iter(items)  # one iterator for all workers: each item is taken exactly once
    async with anyio.create_task_group() as outer:
        outer.start_soon(run.progress.heartbeat, run.tally)
        async with anyio.create_task_group() as workers:
            sender.stop.bind(workers.cancel_scope)
            for _ in range(concurrency):
                workers.start_soon(run.work, shared)
        outer.cancel_scope.cancel()
    run.progress.close()
    if run.fatal is not None:
        raise run.fatal  # outside the task groups: one clear error, not an exception group
    reason = sender.stop.reason
    # Every request the senders sent, listings included; a migration's source has its own.
    requests = sender.requests + (downloads.sender.requests if separate else 0)
    aborted = sender.aborted
    if separate and aborted is None and downloads.sender.aborted is not None:
        aborted = f"the source side: {downloads.sender.aborted}"
    return RunSummary(
        tally=run.tally,
        elapsed=clock() - began,
        requests=requests,
        governor=sender.governor.stats,
        stopped=reason if reason != "aborted" else None,
        aborted=aborted,
        source_governor=downloads.sender.governor.stats if separate else None,
    )
