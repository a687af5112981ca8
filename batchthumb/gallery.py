"""The before/after gallery: static HTML pages showing each plan's old and new thumbnail.

The pages are written into a folder with every image beside them, so they work offline, from
a file:// URL, and hold no credentials: the images are downloaded once each, through the API
(paced like every request of a run), and the pages refer to the copies. Failures come first;
plain inline JS filters by outcome. Plans are split into pages of ``PAGE_SIZE``, so a report
of 100,000 plans makes 500 small pages instead of one that no browser can scroll.

Everything taken from a report or a server (plan names, messages, URLs) is HTML-escaped.
"""

from __future__ import annotations

import hashlib
import html
import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import anyio

from batchthumb.errors import RunAborted, os_errors
from batchthumb.images import image_type
from batchthumb.model import Attempt, Outcome, RunSettings
from batchthumb.plans import list_project
from batchthumb.sending import Sender, ThumbnailApi
from batchthumb.session import Connection, open_session
from batchthumb.summarize import ORDER, PlanLine, ReportFile, Summary, summarize

PAGE_SIZE = 200
IMAGES = "images"
# Nothing from the network: the page shows the copies beside it and its own inline code.
CSP = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'"


class Thumbnails(Protocol):
    """Where the gallery gets plan names and image bytes."""

    async def plan_names(self, project_id: str) -> dict[str, str]:
        """plan_id -> name for a project's plans ({} when they cannot be listed)."""
        ...

    async def image(self, project_id: str, img_url: str) -> bytes | None:
        """An image's bytes, or None when it cannot be downloaded."""
        ...


class ApiThumbnails:
    """:class:`Thumbnails` through the API: list calls and downloads, paced by ``sender``."""

    def __init__(self, api: ThumbnailApi, sender: Sender) -> None:
        self._api = api
        self._sender = sender

    async def plan_names(self, project_id: str) -> dict[str, str]:
        """Names from one paginated listing of the project (nothing if it cannot be listed)."""
        try:
            plans = await list_project(self._api, self._sender, project_id)
        except RunAborted:
            self._check()
            return {}
        return {plan.plan_id: plan.name for plan in plans}

    async def image(self, project_id: str, img_url: str) -> bytes | None:
        """The image's bytes when the download answers with an image."""

        async def download() -> tuple[Attempt, bytes | None]:
            return await self._api.download_image(project_id, img_url)

        sent = await self._sender.send(download, subject=f"download {img_url}")
        self._check()
        if sent is None or sent[1] is None or image_type(sent[1]) is None:
            return None
        return sent[1]

    def _check(self) -> None:
        if self._sender.aborted:
            raise RunAborted(
                f"credentials rejected while building the gallery: {self._sender.aborted}"
            )


@dataclass(frozen=True, slots=True)
class Gallery:
    """What was written: where the first page is, and how much the pages show."""

    index: Path
    pages: int
    plans: int
    images: int  # distinct images downloaded
    unavailable: int  # distinct images that could not be downloaded


