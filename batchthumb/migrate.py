"""Moving thumbnails between projects: what to copy, and fetching images for review.

An ``img_url`` embeds the project it was uploaded to (facts §1.8), so a thumbnail moves by
download from the source, upload to the target, then PUT; the runner does that for items
whose image is a :class:`~batchthumb.model.SourceImage`, once per source image.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from batchthumb.errors import RunAborted, os_errors
from batchthumb.files import open_new
from batchthumb.images import image_type, upload_name
from batchthumb.jobwriter import Entry, csv_cell, write_text
from batchthumb.model import Attempt, Item, ItemResult, Outcome, SourceImage
from batchthumb.plans import Pairing
from batchthumb.report import ReportState
from batchthumb.sending import Sender, ThumbnailApi


@dataclass(frozen=True, slots=True)
class Migration:
    """The items that copy thumbnails, and the paired plans that have nothing to copy."""

    items: tuple[Item, ...]
    names: dict[str, str]  # target plan_id -> name, for comments
    nothing: tuple[str, ...]  # why some pairs are left alone


def plan_migration(pairing: Pairing) -> Migration:
    """An item per paired source plan that has a thumbnail."""
    items: list[Item] = []
    names: dict[str, str] = {}
    nothing: list[str] = []
    for source, target in pairing.pairs:
        names[target.plan_id] = f"{target.name} ({target.type})"
        if not source.img_known:
            nothing.append(f"{source.plan_id} {source.name!r}: source thumbnail unknown")
        elif source.img_url is None:
            nothing.append(f"{source.plan_id} {source.name!r}: the source plan has no thumbnail")
        else:
            image = SourceImage(source.project_id, source.img_url)
            items.append(Item(target.project_id, target.plan_id, None, image=image))
    return Migration(tuple(items), names, tuple(nothing))


@dataclass(frozen=True, slots=True)
class PairPlan:
    """One project pair of a migration: how its plans paired, and what it copies."""

    source: str
    target: str
    pairing: Pairing
    migration: Migration


UNPAIRED_HEADER = (
    "source_project", "target_project", "side", "plan_id", "name", "type", "why", "reason",
)  # fmt: skip


def unpaired_csv(pairs: Iterable[PairPlan]) -> str:
    """The plans left unpaired, per project pair, as CSV (columns: :data:`UNPAIRED_HEADER`)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(UNPAIRED_HEADER)
    for pair in pairs:
        for entry in pair.pairing.unpaired:
            plan = entry.plan
            cells = (pair.source, pair.target, entry.side, plan.plan_id, plan.name, plan.type,
                     entry.why, entry.reason)  # fmt: skip
            writer.writerow([csv_cell(cell) for cell in cells])
    return out.getvalue()


async def fetch_images(
    api: ThumbnailApi, sender: Sender, migration: Migration, folder: Path, *, base: Path
) -> list[Entry]:
    """Download each source image once into ``folder``; entries referring to the files."""
    saved: dict[str, str] = {}
    entries: list[Entry] = []
    for item in migration.items:
        assert isinstance(item.image, SourceImage)
        source = item.image
        if source.img_url not in saved:

            async def download(image: SourceImage = source) -> tuple[Attempt, bytes | None]:
                return await api.download_image(image.project_id, image.img_url)

            sent = await sender.send(download, subject=f"download {source.img_url}")
            if sent is None or sent[1] is None:
                why = "stopped" if sent is None else sent[0].error or f"HTTP {sent[0].http_status}"
                raise RunAborted(f"cannot download {source.img_url}: {why}")
            data = sent[1]
            if image_type(data) is None:
                raise RunAborted(f"{source.img_url} did not download as an image")
            path = folder / upload_name(data)
            write_bytes(path, data)
            saved[source.img_url] = path.relative_to(base).as_posix()
        entries.append(
            Entry(
                item.project_id,
                item.plan_id,
                image=saved[source.img_url],
                note=migration.names.get(item.plan_id, ""),
            )
        )
    return entries


def write_bytes(path: Path, data: bytes) -> None:
    """Write a downloaded image."""
    with os_errors(path, "write the image"):
        path.parent.mkdir(parents=True, exist_ok=True)
        with open_new(path) as file:  # never through a symlink planted in the folder
            file.write(data)


def write_unpaired(path: Path, pairs: Iterable[PairPlan]) -> None:
    """Write the unpaired plans beside the job or report."""
    write_text(path, unpaired_csv(pairs))


def summary_lines(pairing: Pairing, migration: Migration, *, limit: int = 10) -> Sequence[str]:
    """What the pairing found, for stderr."""
    lines = [
        f"{len(pairing.pairs)} plans paired, {len(migration.items)} with a thumbnail to copy, "
        f"{len(pairing.unpaired)} unpaired"
    ]
    for entry in pairing.unpaired[:limit]:
        plan = entry.plan
        lines.append(
            f"  unpaired {entry.side} {plan.plan_id} {plan.name!r} ({plan.type}): {entry.reason}"
        )
    if len(pairing.unpaired) > limit:
        lines.append(f"  ... and {len(pairing.unpaired) - limit} more")
    return lines


class PairWatch:
    """Says when each project pair of a run is done: all of its items still to send recorded."""

    def __init__(
        self, pairs: Sequence[PairPlan], pending: Iterable[Item], say: Callable[[str], None]
    ) -> None:
        self._pairs = {pair.target: (number, pair) for number, pair in enumerate(pairs, 1)}
        self._left = Counter(item.project_id for item in pending)
        self._tallies: dict[str, Counter[Outcome]] = {target: Counter() for target in self._pairs}
        self._say = say

    def __call__(self, result: ItemResult) -> None:
        """Count one recorded result; announce its pair when it was the pair's last."""
        target = result.project_id
        tally = self._tallies[target]
        tally[result.outcome] += 1
        self._left[target] -= 1
        if self._left[target] == 0:
            number, pair = self._pairs[target]
            self._say(
                f"pair {number}/{len(self._pairs)} {pair.source} -> {pair.target} finished: "
                f"{tally[Outcome.SUCCEEDED]} set, {tally[Outcome.FAILED]} failed, "
                f"{tally[Outcome.SKIPPED]} already set"
            )


def pair_summary(pairs: Sequence[PairPlan], recorded: ReportState) -> list[str]:
    """Per pair, from the report: items done, failed and not yet sent, and plans left alone."""
    lines = []
    for number, pair in enumerate(pairs, 1):
        done = failed = 0
        for item in pair.migration.items:
            done += recorded.is_done(item.key)
            failed += recorded.has_failed(item.key)
        left = len(pair.migration.items) - done - failed
        lines.append(
            f"pair {number}/{len(pairs)} {pair.source} -> {pair.target}: {done} done, "
            f"{failed} failed, {left} not sent; {len(pair.pairing.unpaired)} unpaired, "
            f"{len(pair.migration.nothing)} with nothing to copy"
        )
    return lines
