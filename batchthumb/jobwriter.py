"""Writing job files: what ``export``, ``migrate -o``, ``undo`` and ``--backup`` produce.

Plain text with every value double-quoted as JSON (a JSON string is a valid YAML
double-quoted scalar), so nothing a plan name holds can change the file's structure. What is
written reads back through :func:`batchthumb.jobfile.load_job`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from batchthumb.errors import os_errors


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
    lines = [f"# {line}" for line in header]
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


def write_text(path: Path, text: str) -> None:
    """Write a file whole (temporary file, then rename), so a crash never leaves half of it."""
    tmp = path.with_name(path.name + ".tmp")
    with os_errors(path, "write"):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)


def _quote(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def printable(text: str) -> str:
    """``text`` on one line, each character a terminal would obey shown as an escape.

    For names and messages from a server printed to a terminal: an ANSI escape in a plan
    name must not repaint the screen.
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in text)


# What a spreadsheet takes a cell beginning with for a formula (OWASP's list).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(text: str) -> str:
    """A CSV cell that a spreadsheet shows as text: a leading ``'`` on one that would start a
    formula. Every CSV batchthumb writes goes through here."""
    return "'" + text if text.startswith(_FORMULA_STARTS) else text
