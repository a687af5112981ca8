"""Plans as the list call shows them: every page of a project, and pairing two projects.

Listing goes through the run's :class:`~batchthumb.sending.Sender`, so list calls are paced,
retried and throttled like every other request.
"""

from __future__ import annotations

import csv
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from batchthumb.client import PERMISSION_CODES
from batchthumb.errors import JobFileError, Problem, ProjectNotFound, RunAborted
from batchthumb.files import MAPPING_FILE_LIMIT, FileRefused, read_regular
from batchthumb.model import (
    DEFAULT_MAX_LIST_PAGES,
    PROJECT_ID,
    Attempt,
    PlanPage,
    PlanSummary,
    Verdict,
)
from batchthumb.sending import Sender, ThumbnailApi

# The documented maximum; the documented default is 1, so it is always sent (facts §1.1).
PAGE_SIZE = 200
# "The project does not exist or has been deleted" (facts §5.2).
NO_SUCH_PROJECT = "PM.02152005"


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
        # Not super(): in MissingProject the next class is ProjectNotFound, with its own init.
        RunAborted.__init__(self, message)

    @classmethod
    def inconsistent(cls, project_id: str, why: str) -> ListingFailed:
        """The answers came, but do not make one list: the project's items fail with ``why``."""
        message = f"cannot list the plans of project {project_id}: {why}"
        return cls(project_id, Attempt(Verdict.PERMANENT, error=why), message=message)


class MissingProject(ListingFailed, ProjectNotFound):
    """The list call says the project does not exist (or was deleted): a listing failure that
    ``migrate`` reports by the line of its pairs file."""


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
            if attempt.error_code == NO_SUCH_PROJECT:
                raise MissingProject(project_id, attempt, sender.aborted)
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


# Why a plan is left unpaired, as the unpaired CSV's `why` column says it.
NO_PARTNER = "no partner"
AMBIGUOUS = "ambiguous"
TYPE_MISMATCH = "type mismatch"
NOT_MAPPED = "not mapped"


@dataclass(frozen=True, slots=True)
class Unpaired:
    """A plan migrate leaves alone, why (one of the constants above), and in words."""

    side: str  # "source" or "target"
    plan: PlanSummary
    why: str
    reason: str


@dataclass(frozen=True, slots=True)
class Pairing:
    """Source plans paired with target plans, and every plan that could not be paired."""

    pairs: tuple[tuple[PlanSummary, PlanSummary], ...]
    unpaired: tuple[Unpaired, ...]


def exact_name(name: str) -> str:
    """The name as it is: ``--match name``."""
    return name


def loose_name(name: str) -> str:
    """``--match name-loose``: NFKC-normalised, case-folded, whitespace trimmed and collapsed."""
    return " ".join(unicodedata.normalize("NFKC", name).casefold().split())


def pair_by_name(
    source: Sequence[PlanSummary],
    target: Sequence[PlanSummary],
    *,
    normalise: Callable[[str], str] = exact_name,
) -> Pairing:
    """Pair plans with the same name (as ``normalise`` sees it) and type; never guess.

    A name and type held by more than one plan on either side is ambiguous: all of them stay
    unpaired. A plan whose name the other side has only with another type is a type mismatch.
    """
    sides = {"source": _by_key(source, normalise), "target": _by_key(target, normalise)}
    types = {side: _types_by_name(groups) for side, groups in sides.items()}
    pairs: list[tuple[PlanSummary, PlanSummary]] = []
    unpaired: list[Unpaired] = []
    for side, other in (("source", "target"), ("target", "source")):
        for key, plans in sides[side].items():
            matches = sides[other].get(key, [])
            if len(plans) == 1 and len(matches) == 1:
                if side == "source":
                    pairs.append((plans[0], matches[0]))
                continue
            if matches:
                why = AMBIGUOUS
                reason = (
                    f"{len(plans)} {side} and {len(matches)} {other} plans have this name and type"
                )
            elif types[other].get(key[0]):
                why = TYPE_MISMATCH
                found = ", ".join(sorted(types[other][key[0]]))
                reason = f"the {other} project has this name only as type {found}"
            else:
                why, reason = NO_PARTNER, f"no {other} plan has this name"
            unpaired.extend(Unpaired(side, plan, why, reason) for plan in plans)
    return Pairing(tuple(pairs), tuple(unpaired))


