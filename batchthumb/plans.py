"""Plans as the list call shows them: every page of a project, and pairing two projects.

Listing goes through the run's :class:`~batchthumb.sending.Sender`, so list calls are paced,
retried and throttled like every other request.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from batchthumb.client import PERMISSION_CODES
from batchthumb.errors import JobFileError, Problem, RunAborted
from batchthumb.files import MAPPING_FILE_LIMIT, FileRefused, read_regular
from batchthumb.model import DEFAULT_MAX_LIST_PAGES, Attempt, PlanPage, PlanSummary, Verdict
from batchthumb.sending import Sender, ThumbnailApi

# The documented maximum; the documented default is 1, so it is always sent (facts §1.1).
PAGE_SIZE = 200


class ListingFailed(RunAborted):
    """A project's plans could not be listed; ``attempt`` is the answer that said so."""

    def __init__(
        self,
        project_id: str,
        attempt: Attempt,
        rejected: str | None = None,
        *,
        message: str | None = None,
    ) -> None:
        self.project_id = project_id
        self.attempt = attempt
        # The credentials, not the project: no other project would fare better.
        self.credentials = rejected is not None or attempt.error_code in PERMISSION_CODES
        if message is not None:
            pass
        elif rejected is not None:
            message = f"{rejected}; check the credentials (listing project {project_id})"
        elif self.credentials:
            message = (
                f"the credentials have no access to project {project_id} ({describe(attempt)}); "
                "check that their user is a member with permission"
            )
        else:
            message = f"cannot list the plans of project {project_id}: {describe(attempt)}"
        super().__init__(message)

    @classmethod
    def inconsistent(cls, project_id: str, why: str) -> ListingFailed:
        """The answers came, but do not make one list: the project's items fail with ``why``."""
        message = f"cannot list the plans of project {project_id}: {why}"
        return cls(project_id, Attempt(Verdict.PERMANENT, error=why), message=message)


def describe(attempt: Attempt) -> str:
    """``HTTP 404 PM.02174100: the project does not exist`` or ``no answer: ...``."""
    code = f" {attempt.error_code}" if attempt.error_code else ""
    status = f"HTTP {attempt.http_status}" if attempt.http_status else "no answer"
    return f"{status}{code}: {attempt.error}"


async def list_project(
    api: ThumbnailApi,
    sender: Sender,
    project_id: str,
    *,
    plan_type: str | None = None,
    search: str | None = None,
    max_pages: int = DEFAULT_MAX_LIST_PAGES,
) -> tuple[PlanSummary, ...]:
    """Every plan of a project, all pages; raise :class:`ListingFailed` if a page cannot be had.

    Rejected credentials (401, 403 and the permission codes) say so in the message. A server
    cannot keep it listing forever: it stops at ``max_pages``, and a page that repeats what
    was listed, a ``total`` that changes between pages, more plans than the total, or a page
    longer than asked for are each a clear failure. An empty page ends the list (the
    documented way to stop should the total be off).
    """
    plans: dict[str, PlanSummary] = {}
    total: int | None = None

    def refuse(why: str) -> ListingFailed:
        return ListingFailed.inconsistent(
            project_id, f"{why} (the server's list is inconsistent; listing stopped there)"
        )

    for page_no in range(1, max_pages + 1):

        async def page(number: int = page_no) -> tuple[Attempt, PlanPage | None]:
            return await api.list_plans(
                project_id,
                page_no=number,
                page_size=PAGE_SIZE,
                plan_type=plan_type,
                search=search,
            )

        sent = await sender.send(page, subject=f"list {project_id} page {page_no}")
        if sent is None:
            raise RunAborted(f"stopped while listing the plans of project {project_id}")
        attempt, found, _ = sent
        if found is None:
            raise ListingFailed(project_id, attempt, sender.aborted)
        if not found.plans:
            return tuple(plans.values())
        if len(found.plans) > PAGE_SIZE:
            raise refuse(f"page {page_no} has {len(found.plans)} plans, {PAGE_SIZE} were asked for")
        if page_no > 1 and found.total != total:
            raise refuse(f"the total changed from {total} to {found.total} at page {page_no}")
        total = found.total
        new = {p.plan_id: p for p in found.plans if p.plan_id not in plans}
        if not new:
            raise refuse(f"page {page_no} repeats plans already listed")
        # A plan seen twice (the list shifted while it was read) is kept once.
        plans.update(new)
        if total is not None and len(plans) > total:
            raise refuse(
                f"{len(plans)} plans listed by page {page_no}, more than its total {total}"
            )
        # Stop at the total; without one, at the first page shorter than asked for.
        if total is None and len(found.plans) < PAGE_SIZE:
            return tuple(plans.values())
        if total is not None and page_no * PAGE_SIZE >= total:
            return tuple(plans.values())
    raise ListingFailed.inconsistent(
        project_id,
        f"the list goes on past {max_pages:,} pages of {PAGE_SIZE} plans; stopped there "
        "(--max-list-pages raises the limit)",
    )


