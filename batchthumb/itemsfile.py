"""Items kept outside the job file (``items_file: PATH``): CSV with a header, or JSON lines.

Made for jobs too large to list inline. The file is read as a stream twice: once to validate
every line (problems carry the file, line and key, like YAML items), and again, lazily, each
time the run iterates the items. Nothing per item is kept in between except an 8-byte digest
per item for finding duplicates (:mod:`batchthumb.keyset`), so a million items cost a few
megabytes, not hundreds.
"""

from __future__ import annotations

import codecs
import csv
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from batchthumb.errors import MAX_PROBLEMS, Problem
from batchthumb.files import ITEMS_FILE_LIMIT, ITEMS_LINE_LIMIT, FileRefused, describe, open_regular
from batchthumb.keyset import KeyDigests, key_hash
from batchthumb.model import ITEM_KEYS, Item, field_problem

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
MAX_DEPTH = 32  # JSON nesting allowed in a line before parsing it

_Row = tuple[int, str, dict[str, str] | None]  # (line, key prefix, fields or None if unusable)


class _Unreadable(Exception):
    """The file cannot be read on from ``line``: the message says why."""

    def __init__(self, line: int, message: str) -> None:
        self.line = line
        self.message = message


@dataclass(slots=True)
class _Lines:
    """The lines of a file decoded one by one, so that a bad byte names its line.

    Bounded however the file lies about itself: each line is read with a cap, and the bytes
    are counted as they stream by. A UTF-8 byte order mark at the start is skipped.
    """

    path: Path
    number: int = 0

    def __iter__(self) -> Iterator[str]:
        offset = 0
        try:
            file = open_regular(self.path)
        except FileRefused as exc:
            raise _Unreadable(0, f"items_file: {exc.reason}") from None
        with file:
            while raw := file.readline(ITEMS_LINE_LIMIT + 1):
                self.number += 1
                if len(raw) > ITEMS_LINE_LIMIT:
                    raise _Unreadable(self.number, f"line longer than {describe(ITEMS_LINE_LIMIT)}")
                if offset + len(raw) > ITEMS_FILE_LIMIT:
                    raise _Unreadable(self.number, f"larger than {describe(ITEMS_FILE_LIMIT)}")
                if not offset and raw.startswith(codecs.BOM_UTF8):
                    raw = raw[len(codecs.BOM_UTF8) :]
                    offset = len(codecs.BOM_UTF8)
                try:
                    yield raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    message = f"not UTF-8 text (byte {offset + exc.start})"
                    raise _Unreadable(self.number, message) from None
                offset += len(raw)


def _csv_rows(path: Path, defaults: Mapping[str, str], problems: list[Problem]) -> Iterator[_Row]:
    lines = _Lines(path)
    try:
        yield from _csv_records(path, lines, defaults, problems)
    except csv.Error as exc:
        raise _Unreadable(lines.number, f"not valid CSV: {exc}") from None


def _csv_records(
    path: Path, lines: _Lines, defaults: Mapping[str, str], problems: list[Problem]
) -> Iterator[_Row]:
    reader = csv.reader(lines, strict=True)
    header = next(reader, None)
    if header is None:
        problems.append(Problem(str(path), 0, "", "is empty; it needs a header line"))
        return
    columns = [name.strip() for name in header]
    repeated = [name for number, name in enumerate(columns) if name in columns[:number]]
    if repeated:
        problems.append(Problem(str(path), 1, "", f"column {repeated[0]!r} appears twice"))
        return
    unknown = [name for name in columns if name not in ITEM_KEYS]
    missing = [name for name in ITEM_KEYS if name not in columns and name not in defaults]
    if unknown:
        problems.append(
            Problem(
                str(path), 1, "", f"unknown column {unknown[0]!r} (known: {', '.join(ITEM_KEYS)})"
            )
        )
    if missing:
        problems.append(Problem(str(path), 1, "", f"missing column {missing[0]!r}"))
    if unknown or missing:
        return
    index = 0
    for row in reader:
        line = reader.line_num
        if not row:
            continue  # a blank line
        where = f"items[{index}]"
        index += 1
        if len(row) != len(columns):
            problems.append(
                Problem(
                    str(path),
                    line,
                    where,
                    f"has {len(row)} fields; the header has {len(columns)}",
                )
            )
            yield line, where, None
            continue
        yield line, where, {name: value for name, value in zip(columns, row, strict=True) if value}


def _jsonl_rows(path: Path, problems: list[Problem]) -> Iterator[_Row]:
    index = 0
    lines = _Lines(path)
    for text in lines:
        if not text.strip():
            continue
        line = lines.number
        where = f"items[{index}]"
        index += 1
        try:
            record = _json_object(text)
        except ValueError as exc:
            reason = getattr(exc, "msg", None) or str(exc)
            problems.append(Problem(str(path), line, where, f"not valid JSON: {reason}"))
            yield line, where, None
            continue
        if not isinstance(record, dict):
            problems.append(Problem(str(path), line, where, "must be a JSON object"))
            yield line, where, None
            continue
        fields: dict[str, str] = {}
        usable = True
        for name, value in record.items():
            if name not in ITEM_KEYS:
                message = f"unknown key (known: {', '.join(ITEM_KEYS)})"
                problems.append(Problem(str(path), line, f"{where}.{name}", message))
                usable = False
            elif not isinstance(value, str):
                message = f"must be a text value, not {json.dumps(value)}"
                problems.append(Problem(str(path), line, f"{where}.{name}", message))
                usable = False
            else:
                fields[name] = value
        yield line, where, fields if usable else None


