"""Reading job files: YAML in, a validated :class:`~batchthumb.model.Job` out.

Validation walks the composed YAML node tree rather than constructed Python objects, so every
problem can name its file, line and key, and nothing the user did not write is ever expanded
(anchors and aliases are refused outright, which also disarms alias bombs).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import yaml

from batchthumb.errors import JobFileError, Problem
from batchthumb.model import (
    IMG_URL,
    ITEM_KEYS,
    Item,
    ItemSource,
    Job,
    Settings,
    endpoint_for_region,
    field_problem,
)

# libyaml's parser is several times faster on large jobs; fall back to the pure one.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d+")
_SETTING_KEYS = (
    "endpoint",
    "region",
    "concurrency",
    "rate",
    "burst",
    "retries",
    "timeout",
    "report",
)
_TOP_KEYS = frozenset((*_SETTING_KEYS, "defaults", "items", "items_file"))
_ITEM_KEYS = ITEM_KEYS
_DEFAULT_KEYS = frozenset(("project_id", "img_url"))
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_NULL = "tag:yaml.org,2002:null"
_STR = "tag:yaml.org,2002:str"
_T = TypeVar("_T")


@dataclass(slots=True)
class _Checker:
    """Collects problems while the node tree is walked, so that all of them are reported."""

    path: Path
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    seen: set[int] = field(default_factory=set)

    def problem(self, node: yaml.Node | None, key: str, message: str) -> None:
        line = node.start_mark.line + 1 if node is not None else 0
        self.problems.append(Problem(str(self.path), line, key, message))

    def warn(self, node: yaml.Node, key: str, message: str) -> None:
        self.warnings.append(Problem(str(self.path), node.start_mark.line + 1, key, message))

    def collection(self, node: yaml.Node, key: str) -> bool:
        """Refuse a collection met twice: that only happens through an alias."""
        if id(node) in self.seen:
            self.problem(node, key, "YAML anchors and aliases are not allowed in job files")
            return False
        self.seen.add(id(node))
        return True

    def mapping(self, node: yaml.Node, key: str) -> Iterator[tuple[str, yaml.Node]]:
        """The (key, value node) pairs of a mapping node, refusing duplicate and odd keys."""
        if isinstance(node, yaml.CollectionNode) and not self.collection(node, key):
            return
        if not isinstance(node, yaml.MappingNode):
            self.problem(node, key, f"must be a mapping, not {_kind(node)}")
            return
        names: set[str] = set()
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _NULL:
                self.problem(key_node, key, "keys must be plain names")
                continue
            name = key_node.value
            where = f"{key}.{name}" if key else name
            if name == "<<":
                self.problem(key_node, where, "YAML merge keys are not allowed in job files")
            elif name in names:
                self.problem(key_node, where, "appears twice")
            else:
                names.add(name)
                yield name, value_node

    def text(self, node: yaml.Node, key: str) -> str | None:
        """A scalar as the user wrote it (ids made only of digits stay strings)."""
        if not isinstance(node, yaml.ScalarNode) or node.tag == _NULL:
            self.problem(node, key, f"must be a text value, not {_kind(node)}")
            return None
        return str(node.value)

    def integer(self, node: yaml.Node, key: str, *, minimum: int) -> int | None:
        if not isinstance(node, yaml.ScalarNode) or node.tag != _INT:
            self.problem(node, key, f"must be a whole number, not {_kind(node)}")
            return None
        value = int(node.value.replace("_", ""), 0)
        if value < minimum:
            self.problem(node, key, f"must be at least {minimum}, not {value}")
            return None
        return value

    def number(self, node: yaml.Node, key: str, *, positive: bool) -> float | None:
        if not isinstance(node, yaml.ScalarNode) or node.tag not in (_INT, _FLOAT):
            self.problem(node, key, f"must be a number, not {_kind(node)}")
            return None
        try:
            value = float(node.value.replace("_", ""))
        except ValueError:
            self.problem(node, key, f"must be a finite number, not {node.value}")
            return None
        if not value < float("inf") or (value <= 0 if positive else value < 0):
            bound = "greater than 0" if positive else "0 or more"
            self.problem(node, key, f"must be {bound}, not {node.value}")
            return None
        return value


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if node.tag == _NULL:
        return "empty"
    if node.tag == _STR:
        return f"the text {node.value!r}"
    return str(node.value)


def load_job(path: Path) -> Job:
    """Read and validate a job file; raise :class:`JobFileError` listing every problem."""
    checker = _Checker(path)
    root = _compose(path)
    if root is None:
        checker.problem(None, "", "the file is empty; a job needs at least `items:`")
        raise JobFileError(checker.problems)
    defaults: dict[str, tuple[str, yaml.Node]] = {}
    items_node: yaml.Node | None = None
    items_file: tuple[str, yaml.Node] | None = None
    values: dict[str, object] = {}
    for name, node in checker.mapping(root, ""):
        if name not in _TOP_KEYS:
            checker.problem(node, name, f"unknown key (known: {', '.join(sorted(_TOP_KEYS))})")
        elif name == "items":
            items_node = node
        elif name == "items_file":
            text = checker.text(node, name)
            items_file = None if text is None else (text, node)
        elif name == "defaults":
            defaults = _read_defaults(checker, node)
        else:
            values[name] = _read_setting(checker, name, node)
    if not isinstance(root, yaml.MappingNode):
        raise JobFileError(checker.problems)
    settings = _settings(checker, root, values, path.parent)
    items: ItemSource = ()
    if items_node is not None and items_file is not None:
        checker.problem(
            items_file[1], "items_file", "give either `items` or `items_file`, not both"
        )
    elif items_file is not None:
        items = _read_items_file(checker, path.parent / items_file[0], defaults)
    elif items_node is None:
        checker.problem(root, "items", "missing; list the plans whose thumbnails to set")
    else:
        items = _read_items(checker, items_node, defaults)
    if checker.problems:
        raise JobFileError(checker.problems)
    return Job(path=path, settings=settings, items=items, warnings=tuple(checker.warnings))


def _compose(path: Path) -> yaml.Node | None:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise JobFileError([Problem(str(path), 0, "", f"cannot read: {exc.strerror}")]) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        problem = Problem(str(path), line, "", f"not UTF-8 text (byte {exc.start})")
        raise JobFileError([problem]) from None
    try:
        node: yaml.Node | None = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 0
        reason = exc.problem or exc.context or "invalid YAML"
        raise JobFileError([Problem(str(path), line, "", f"not valid YAML: {reason}")]) from None
    except yaml.YAMLError as exc:
        raise JobFileError([Problem(str(path), 0, "", f"not valid YAML: {exc}")]) from None
    return node


def _read_setting(checker: _Checker, name: str, node: yaml.Node) -> object:
    if name in ("concurrency", "burst"):
        return checker.integer(node, name, minimum=1)
    if name == "retries":
        return checker.integer(node, name, minimum=0)
    if name in ("rate", "timeout"):
        return checker.number(node, name, positive=name == "timeout")
    value = checker.text(node, name)
    if value is None:
        return None
    if name == "region" and not _REGION.fullmatch(value):
        checker.problem(node, name, f"{value!r} is not a region name like cn-north-4")
        return None
    if name == "endpoint" and not re.fullmatch(r"https?://[^/\s]+/?", value):
        checker.problem(node, name, f"{value!r} is not a base URL like https://host[:port]")
        return None
    return value


def _settings(
    checker: _Checker, root: yaml.Node, values: dict[str, object], base: Path
) -> Settings:
    if "endpoint" in values and "region" in values:
        checker.problem(root, "region", "give either `endpoint` or `region`, not both")
    endpoint = values.get("endpoint")
    region = values.get("region")
    if isinstance(region, str):
        endpoint = endpoint_for_region(region)
    report = values.get("report")
    defaults = Settings()
    return Settings(
        endpoint=str(endpoint).rstrip("/") if isinstance(endpoint, str) else None,
        concurrency=_or(values.get("concurrency"), defaults.concurrency),
        rate=_or(values.get("rate"), defaults.rate),
        burst=_or(values.get("burst"), defaults.burst),
        retries=_or(values.get("retries"), defaults.retries),
        timeout=_or(values.get("timeout"), defaults.timeout),
        # Paths in a job file are relative to the job file, so cron's working directory is moot.
        report=base / report if isinstance(report, str) else None,
    )


def _or(value: object, default: _T) -> _T:
    return value if isinstance(value, type(default)) else default


def _read_defaults(checker: _Checker, node: yaml.Node) -> dict[str, tuple[str, yaml.Node]]:
    defaults: dict[str, tuple[str, yaml.Node]] = {}
    for name, value_node in checker.mapping(node, "defaults"):
        key = f"defaults.{name}"
        if name not in _DEFAULT_KEYS:
            checker.problem(
                value_node, key, f"unknown key (known: {', '.join(sorted(_DEFAULT_KEYS))})"
            )
            continue
        value = checker.text(value_node, key)
        if value is not None and _check_field(checker, value_node, key, name, value):
            defaults[name] = (value, value_node)
    return defaults


def _check_field(checker: _Checker, node: yaml.Node, key: str, name: str, value: str) -> bool:
    message = field_problem(name, value)
    if message is not None:
        checker.problem(node, key, message)
        return False
    return True


def _read_items_file(
    checker: _Checker, path: Path, defaults: dict[str, tuple[str, yaml.Node]]
) -> ItemSource:
    from batchthumb.itemsfile import read_items_file

    if checker.problems:
        return ()  # the job file itself is wrong: say so before reading a large file
    values = {name: value for name, (value, _) in defaults.items()}
    found = read_items_file(
        path, defaults=values, problems=checker.problems, warnings=checker.warnings
    )
    if found is not None and not len(found):
        checker.problems.append(Problem(str(path), 0, "", "lists no items"))
    return () if found is None else found


def _read_items(
    checker: _Checker, node: yaml.Node, defaults: dict[str, tuple[str, yaml.Node]]
) -> tuple[Item, ...]:
    if not isinstance(node, yaml.SequenceNode):
        checker.problem(node, "items", f"must be a list of plans, not {_kind(node)}")
        return ()
    if not node.value:
        checker.problem(node, "items", "is empty; list at least one plan")
        return ()
    if not checker.collection(node, "items"):
        return ()
    items: list[Item] = []
    first_line: dict[tuple[str, str], int] = {}
    for index, item_node in enumerate(node.value):
        item = _read_item(checker, item_node, f"items[{index}]", defaults)
        if item is None:
            continue
        line = first_line.setdefault(item.key, item.line)
        if line != item.line:
            checker.problem(
                item_node,
                f"items[{index}]",
                f"plan {item.plan_id} is already listed at line {line}",
            )
            continue
        items.append(item)
    return tuple(items)


def _read_item(
    checker: _Checker, node: yaml.Node, where: str, defaults: dict[str, tuple[str, yaml.Node]]
) -> Item | None:
    fields = {name: value for name, (value, _) in defaults.items()}
    ok = True
    before = len(checker.problems)
    for name, value_node in checker.mapping(node, where):
        key = f"{where}.{name}"
        if name not in _ITEM_KEYS:
            checker.problem(value_node, key, f"unknown key (known: {', '.join(_ITEM_KEYS)})")
            continue
        value = checker.text(value_node, key)
        if value is not None and _check_field(checker, value_node, key, name, value):
            fields[name] = value
    if len(checker.problems) != before:
        return None
    for name in _ITEM_KEYS:
        if name not in fields:
            checker.problem(node, f"{where}.{name}", "missing")
            ok = False
    if not ok:
        return None
    item = Item(
        fields["project_id"], fields["plan_id"], fields["img_url"], node.start_mark.line + 1
    )
    match = IMG_URL.fullmatch(item.img_url)
    if match and match["project"] != item.project_id:
        # Inferred (facts §1.6): the URL path seems to embed the project it was uploaded to.
        checker.warn(
            node, where, "img_url was uploaded to another project; the API may refuse it there"
        )
    return item