def _by_key(
    plans: Iterable[PlanSummary], normalise: Callable[[str], str]
) -> dict[tuple[str, str], list[PlanSummary]]:
    groups: defaultdict[tuple[str, str], list[PlanSummary]] = defaultdict(list)
    for plan in plans:
        groups[(normalise(plan.name), plan.type)].append(plan)
    return groups


def _types_by_name(groups: dict[tuple[str, str], list[PlanSummary]]) -> dict[str, set[str]]:
    types: defaultdict[str, set[str]] = defaultdict(set)
    for name, plan_type in groups:
        types[name].add(plan_type)
    return types


def csv_rows(path: Path, header: Sequence[str], what: str) -> Iterator[tuple[int, list[str]]]:
    """(line number, stripped cells) of a CSV file (``what``: "a mapping file"...); blank
    lines, ``#`` comments and a first line equal to ``header`` left out.

    A file that cannot be read, is too large, is not UTF-8 or not valid CSV is a
    :class:`JobFileError` naming its line, raised before any row is given out.
    """
    try:
        data = read_regular(path, limit=MAPPING_FILE_LIMIT, what=what)
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
        if number == 1 and cells[:2] == list(header):
            continue
        yield number, cells


@dataclass(frozen=True, slots=True)
class ProjectPair:
    """One line of a ``--projects`` file: a source project and its target."""

    line: int
    source: str
    target: str


PROJECTS_HEADER = ("source_project", "target_project")


def read_project_pairs(path: Path, *, same_side: bool) -> tuple[ProjectPair, ...]:
    """The pairs a ``--projects`` CSV lists (``source_project,target_project``, header optional).

    Each problem names its line: not two project ids, a source or a target listed twice, or
    (``same_side``: both on one endpoint) a project paired with itself.
    """
    problems: list[Problem] = []
    pairs: list[ProjectPair] = []
    seen: dict[str, dict[str, int]] = {"source": {}, "target": {}}
    for number, cells in csv_rows(path, PROJECTS_HEADER, "a projects file"):

        def problem(message: str, line: int = number) -> None:
            problems.append(Problem(str(path), line, "", message))

        if len(cells) != 2:
            problem("expected two columns: source_project,target_project")
            continue
        bad = [cell for cell in cells if not PROJECT_ID.fullmatch(cell)]
        if bad:
            problem(f"{bad[0]!r} is not a project id (32 letters or digits)")
            continue
        ok = True
        for side, project in zip(("source", "target"), cells, strict=True):
            if project in seen[side]:
                problem(f"{side} project {project} is already listed at line {seen[side][project]}")
                ok = False
            seen[side].setdefault(project, number)
        if same_side and cells[0] == cells[1]:
            problem(f"project {cells[0]} is paired with itself")
            ok = False
        if ok:
            pairs.append(ProjectPair(number, cells[0], cells[1]))
    if problems:
        raise JobFileError(problems)
    if not pairs:
        raise JobFileError([Problem(str(path), 0, "", "lists no project pairs")])
    return tuple(pairs)


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
    rows = csv_rows(path, ("source_plan_id", "target_plan_id"), "a mapping file")
    for number, cells in rows:

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
        Unpaired("source", p, NOT_MAPPED, "not in the mapping file")
        for p in source
        if p.plan_id not in seen_source
    ]
    unpaired += [
        Unpaired("target", p, NOT_MAPPED, "not in the mapping file")
        for p in target
        if p.plan_id not in seen_target
    ]
    return Pairing(tuple(pairs), tuple(unpaired))