def thumbnails(plans: Iterable[PlanSummary]) -> dict[tuple[str, str], str | None]:
    """(project_id, plan_id) -> img_url (None: no thumbnail) for the plans whose is known."""
    return {(p.project_id, p.plan_id): p.img_url for p in plans if p.img_known}


@dataclass(frozen=True, slots=True)
class Unpaired:
    """A plan migrate leaves alone, and why."""

    side: str  # "source" or "target"
    plan: PlanSummary
    reason: str


@dataclass(frozen=True, slots=True)
class Pairing:
    """Source plans paired with target plans, and every plan that could not be paired."""

    pairs: tuple[tuple[PlanSummary, PlanSummary], ...]
    unpaired: tuple[Unpaired, ...]


def pair_by_name(source: Sequence[PlanSummary], target: Sequence[PlanSummary]) -> Pairing:
    """Pair plans with the same name and type; a name used twice on either side is ambiguous."""
    sources: defaultdict[tuple[str, str], list[PlanSummary]] = defaultdict(list)
    targets: defaultdict[tuple[str, str], list[PlanSummary]] = defaultdict(list)
    for plan in source:
        sources[(plan.name, plan.type)].append(plan)
    for plan in target:
        targets[(plan.name, plan.type)].append(plan)
    pairs: list[tuple[PlanSummary, PlanSummary]] = []
    unpaired: list[Unpaired] = []
    for key, plans in sources.items():
        matches = targets.get(key, [])
        if len(plans) == 1 and len(matches) == 1:
            pairs.append((plans[0], matches[0]))
            continue
        if not matches:
            reason = "no target plan with this name and type"
        elif len(matches) > 1:
            reason = f"ambiguous: {len(matches)} target plans have this name and type"
        else:
            reason = f"ambiguous: {len(plans)} source plans have this name and type"
        unpaired.extend(Unpaired("source", plan, reason) for plan in plans)
    paired_targets = {t.plan_id for _, t in pairs}
    for key, plans in targets.items():
        if key in sources:
            if len(sources[key]) == 1 and len(plans) == 1:
                continue
            reason = "ambiguous: its name and type are not unique on both sides"
        else:
            reason = "no source plan with this name and type"
        unpaired.extend(
            Unpaired("target", plan, reason) for plan in plans if plan.plan_id not in paired_targets
        )
    return Pairing(tuple(pairs), tuple(unpaired))


def pair_by_mapping(
    path: Path, source: Sequence[PlanSummary], target: Sequence[PlanSummary]
) -> Pairing:
    """Pair plans as a CSV file says (``source_plan_id,target_plan_id``, header optional).

    Unknown ids, a source listed twice, and two sources mapped to one target are errors, each
    named by its line; the plans the file does not mention are reported as unpaired.
    """
    by_source = {p.plan_id: p for p in source}
    by_target = {p.plan_id: p for p in target}
    problems: list[Problem] = []
    pairs: list[tuple[PlanSummary, PlanSummary]] = []
    seen_source: dict[str, int] = {}
    seen_target: dict[str, int] = {}
    try:
        data = read_regular(path, limit=MAPPING_FILE_LIMIT, what="a mapping file")
        text = data.decode("utf-8-sig")
    except FileRefused as exc:
        raise JobFileError([Problem(str(path), 0, "", exc.reason)]) from None
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise JobFileError([Problem(str(path), line, "", "not UTF-8 text")]) from None
    reader = csv.reader(text.splitlines(), strict=True)
    try:
        rows = [(reader.line_num, row) for row in reader]
    except csv.Error as exc:
        bad = Problem(str(path), reader.line_num, "", f"not valid CSV: {exc}")
        raise JobFileError([bad]) from None
    for number, row in rows:
        cells = [cell.strip() for cell in row]
        if not any(cells) or cells[0].startswith("#"):
            continue
        if number == 1 and cells[:2] == ["source_plan_id", "target_plan_id"]:
            continue

        def problem(message: str, line: int = number) -> None:
            problems.append(Problem(str(path), line, "", message))

        if len(cells) != 2:
            problem("expected two columns: source_plan_id,target_plan_id")
            continue
        source_id, target_id = cells
        if source_id not in by_source:
            problem(f"source plan {source_id} is not a plan of the source project")
        if target_id not in by_target:
            problem(f"target plan {target_id} is not a plan of the target project")
        if source_id in seen_source:
            problem(f"source plan {source_id} is already mapped at line {seen_source[source_id]}")
        elif target_id in seen_target:
            problem(
                f"target plan {target_id} is already the target of line {seen_target[target_id]}"
            )
        seen_source.setdefault(source_id, number)
        seen_target.setdefault(target_id, number)
        if source_id in by_source and target_id in by_target and len(problems) == 0:
            pairs.append((by_source[source_id], by_target[target_id]))
    if problems:
        raise JobFileError(problems)
    if not pairs:
        raise JobFileError([Problem(str(path), 0, "", "maps no plans")])
    unpaired = [
        Unpaired("source", p, "not in the mapping file")
        for p in source
        if p.plan_id not in seen_source
    ]
    unpaired += [
        Unpaired("target", p, "not in the mapping file")
        for p in target
        if p.plan_id not in seen_target
    ]
    return Pairing(tuple(pairs), tuple(unpaired))