async def build_gallery(
    reports: Sequence[ReportFile],
    summary: Summary,
    folder: Path,
    *,
    source: Thumbnails,
    concurrency: int = 8,
    page_size: int = PAGE_SIZE,
) -> Gallery:
    """Write the pages of ``reports`` (summed up in ``summary``) and their images to ``folder``."""
    with os_errors(folder, "write the gallery"):
        (folder / IMAGES).mkdir(parents=True, exist_ok=True)
    names: dict[str, dict[str, str]] = {}
    for project in _projects(reports):
        names[project] = await source.plan_names(project)
    images = _Images(folder, source, concurrency)
    pages = max(1, -(-summary.plans // page_size))
    count = 0
    for number, chunk in enumerate(_chunks(_failures_first(reports), page_size), 1):
        await images.fetch(chunk)
        body = "".join(_card(plan, names, images) for plan in chunk)
        _write(folder / page_name(number), _page(summary, number, pages, chunk, body))
        count += len(chunk)
    if count == 0:
        _write(folder / page_name(1), _page(summary, 1, 1, [], ""))
    return Gallery(folder / page_name(1), pages, count, images.saved, images.missing)


async def write_gallery(
    reports: Sequence[ReportFile],
    folder: Path,
    connection: Connection,
    settings: RunSettings,
    page_size: int = PAGE_SIZE,
) -> Gallery:
    """The gallery of ``reports`` through an open connection (a run's, or a fresh one)."""
    summary = summarize(reports)
    async with open_session(connection, settings) as (api, sender):
        return await build_gallery(
            reports,
            summary,
            folder,
            source=ApiThumbnails(api, sender),
            concurrency=settings.concurrency,
            page_size=page_size,
        )


def page_name(number: int) -> str:
    """The file of page ``number`` (1-based): the first page is index.html."""
    return "index.html" if number == 1 else f"page-{number}.html"


def _projects(reports: Sequence[ReportFile]) -> list[str]:
    seen: dict[str, None] = {}
    for report in reports:
        for plan in report.plans():
            seen.setdefault(plan.result.project_id)
    return list(seen)


def _failures_first(reports: Sequence[ReportFile]) -> Iterator[PlanLine]:
    for outcome in ORDER:
        for report in reports:
            yield from report.plans(outcome)


def _chunks(plans: Iterable[PlanLine], size: int) -> Iterator[list[PlanLine]]:
    iterator = iter(plans)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def _write(path: Path, text: str) -> None:
    with os_errors(path, "write the gallery"):
        path.write_text(text, encoding="utf-8")


class _Images:
    """Each distinct image downloaded once into ``folder/images``, named by its URL's hash."""

    def __init__(self, folder: Path, source: Thumbnails, concurrency: int) -> None:
        self._folder = folder
        self._source = source
        self._limit = anyio.CapacityLimiter(max(1, concurrency))
        self._files: dict[str, str | None] = {}  # img_url -> file under folder, None: unavailable
        self.saved = 0
        self.missing = 0

    def file(self, img_url: str | None) -> str | None:
        """The local copy of ``img_url`` (relative to the pages), if it could be had."""
        return None if img_url is None else self._files.get(img_url)

    async def fetch(self, plans: Sequence[PlanLine]) -> None:
        """Download the images of ``plans`` not downloaded yet, a few at a time."""
        wanted: dict[str, str] = {}
        for plan in plans:
            r = plan.result
            for url in (r.previous_img_url, r.img_url):
                if url is not None and url not in self._files:
                    wanted.setdefault(url, r.project_id)
        failure: RunAborted | None = None

        async def one(url: str, project: str) -> None:
            nonlocal failure
            async with self._limit:
                if failure is not None:
                    return
                try:
                    data = await self._source.image(project, url)
                except RunAborted as exc:  # raised below, outside the task group
                    failure = exc
                    return
            self._store(url, data)

        async with anyio.create_task_group() as tasks:
            for url, project in wanted.items():
                tasks.start_soon(one, url, project)
        if failure is not None:
            raise failure

    def _store(self, url: str, data: bytes | None) -> None:
        if data is None:
            self._files[url] = None
            self.missing += 1
            return
        name = f"{IMAGES}/{hashlib.sha256(url.encode()).hexdigest()[:24]}.{image_type(data)}"
        path = self._folder / name
        with os_errors(path, "write the gallery"):
            path.write_bytes(data)
        self._files[url] = name
        self.saved += 1


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _card(plan: PlanLine, names: dict[str, dict[str, str]], images: _Images) -> str:
    r = plan.result
    name = names.get(r.project_id, {}).get(r.plan_id)
    title = _e(name) if name else f'<span class="muted">plan {_e(r.plan_id[:8])}…</span>'
    if r.outcome is Outcome.SKIPPED:
        before_label, after_label = "current", "wanted (already set)"
    elif r.outcome is Outcome.FAILED:
        before_label, after_label = "current", "wanted (not applied)"
    else:
        before_label, after_label = "before", "after"
    before = (
        _image(images.file(r.previous_img_url), r.previous_img_url, before_label)
        if r.previous_known
        else _empty(before_label, "unknown")
    )
    after = _image(images.file(r.img_url), r.img_url, after_label)
    error = ""
    if r.outcome is Outcome.FAILED:
        code = r.error_code or (f"HTTP {r.http_status}" if r.http_status else "no answer")
        error = f'<p class="error"><b>{_e(code)}</b> {_e(r.error or "")}</p>'
    elif r.error:
        error = f'<p class="note">{_e(r.error)}</p>'
    return f"""<article class="card {r.outcome.value}" data-outcome="{r.outcome.value}">
<header><h2 title="{_e(name or r.plan_id)}">{title}</h2>
<span class="badge">{r.outcome.value}</span></header>
<div class="pair">{before}<span class="arrow" aria-hidden="true">→</span>{after}</div>
{error}<p class="ids">project {_e(r.project_id)}<br>plan {_e(r.plan_id)}</p>
</article>
"""


def _image(file: str | None, url: str | None, label: str) -> str:
    if url is None:
        return _empty(label, "none")
    if file is None:
        return _empty(label, "unavailable", title=url)
    return (
        f'<figure><img src="{_e(file)}" alt="{_e(label)}: {_e(url)}" title="{_e(url)}" '
        f'loading="lazy"><figcaption>{_e(label)}</figcaption></figure>'
    )


def _empty(label: str, what: str, *, title: str = "") -> str:
    hint = f' title="{_e(title)}"' if title else ""
    return (
        f'<figure class="empty"{hint}><div class="none">{_e(what)}</div>'
        f"<figcaption>{_e(label)}</figcaption></figure>"
    )


def _page(summary: Summary, number: int, pages: int, chunk: Sequence[PlanLine], body: str) -> str:
    counts = summary.outcomes
    here = {outcome: sum(p.result.outcome is outcome for p in chunk) for outcome in ORDER}
    pressed = 'type="button" data-show="all" aria-pressed="true"'
    buttons = [f"<button {pressed}>all <b>{len(chunk)}</b></button>"]
    buttons += [
        f'<button type="button" data-show="{o.value}" class="{o.value}" aria-pressed="false">'
        f"{o.value} <b>{here[o]}</b></button>"
        for o in ORDER
    ]
    totals = " · ".join(
        f'<span class="total {o.value}"><b>{counts[o]}</b> {o.value}</span>' for o in ORDER
    )
    reports = ", ".join(_e(path.name) for path in summary.reports)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<title>batchthumb gallery: {reports} (page {number} of {pages})</title>
<style>{CSS}</style>
</head>
<body>
<header class="top">
<h1>Thumbnails before and after</h1>
<p class="summary"><span id="plans"><b>{summary.plans}</b> plans</span> · {totals}</p>
<p class="muted">from {reports} · {summary.changed} changed · failures first</p>
</header>
<nav class="bar">
<div class="filter" role="group" aria-label="show">{"".join(buttons)}</div>
{_pager(number, pages)}
</nav>
<main id="cards">
{body or '<p class="muted">The report records no plans.</p>'}
</main>
<p id="nothing" class="muted" hidden>Nothing on this page has that outcome.</p>
<footer>{_pager(number, pages)}</footer>
<script>{JS}</script>
</body>
</html>
"""


def _pager(number: int, pages: int) -> str:
    if pages == 1:
        return '<div class="pager"></div>'
    links = []
    for page in _pages_near(number, pages):
        if page is None:
            links.append('<span class="gap">…</span>')
        elif page == number:
            links.append(f'<span class="current" aria-current="page">{page}</span>')
        else:
            links.append(f'<a href="{page_name(page)}">{page}</a>')
    return f'<div class="pager">page {number} of {pages}: {" ".join(links)}</div>'


def _pages_near(number: int, pages: int) -> list[int | None]:
    """The first, the last, and the pages around ``number``; None marks a gap."""
    keep = sorted({1, pages, *range(max(1, number - 2), min(pages, number + 2) + 1)})
    out: list[int | None] = []
    before = 0
    for page in keep:
        if before and page - before > 1:
            out.append(None)
        out.append(page)
        before = page
    return out


CSS = """
:root{--bg:#f4f5f7;--card:#fff;--ink:#1d2330;--muted:#6b7385;--line:#e2e5eb;
--failed:#c8283c;--succeeded:#1f8a4c;--skipped:#7a8194;--accent:#3358d4}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
background:var(--bg);color:var(--ink)}
.top{background:#1d2330;color:#fff;padding:20px 28px 16px}
.top h1{margin:0 0 6px;font-size:20px;font-weight:600}
.top .muted{color:#aab1c2;margin:4px 0 0}
.summary{margin:0;font-size:15px}
.total.failed b{color:#ff8593}.total.succeeded b{color:#7ee2a8}.total.skipped b{color:#c5cad6}
.bar{position:sticky;top:0;z-index:1;display:flex;flex-wrap:wrap;gap:12px;align-items:center;
justify-content:space-between;padding:10px 28px;background:rgba(244,245,247,.95);
border-bottom:1px solid var(--line);backdrop-filter:blur(4px)}
.filter button{font:inherit;border:1px solid var(--line);background:#fff;border-radius:999px;
padding:4px 12px;margin-right:6px;cursor:pointer;color:var(--ink)}
.filter button[aria-pressed=true]{background:var(--ink);color:#fff;border-color:var(--ink)}
.filter button.failed b{color:var(--failed)}.filter button[aria-pressed=true] b{color:inherit}
.pager a,.pager .current,.pager .gap{display:inline-block;min-width:26px;text-align:center;
padding:2px 6px;border-radius:6px}
.pager a{color:var(--accent);text-decoration:none}.pager a:hover{background:#e6ebfb}
.pager .current{background:var(--accent);color:#fff}
main{display:grid;grid-template-columns:repeat(auto-fill,minmax(330px,1fr));gap:16px;
padding:20px 28px}
.card{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:12px 14px;
border-top:4px solid var(--skipped);box-shadow:0 1px 2px rgba(20,30,50,.06)}
.card.failed{border-top-color:var(--failed);background:#fff8f8}
.card.succeeded{border-top-color:var(--succeeded)}
.card>header{display:flex;justify-content:space-between;align-items:baseline;gap:8px}
.card h2{margin:0;font-size:15px;font-weight:600;overflow:hidden;text-overflow:ellipsis;
white-space:nowrap}
.badge{font-size:11px;text-transform:uppercase;letter-spacing:.04em;padding:2px 8px;
border-radius:999px;color:#fff;background:var(--skipped);flex:none}
.failed .badge{background:var(--failed)}.succeeded .badge{background:var(--succeeded)}
.pair{display:flex;align-items:center;gap:8px;margin:10px 0 6px}
.arrow{color:var(--muted);font-size:18px}
figure{margin:0;flex:1;min-width:0}
figure img,figure .none{display:block;width:100%;aspect-ratio:16/10;object-fit:contain;
border-radius:6px;border:1px solid var(--line);
background:repeating-conic-gradient(#f0f1f4 0 25%,#fff 0 50%) 0 0/16px 16px}
figure .none{display:flex;align-items:center;justify-content:center;color:var(--muted);
font-style:italic;background:#f7f8fa}
figcaption{font-size:11px;color:var(--muted);text-align:center;margin-top:3px}
.error{margin:6px 0;color:var(--failed);overflow-wrap:anywhere}
.note{margin:6px 0;color:var(--muted)}
.ids{margin:6px 0 0;font:11px/1.4 ui-monospace,SFMono-Regular,Menlo,monospace;color:var(--muted);
overflow-wrap:anywhere}
.muted{color:var(--muted)}
#nothing{padding:0 28px}
footer{padding:4px 28px 28px}
"""

JS = """
(function () {
  var buttons = document.querySelectorAll('.filter button');
  var cards = document.querySelectorAll('.card');
  function show(what) {
    var shown = 0;
    cards.forEach(function (card) {
      var hide = what !== 'all' && card.dataset.outcome !== what;
      card.hidden = hide;
      if (!hide) shown++;
    });
    buttons.forEach(function (b) {
      b.setAttribute('aria-pressed', String(b.dataset.show === what));
    });
    document.getElementById('nothing').hidden = shown > 0 || cards.length === 0;
    document.querySelectorAll('.pager a').forEach(function (a) {
      a.hash = what === 'all' ? '' : what;
    });
  }
  buttons.forEach(function (b) {
    b.addEventListener('click', function () {
      try {  // file:// pages may refuse to touch history; the filter works without it
        history.replaceState(null, '', b.dataset.show === 'all' ? ' ' : '#' + b.dataset.show);
      } catch (e) {}
      show(b.dataset.show);
    });
  });
  var wanted = location.hash.slice(1);
  show(['failed', 'succeeded', 'skipped'].indexOf(wanted) >= 0 ? wanted : 'all');
})();
"""
