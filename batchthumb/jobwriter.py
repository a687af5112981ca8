"""Writing job files: what ``export``, ``migrate -o``, ``undo`` and ``--backup`` produce.

Plain text with every value double-quoted as JSON (a JSON string is a valid YAML
double-quoted scalar), so nothing a plan name holds can change the file's structure. What is
written reads back through :func:`batchthumb.jobfile.load_job`.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from batchthumb.errors import os_errors
from batchthumb.files import open_new


@dataclass(frozen=True, slots=True)
class Entry:
    """One item to write: the thumbnail is an ``img_url`` or an ``image`` path (not both)."""

    project_id: str
    plan_id: str
    img_url: str | None = None
    image: str | None = None
    note: str = ""  # a comment on the item's line, e.g. the plan's name


def render_job(
    entries: Sequence[Entry],
    *,
    header: Sequence[str] = (),
    comments: Sequence[str] = (),
    endpoint: str | None = None,
) -> str:
    """The text of a job file setting ``entries``; ``comments`` list what it leaves out."""
    lines = [f"# {_one_line(line)}" for line in header]
    if endpoint is not None:
        lines.append(f"endpoint: {_quote(endpoint)}")
    projects = {entry.project_id for entry in entries}
    shared = next(iter(projects)) if len(projects) == 1 else None
    if shared is not None:
        lines += ["defaults:", f"  project_id: {_quote(shared)}"]
    if comments:
        lines.append("# Not in this job:")
        lines += [f"#   {_one_line(comment)}" for comment in comments]
    lines.append("items:" if entries else "items: []  # nothing to set")
    for entry in entries:
        fields = [] if shared is not None else [f"project_id: {_quote(entry.project_id)}"]
        fields.append(f"plan_id: {_quote(entry.plan_id)}")
        if entry.img_url is not None:
            fields.append(f"img_url: {_quote(entry.img_url)}")
        else:
            assert entry.image is not None
            fields.append(f"image: {_quote(entry.image)}")
        note = f"  # {_one_line(entry.note)}" if entry.note else ""
        lines.append(f"  - {{{', '.join(fields)}}}{note}")
    return "\n".join(lines) + "\n"


STDOUT = Path("-")


@dataclass(frozen=True, slots=True)
class Written:
    """Where a generated job went: a file (an older one kept as ``FILE.1``), or stdout."""

    path: Path
    text: str | None = None  # the job, when it goes to standard output (``-o -``)
    kept: Path | None = None  # the file it replaced, renamed

    def stdout_lines(self, summary: str) -> list[str]:
        """The job itself with ``-o -``; else the one-line summary."""
        if self.text is not None:
            return self.text.splitlines()
        kept = f" (the previous one is kept as {self.kept})" if self.kept else ""
        return [summary + kept]

    def stderr_lines(self, summary: str) -> list[str]:
        """The summary, when the job itself took standard output."""
        return [summary] if self.text is not None else []


def write_job(path: Path, text: str) -> Written:
    """Write a generated job: ``-`` means standard output; an existing file is kept as ``.1``.

    The one rule for every file batchthumb generates (export, undo, migrate -o, --backup), as
    for the report: nothing is overwritten without a copy, and a nightly cron line never
    fails because last night's file is there.
    """
    if path == STDOUT:
        return Written(path, text=text)
    kept = path.with_name(path.name + ".1") if path.exists() else None
    if kept is not None:
        with os_errors(path, "keep the previous file"):
            path.replace(kept)
    write_text(path, text)
    return Written(path, kept=kept)


def write_text(path: Path, text: str) -> None:
    """Write a file whole (temporary file, then rename), so a crash never leaves half of it."""
    tmp = path.with_name(path.name + ".tmp")
    with os_errors(path, "write"):
        path.parent.mkdir(parents=True, exist_ok=True)
        with open_new(tmp) as file:
            file.write(text.encode("utf-8"))
        os.replace(tmp, path)


# What is never written raw, whatever a plan name holds: the C0 and C1 controls and DEL (YAML
# refuses them, a terminal obeys them), NEL and the line and paragraph separators (YAML ends a
# comment at them), bidirectional overrides and isolates and zero-width marks (text that reads
# otherwise than it parses), BOM, lone surrogates (not encodable) and the non-characters.
_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff"
    "\ud800-\udfff\ufff9-\uffff]"
)
# What a spreadsheet takes a cell beginning with for a formula (OWASP's list).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def printable(text: str) -> str:
    """``text`` with each unsafe character shown as its ``\\uXXXX`` escape, on one line."""
    return _UNSAFE.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


def csv_cell(text: str) -> str:
    """A CSV cell that a spreadsheet shows as text: unsafe characters escaped, and a leading
    ``'`` on a cell that would start a formula."""
    cell = printable(text)
    return "'" + cell if cell.startswith(_FORMULA_STARTS) else cell


def _quote(value: str) -> str:
    """A YAML double-quoted scalar (JSON's syntax is a subset) that reads back as ``value``.

    json.dumps escapes C0 itself; the rest of the unsafe characters become YAML ``\\u``
    escapes, which read back exactly. Surrogates cannot be read back; U+FFFD stands in.
    """
    quoted = json.dumps(value, ensure_ascii=False)
    return _UNSAFE.sub(lambda match: f"\\u{_codepoint(match.group()):04x}", quoted)


def _codepoint(char: str) -> int:
    code = ord(char)
    return 0xFFFD if 0xD800 <= code <= 0xDFFF else code


def _one_line(text: str) -> str:
    return printable(" ".join(text.split()))