def _json_object(text: str) -> object:
    """``json.loads``, refusing repeated keys and nesting too deep to parse safely.

    An item is a flat object of strings: past :data:`MAX_DEPTH` brackets the line is not one,
    and a line of ten thousand ``[`` would exhaust the parser's recursion.
    """
    if text.count("[") + text.count("{") > MAX_DEPTH and _depth(text) > MAX_DEPTH:
        raise ValueError(f"nested more than {MAX_DEPTH} levels deep")
    return json.loads(text, object_pairs_hook=_unique)


def _depth(text: str) -> int:
    """How deep the brackets of a JSON text nest, not counting those in strings."""
    deepest = depth = 0
    quoted = escaped = False
    for char in text:
        if quoted:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                quoted = False
        elif char == '"':
            quoted = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def _unique(pairs: list[tuple[str, object]]) -> dict[str, object]:
    record = dict(pairs)
    if len(record) != len(pairs):
        repeated = next(key for number, (key, _) in enumerate(pairs) if key in dict(pairs[:number]))
        raise ValueError(f"key {repeated!r} appears twice")
    return record


def _rows(
    path: Path, kind: str, defaults: Mapping[str, str], problems: list[Problem]
) -> Iterator[_Row]:
    return _csv_rows(path, defaults, problems) if kind == "csv" else _jsonl_rows(path, problems)


def _item(fields: Mapping[str, str], defaults: Mapping[str, str], line: int) -> Item:
    merged = {**defaults, **fields}
    return Item(merged["project_id"], merged["plan_id"], merged["img_url"], line)


@dataclass(frozen=True, slots=True)
class FileItems:
    """The validated items of an items file, read again from disk each time they are iterated."""

    path: Path
    kind: str  # "csv" or "jsonl"
    defaults: Mapping[str, str]
    count: int
    projects: frozenset[str] = field(default_factory=frozenset)

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[Item]:
        ignored: list[Problem] = []  # validated already; only a file edited since can differ
        for line, _, fields in _rows(self.path, self.kind, self.defaults, ignored):
            if fields is not None:
                yield _item(fields, self.defaults, line)


def read_items_file(
    path: Path,
    *,
    defaults: Mapping[str, str],
    problems: list[Problem],
) -> FileItems | None:
    """Validate an items file in one streaming pass; None (with problems added) if it is bad."""
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        known = ", ".join(FORMATS)
        problems.append(Problem(str(path), 0, "", f"items_file must end in one of {known}"))
        return None
    found: list[Problem] = []
    digests = KeyDigests()
    count = 0
    projects: set[str] = set()
    try:
        for line, where, fields in _rows(path, kind, defaults, found):
            if fields is None:
                continue
            before = len(found)
            for name, value in fields.items():
                message = field_problem(name, value)
                if message is not None:
                    found.append(Problem(str(path), line, f"{where}.{name}", message))
            for name in ITEM_KEYS:
                if name not in fields and name not in defaults:
                    found.append(Problem(str(path), line, f"{where}.{name}", "missing"))
            if len(found) != before:
                continue
            item = _item(fields, defaults, line)
            digests.add(item.key)
            count += 1
            projects.add(item.project_id)
    except _Unreadable as exc:
        found.append(Problem(str(path), exc.line, "", exc.message))
    repeated = digests.repeated()
    del digests
    if repeated and not found:
        found.extend(_duplicates(path, kind, defaults, repeated))
    if found:
        problems.extend(found[:MAX_PROBLEMS])
        if len(found) > MAX_PROBLEMS:
            more = len(found) - MAX_PROBLEMS
            problems.append(Problem(str(path), 0, "", f"and {more} more problems"))
        return None
    return FileItems(path, kind, dict(defaults), count, frozenset(projects))


def _duplicates(
    path: Path, kind: str, defaults: Mapping[str, str], repeated: set[int]
) -> list[Problem]:
    """A second pass over the few items whose digests repeat: exact keys, first lines."""
    first: dict[tuple[str, str], int] = {}
    problems: list[Problem] = []
    for line, where, fields in _rows(path, kind, defaults, []):
        if fields is None:
            continue
        item = _item(fields, defaults, line)
        if key_hash(item.key) not in repeated:
            continue
        seen_at = first.setdefault(item.key, line)
        if seen_at != line:
            message = f"plan {item.plan_id} is already listed at line {seen_at}"
            problems.append(Problem(str(path), line, where, message))
    return problems
