"""Reading job files: YAML in, a validated :class:`~batchthumb.model.Job` out.

Validation walks the parser's events rather than constructed Python objects, so every problem
can name its file, line and key, and nothing the user did not write is ever expanded (anchors
and aliases are refused outright, which also disarms alias bombs). The small sections are
composed into nodes; ``items:``, which may list a million plans, is checked event by event.
Past :data:`KEEP_IN_MEMORY` items it is kept as nothing but an 8-byte digest per item
(:mod:`batchthumb.keyset`): the run reads the items again from the file (:class:`YamlItems`),
as it does an ``items_file``. The file is
streamed to the parser, never read whole; libyaml's parser is used when PyYAML has it.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, TypeVar, cast

import yaml

from batchthumb.auth import ENV_NAME, URL_CREDENTIALS_ADVICE, url_has_credentials
from batchthumb.errors import MAX_PROBLEMS, JobFileError, Problem, UsageError
from batchthumb.files import AUTH_FILE_LIMIT, JOB_FILE_LIMIT, FileRefused, describe, open_regular
from batchthumb.images import ImageProblem, inspect_image
from batchthumb.keyset import KeyDigests, key_hash
from batchthumb.model import (
    MAXIMA,
    MIB,
    REGION,
    AkSkAuth,
    AuthConfig,
    IamAuth,
    Item,
    ItemStream,
    Job,
    LocalImage,
    RunSettings,
    TokenAuth,
    endpoint_for_region,
    field_problem,
    parse_duration,
)

# libyaml's parser is several times faster on large jobs; fall back to the pure one.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_BASE_URL = re.compile(r"https?://[^/\s]+/?")
_SETTING_KEYS = (
    "endpoint",
    "region",
    "concurrency",
    "rate",
    "burst",
    "retries",
    "timeout",
    "backoff",
    "breaker",
    "report",
    "history",
    "snapshot",
    "backup",
    "lock_wait",
    "max_duration",
    "progress",
    "quiet",
    "verbose",
    "log_json",
    "log_file",
    "max_answer_mb",
    "max_list_pages",
)
_BOOL_SETTINGS = ("snapshot", "progress", "quiet", "verbose", "log_json")
# Paths in a job file are relative to the job file, so cron's working directory is moot.
_PATH_SETTINGS = ("report", "backup", "log_file")
_TOP_KEYS = frozenset((*_SETTING_KEYS, "auth", "defaults", "items", "items_file"))
_AUTH_WAYS = ("token_env", "token_file", "iam", "aksk")
_IAM_KEYS = ("endpoint", "domain", "user", "password_env", "project")
_AKSK_KEYS = ("ak_env", "sk_env", "credentials_file", "iam_endpoint", "project")
_ENV_ADVICE = (
    "must be the NAME of an environment variable (capital letters, digits and _, "
    "e.g. BATCHTHUMB_TOKEN), not a secret; the value goes in the environment"
)
_KEEP_OUT = "secrets never go in a job file"
_TOKEN_ADVICE = f"{_KEEP_OUT}; use `auth: {{token_env: NAME}}` or `auth: {{token_file: PATH}}`"
_SK_ADVICE = (
    f"{_KEEP_OUT}; set HUAWEICLOUD_SDK_AK and HUAWEICLOUD_SDK_SK (or name other variables "
    "with ak_env/sk_env), or use the SDK file ~/.huaweicloud/credentials (mode 0600)"
)
# Keys that would hold a secret: refused without ever reading their value.
_SECRET_KEYS = {
    "password": f"{_KEEP_OUT}; put the password in an environment variable and name it with "
    "`auth: {iam: {password_env: NAME}}`",
    "passwd": f"{_KEEP_OUT}; name an environment variable with `password_env:` instead",
    "token": _TOKEN_ADVICE,
    "auth_token": _TOKEN_ADVICE,
    "x_auth_token": _TOKEN_ADVICE,
    "sk": _SK_ADVICE,
    "ak": _SK_ADVICE,
    "secret": _SK_ADVICE,
    "secret_key": _SK_ADVICE,
    "access_key": _SK_ADVICE,
    "security_token": f"{_KEEP_OUT}; set HUAWEICLOUD_SDK_SECURITY_TOKEN, or put "
    "security_token in ~/.huaweicloud/credentials (mode 0600)",
}
# Jobs up to this many inline items keep them (some 15 MB at most): a run then reads them from
# memory instead of parsing the file again, which would cost a tenth of its CPU per PUT.
KEEP_IN_MEMORY = 50_000
_ITEM_KEYS = ("project_id", "plan_id", "img_url", "image")
_SOURCE_KEYS = ("img_url", "image")  # where the thumbnail comes from: exactly one
_DEFAULT_KEYS = frozenset(("project_id", "img_url", "image"))
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_NULL = "tag:yaml.org,2002:null"
_BOOL = "tag:yaml.org,2002:bool"
_STR = "tag:yaml.org,2002:str"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_ANCHORS = "YAML anchors and aliases are not allowed in job files"
_RESOLVER = yaml.resolver.Resolver()  # the implicit tags SafeLoader gives plain scalars
_T = TypeVar("_T")
_At = yaml.Node | yaml.Event  # anything with a start mark: where a problem is
_Marks = tuple[yaml.Mark | None, yaml.Mark | None]


def _line(at: _At | None) -> int:
    """The 1-based line ``at`` starts on; 0 when there is no such place."""
    mark = at.start_mark if at is not None else None
    return mark.line + 1 if mark is not None else 0


def _marks(start: yaml.Event, end: yaml.Event) -> _Marks:
    # libyaml's marks are its own class, with the same fields as the ones nodes are typed with.
    return cast("_Marks", (start.start_mark, end.end_mark))


@dataclass(slots=True)
class _Checker:
    """Collects problems while the node tree is walked, so that all of them are reported."""

    path: Path
    problems: list[Problem] = field(default_factory=list)
    images: dict[Path, LocalImage | str] = field(default_factory=dict)  # checked once per path
    reported: set[str] = field(default_factory=set)

    def image(self, node: _At, key: str, value: str) -> LocalImage | None:
        """The image file ``value`` names (relative to the job file), checked once per path."""
        path = self.path.parent / value
        found = self.images.get(path)
        if found is None:
            try:
                found = inspect_image(path)
            except ImageProblem as exc:
                found = str(exc)
            self.images[path] = found
        if isinstance(found, str):
            if key not in self.reported:  # a bad `defaults.image` is reported once
                self.reported.add(key)
                self.problem(node, key, found)
            return None
        return found

    def problem(self, node: _At | None, key: str, message: str) -> None:
        self.problems.append(Problem(str(self.path), _line(node), key, message))

    def key_name(self, names: set[str], key_node: yaml.Node, key: str) -> str | None:
        """A mapping key's name if it is a plain name not met before in ``names``."""
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _NULL:
            self.problem(key_node, key, "keys must be plain names")
            return None
        name: str = key_node.value
        where = f"{key}.{name}" if key else name
        if name == "<<":
            self.problem(key_node, where, "YAML merge keys are not allowed in job files")
        elif name in names:
            self.problem(key_node, where, "appears twice")
        else:
            names.add(name)
            return name
        return None

    def mapping(self, node: yaml.Node, key: str) -> Iterator[tuple[str, yaml.Node]]:
        """The (key, value node) pairs of a mapping node, refusing duplicate and odd keys."""
        if not isinstance(node, yaml.MappingNode):
            self.problem(node, key, f"must be a mapping, not {_kind(node)}")
            return
        names: set[str] = set()
        for key_node, value_node in node.value:
            name = self.key_name(names, key_node, key)
            if name is not None:
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
        try:
            value = int(node.value.replace("_", ""), 0)
        except ValueError:  # more digits than int() takes: far past any maximum
            value = None
        if value is not None and value < minimum:
            self.problem(node, key, f"must be at least {minimum}, not {value}")
            return None
        if value is None or value > MAXIMA[key]:
            self.problem(node, key, f"must be at most {MAXIMA[key]:,g}, not {node.value[:40]}")
            return None
        return value

    def boolean(self, node: yaml.Node, key: str) -> bool | None:
        if not isinstance(node, yaml.ScalarNode) or node.tag != _BOOL:
            self.problem(node, key, f"must be true or false, not {_kind(node)}")
            return None
        return node.value.lower() in ("true", "yes", "on")

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
            self.problem(node, key, f"must be {bound}, not {node.value[:40]}")
            return None
        if value > MAXIMA[key]:
            self.problem(node, key, f"must be at most {MAXIMA[key]:,g}, not {node.value[:40]}")
            return None
        return value


def _tag(event: yaml.ScalarEvent) -> str:
    """The tag a scalar gets: its own, or the one SafeLoader would resolve it to."""
    if event.tag is None or event.tag == "!":
        tag = _RESOLVER.resolve(yaml.ScalarNode, event.value, event.implicit)  # type: ignore[no-untyped-call]
        return str(tag)
    return str(event.tag)


# What SafeLoader resolves a plain scalar to null from (its null resolver; no resolver tried
# before it for these first characters matches them); quoted scalars are never null.
_NULLS = frozenset(("", "~", "null", "Null", "NULL"))


def _null(event: yaml.ScalarEvent) -> bool:
    """Whether a scalar is null, as :func:`_tag` says, without running every resolver."""
    if event.tag is None or event.tag == "!":
        return bool(event.implicit[0]) and event.value in _NULLS
    return bool(event.tag == _NULL)


class _Events:
    """The parser's events for one document, read in order by the walk of the job file."""

    __slots__ = ("checker", "events", "first")

    def __init__(self, checker: _Checker, events: Iterator[yaml.Event]) -> None:
        self.checker = checker
        self.events = events
        self.first: yaml.Event | None = None

    def root(self) -> yaml.Event | None:
        """The first event of the document's root node; None if the stream has no document."""
        next(self.events)  # StreamStartEvent
        event = next(self.events)
        if isinstance(event, yaml.StreamEndEvent):
            return None
        self.first = event  # DocumentStartEvent
        return next(self.events)

    def finish(self) -> None:
        """Read past the end of the document, refusing a second one as compose does."""
        next(self.events)  # DocumentEndEvent
        event = next(self.events)
        if not isinstance(event, yaml.StreamEndEvent):
            first, found = _marks(self.first or event, event)
            raise yaml.composer.ComposerError(
                "expected a single document in the stream",
                first,
                "but found another document",
                found,
            )

    def skip(self, event: yaml.Event) -> None:
        """Read past the rest of the node that ``event`` starts."""
        depth = 1 if isinstance(event, yaml.CollectionStartEvent) else 0
        while depth:
            event = next(self.events)
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1

    def node(self, event: yaml.Event, key: str) -> yaml.Node | None:
        """Compose the node ``event`` starts, or None (and a problem) if it holds an anchor."""
        refused: list[yaml.Event] = []
        node = self._compose(event, refused)
        if refused:
            self.checker.problem(refused[0], key, _ANCHORS)
            return None
        return node

    def _compose(self, event: yaml.Event, refused: list[yaml.Event]) -> yaml.Node:
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            refused.append(event)
        if isinstance(event, yaml.ScalarEvent):
            return yaml.ScalarNode(_tag(event), event.value, *_marks(event, event))
        if isinstance(event, yaml.SequenceStartEvent):
            values: list[yaml.Node] = []
            while not isinstance(item := next(self.events), yaml.SequenceEndEvent):
                values.append(self._compose(item, refused))
            return yaml.SequenceNode(_SEQ, values, *_marks(event, item))
        if isinstance(event, yaml.MappingStartEvent):
            pairs: list[tuple[yaml.Node, yaml.Node]] = []
            while not isinstance(key := next(self.events), yaml.MappingEndEvent):
                pairs.append(
                    (self._compose(key, refused), self._compose(next(self.events), refused))
                )
            return yaml.MappingNode(_MAP, pairs, *_marks(event, key))
        # An alias: refused above, and never resolved, so nothing is ever expanded.
        return yaml.ScalarNode(_NULL, "", *_marks(event, event))

    def pairs(self, key: str) -> Iterator[tuple[str, yaml.Event]]:
        """The (name, first value event) pairs of the mapping just started; the caller reads
        each value before asking for the next pair. Odd and repeated keys are refused here.
        """
        names: set[str] = set()
        checker = self.checker
        for event in self.events:
            if type(event) is yaml.MappingEndEvent:
                return
            node: yaml.Node | None
            if type(event) is yaml.ScalarEvent and event.anchor is None:
                name = event.value
                if name != "<<" and name not in names and not _null(event):
                    names.add(name)
                    yield name, next(self.events)
                    continue
                node = yaml.ScalarNode(_tag(event), name, *_marks(event, event))
            else:
                node = self.node(event, key)
            if node is not None:
                checker.key_name(names, node, key)  # says what is wrong with it
            self.skip(next(self.events))


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


@dataclass(slots=True)
class _Sections:
    """What one walk of a job file found; the items are judged once all of it is known."""

    root: yaml.Event
    values: dict[str, object] = field(default_factory=dict)
    defaults: dict[str, tuple[str, _At]] = field(default_factory=dict)
    auth: AuthConfig | None = None
    items_file: tuple[str, _At] | None = None
    items_given: bool = False
    items: _ItemCheck | None = None
    defaults_late: bool = False  # `defaults:` came after `items:`, which must be read again


@dataclass(frozen=True, slots=True)
class YamlItems:
    """The validated ``items:`` of a job file, read again from the file each time they are
    iterated, so that a million inline items cost what their key digests cost, not 300 MB.
    """

    path: Path
    defaults: dict[str, tuple[str, _At]]
    count: int
    projects: frozenset[str] = frozenset()
    images: dict[Path, LocalImage | str] = field(default_factory=dict)  # as checked: read once

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[Item]:
        # Validated already: only a file edited since could differ, and its problems are moot.
        checker = _Checker(self.path, images=dict(self.images))
        with _parsing(self.path, checker) as events:
            value = _find_items(events)
            if value is not None:
                for _, item in _walk_items(events, value, self.defaults):
                    if item is not None:
                        yield item
                    checker.problems.clear()


def load_job(path: Path) -> Job:
    """Read and validate a job file; raise :class:`JobFileError` listing every problem."""
    checker = _Checker(path)
    found = _parse(
        path,
        checker,
        lambda events: _walk_job(events, path.parent),
        limit=JOB_FILE_LIMIT,
        what="a job file",
    )
    settings = _settings(checker, found.root, found.values, path.parent)
    items: ItemStream = ()
    if found.items_given and found.items_file is not None:
        checker.problem(
            found.items_file[1], "items_file", "give either `items` or `items_file`, not both"
        )
    elif found.items_file is not None:
        items = _read_items_file(checker, path.parent / found.items_file[0], found.defaults)
    elif not found.items_given:
        checker.problem(found.root, "items", "missing; list the plans whose thumbnails to set")
    else:
        if found.defaults_late:
            checker.reported.clear()  # the items are judged again below
            found.items = _parse(path, checker, lambda events: _walk_to_items(events, found))
        check = found.items or _ItemCheck()
        duplicates: list[Problem] = []
        if check.repeated:  # a pass of its own, only when some plan may be listed twice
            again = _Checker(path, images=checker.images)
            duplicates = _parse(path, again, lambda events: _duplicates(events, found))
        # Item problems follow those of the other sections, wherever `items:` stands.
        checker.problems.extend(_item_problems(path, check, duplicates))
        if check.kept is not None:
            items = tuple(check.kept)
        else:
            items = YamlItems(path, found.defaults, check.count, frozenset(check.projects))
            items.images.update(checker.images)
    if checker.problems:
        raise JobFileError(checker.problems)
    return Job(path=path, settings=settings, items=items, auth=found.auth)


def _walk_job(events: _Events, base: Path) -> _Sections:
    checker = events.checker
    root = _root_mapping(events)
    if root is None:
        checker.problem(None, "", "the file is empty; a job needs at least `items:`")
        raise JobFileError(checker.problems)
    found = _Sections(root)
    for name, value in events.pairs(""):
        if name in _SECRET_KEYS or name not in _TOP_KEYS:
            unknown = f"unknown key (known: {', '.join(sorted(_TOP_KEYS))})"
            checker.problem(value, name, _SECRET_KEYS.get(name, unknown))
            events.skip(value)
        elif name == "items":
            # Checked at once, event by event, so that no node tree of the items is ever built.
            found.items = _check_items(events, value, found.defaults)
            found.items_given = True
        elif (node := events.node(value, name)) is None:
            continue
        elif name == "items_file":
            text = checker.text(node, name)
            found.items_file = None if text is None else (text, node)
        elif name == "defaults":
            found.defaults = _read_defaults(checker, node)
            found.defaults_late = found.items_given
        elif name == "auth":
            found.auth = _read_auth(checker, node, base)
        else:
            found.values[name] = _read_setting(checker, name, node)
    events.finish()
    return found


def _walk_to_items(events: _Events, found: _Sections) -> _ItemCheck:
    """The items checked again, now with the defaults that came after them."""
    value = _find_items(events)
    return _ItemCheck() if value is None else _check_items(events, value, found.defaults)


def _find_items(events: _Events) -> yaml.Event | None:
    """The first event of the ``items:`` value of a job already checked, or None."""
    checker = events.checker
    before = len(checker.problems)
    _root_mapping(events)
    for name, value in events.pairs(""):
        if name == "items":
            del checker.problems[before:]  # the other sections' problems are known already
            return value
        events.skip(value)
    return None


def _root_mapping(events: _Events) -> yaml.MappingStartEvent | None:
    """The start of the document's root mapping; None if there is no document at all."""
    root = events.root()
    if root is None or isinstance(root, yaml.MappingStartEvent):
        if root is not None and root.anchor is not None:
            events.checker.problem(root, "", _ANCHORS)
        return root
    node = events.node(root, "")
    events.finish()
    if node is not None:
        events.checker.problem(node, "", f"must be a mapping, not {_kind(node)}")
    raise JobFileError(events.checker.problems)


def load_auth(path: Path) -> AuthConfig:
    """Read a YAML file holding just an ``auth:`` section (``run --auth FILE``)."""
    checker = _Checker(path)
    return _parse(
        path,
        checker,
        lambda events: _walk_auth(events, path.parent),
        limit=AUTH_FILE_LIMIT,
        what="an auth file",
    )


def _walk_auth(events: _Events, base: Path) -> AuthConfig:
    checker = events.checker
    root = _root_mapping(events)
    auth: AuthConfig | None = None
    found = False
    for name, value in events.pairs("") if root is not None else ():
        if name == "auth":
            found = True
            node = events.node(value, name)
            auth = None if node is None else _read_auth(checker, node, base)
            continue
        if name in _SECRET_KEYS:
            checker.problem(value, name, _SECRET_KEYS[name])
        else:
            checker.problem(value, name, "unknown key; this file holds only an `auth:` section")
        events.skip(value)
    if root is not None:
        events.finish()
    if not found and not checker.problems:
        checker.problem(root, "auth", "missing; this file must hold an `auth:` section")
    if checker.problems or auth is None:
        raise JobFileError(checker.problems)
    return auth


def _read_auth(checker: _Checker, node: yaml.Node, base: Path) -> AuthConfig | None:
    """The one way of authenticating an ``auth:`` mapping names."""
    ways: list[AuthConfig | None] = []
    before = len(checker.problems)
    for name, value_node in checker.mapping(node, "auth"):
        key = f"auth.{name}"
        if name in _SECRET_KEYS:
            checker.problem(value_node, key, _SECRET_KEYS[name])
        elif name == "token_env":
            env = _env_name(checker, value_node, key)
            ways.append(TokenAuth(env=env) if env else None)
        elif name == "token_file":
            file = _path(checker, value_node, key, base)
            ways.append(TokenAuth(file=file) if file else None)
        elif name == "iam":
            ways.append(_read_iam(checker, value_node))
        elif name == "aksk":
            ways.append(_read_aksk(checker, value_node, base))
        else:
            checker.problem(value_node, key, f"unknown key (known: {', '.join(_AUTH_WAYS)})")
    if len(ways) > 1:
        checker.problem(node, "auth", f"give one of {', '.join(_AUTH_WAYS)}, not several")
    elif not ways and len(checker.problems) == before:
        checker.problem(node, "auth", f"empty; give one of {', '.join(_AUTH_WAYS)}")
    return ways[0] if len(ways) == 1 else None


def _read_iam(checker: _Checker, node: yaml.Node) -> IamAuth | None:
    values: dict[str, str] = {}
    before = len(checker.problems)
    for name, value_node in checker.mapping(node, "auth.iam"):
        key = f"auth.iam.{name}"
        if name in _SECRET_KEYS:
            checker.problem(value_node, key, _SECRET_KEYS[name])
        elif name not in _IAM_KEYS:
            checker.problem(value_node, key, f"unknown key (known: {', '.join(_IAM_KEYS)})")
        elif name == "password_env":
            env = _env_name(checker, value_node, key)
            if env:
                values[name] = env
        else:
            text = checker.text(value_node, key)
            problem = _endpoint_problem(text) if text and name == "endpoint" else None
            if problem:
                checker.problem(value_node, key, problem)
            elif text:
                values[name] = text.rstrip("/") if name == "endpoint" else text
    if len(checker.problems) != before:
        return None
    missing = [name for name in ("domain", "user", "password_env") if name not in values]
    for name in missing:
        checker.problem(node, f"auth.iam.{name}", "missing")
    if missing:
        return None
    return IamAuth(
        domain=values["domain"],
        user=values["user"],
        password_env=values["password_env"],
        endpoint=values.get("endpoint"),
        project=values.get("project"),
    )


def _read_aksk(checker: _Checker, node: yaml.Node, base: Path) -> AkSkAuth | None:
    if isinstance(node, yaml.ScalarNode) and node.tag == _NULL:
        return AkSkAuth()  # `aksk:` alone: the SDK's variables or profile file
    values: dict[str, object] = {}
    before = len(checker.problems)
    for name, value_node in checker.mapping(node, "auth.aksk"):
        key = f"auth.aksk.{name}"
        if name in _SECRET_KEYS:
            checker.problem(value_node, key, _SECRET_KEYS[name])
        elif name not in _AKSK_KEYS:
            checker.problem(value_node, key, f"unknown key (known: {', '.join(_AKSK_KEYS)})")
        elif name == "credentials_file":
            values[name] = _path(checker, value_node, key, base)
        elif name == "iam_endpoint":
            text = checker.text(value_node, key)
            if text and not _BASE_URL.fullmatch(text):
                checker.problem(value_node, key, f"{text!r} is not a base URL like https://host")
            values[name] = text.rstrip("/") if text else None
        elif name == "project":
            values[name] = checker.text(value_node, key)
        else:
            values[name] = _env_name(checker, value_node, key)
    if len(checker.problems) != before:
        return None
    defaults = AkSkAuth()
    file, iam_endpoint, project = (values.get(k) for k in ("credentials_file", *_AKSK_KEYS[3:]))
    return AkSkAuth(
        ak_env=str(values.get("ak_env") or defaults.ak_env),
        sk_env=str(values.get("sk_env") or defaults.sk_env),
        credentials_file=file if isinstance(file, Path) else None,
        iam_endpoint=iam_endpoint if isinstance(iam_endpoint, str) else None,
        project=project if isinstance(project, str) else None,
    )


def _env_name(checker: _Checker, node: yaml.Node, key: str) -> str | None:
    if not isinstance(node, yaml.ScalarNode) or node.tag == _NULL:
        checker.problem(node, key, _ENV_ADVICE)
        return None
    # Never echo the value: a user who pasted the secret itself here must not see it printed.
    if not ENV_NAME.fullmatch(node.value):
        checker.problem(node, key, _ENV_ADVICE)
        return None
    return str(node.value)


def _path(checker: _Checker, node: yaml.Node, key: str, base: Path) -> Path | None:
    text = checker.text(node, key)
    if text == "":  # not "no path": `token_file: ''` must not fall back to $BATCHTHUMB_TOKEN
        checker.problem(node, key, "is empty; give a path")
    if not text:
        return None
    # Relative to the job file, like every path in it; ~ is the running user's home.
    return base / Path(text).expanduser()


def _parse(
    path: Path,
    checker: _Checker,
    walk: Callable[[_Events], _T],
    *,
    limit: int | None = None,
    what: str = "a job file",
) -> _T:
    """Walk the parser's events of a YAML file; a file that is not YAML is one problem."""
    with _parsing(path, checker, limit=limit, what=what) as events:
        return walk(events)


@contextmanager
def _parsing(
    path: Path, checker: _Checker, *, limit: int | None = None, what: str = "a job file"
) -> Iterator[_Events]:
    """The parser's events of a YAML file, read from disk as they are needed.

    The file is streamed, never read whole (a million-item job is some 190 MB of text), and
    only a regular file of at most ``limit`` bytes (a job file's cap by default) is read.
    """
    limit = JOB_FILE_LIMIT if limit is None else limit
    try:
        file = open_regular(path)
    except FileRefused as exc:
        raise _unusable(path, 0, exc.reason) from None
    except OSError as exc:
        raise _unusable(path, 0, f"cannot read: {exc.strerror}") from None
    with file:
        try:
            loader = _Loader(_Utf8Reader(file, limit))
            try:
                # The loader's own method, not yaml.parse: its generator costs as much as libyaml.
                yield _Events(checker, iter(loader.get_event, None))
            finally:
                loader.dispose()
        except _TooLarge:
            reason = f"is larger than {describe(limit)}, the limit for {what}"
            raise _unusable(path, 0, reason) from None
        except _NotUtf8 as exc:
            raise _unusable(path, exc.line, f"not UTF-8 text (byte {exc.offset})") from None
        except yaml.MarkedYAMLError as exc:
            # Whatever the walk found before the parser gave up is moot: the file is not YAML.
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark is not None else 0
            reason = exc.problem or exc.context or "invalid YAML"
            raise _unusable(path, line, f"not valid YAML: {reason}") from None
        except yaml.reader.ReaderError as exc:
            # A control character: libyaml gives its offset, but no mark to take a line from.
            reason = f"not valid YAML: {exc.reason} (character {exc.character:#04x})"
            line = _line_at(path, exc.position, chars=issubclass(_Loader, yaml.reader.Reader))
            raise _unusable(path, line, reason) from None
        except yaml.YAMLError as exc:
            raise _unusable(path, 0, f"not valid YAML: {exc}") from None
        except OSError as exc:
            raise _unusable(path, 0, f"cannot read: {exc.strerror}") from None


def _line_at(path: Path, offset: int, *, chars: bool) -> int:
    """The line holding ``offset`` of a file already read once (an error path only): a byte
    offset from libyaml, a character index (``chars``) from the pure parser."""
    try:
        with open_regular(path) as file:
            if chars:
                return codecs.getreader("utf-8")(file).read(chars=offset).count("\n") + 1
            return file.read(offset).count(b"\n") + 1
    except (FileRefused, OSError, UnicodeDecodeError):
        return 0


def _unusable(path: Path, line: int, message: str) -> JobFileError:
    """The one problem of a file that cannot be read as YAML at all."""
    return JobFileError([Problem(str(path), line, "", message)])


class _TooLarge(Exception):
    pass


class _NotUtf8(Exception):
    def __init__(self, line: int, offset: int) -> None:
        self.line = line
        self.offset = offset


class _Utf8Reader:
    """A binary file read in chunks for the parser, each checked as UTF-8 on the way.

    Both parsers would refuse a bad byte too, but each in its own words; this says which line.
    """

    __slots__ = ("decoder", "file", "limit", "lines", "offset")

    def __init__(self, file: BinaryIO, limit: int) -> None:
        self.file = file
        self.limit = limit
        self.decoder = codecs.getincrementaldecoder("utf-8")()
        self.lines = 0  # newlines before this chunk
        self.offset = 0  # bytes before this chunk

    def read(self, size: int = -1, /) -> bytes:
        """The next chunk of at most ``size`` bytes; b"" at the end of the file."""
        data = self.file.read(size)
        try:
            self.decoder.decode(data, final=not data)
        except UnicodeDecodeError as exc:
            seen = exc.object  # this chunk, after any sequence the last one left unfinished
            line = self.lines + seen.count(b"\n", 0, exc.start) + 1
            raise _NotUtf8(line, self.offset - (len(seen) - len(data)) + exc.start) from None
        self.lines += data.count(b"\n")
        self.offset += len(data)
        if self.offset > self.limit:
            raise _TooLarge
        return data


def _read_setting(checker: _Checker, name: str, node: yaml.Node) -> object:
    if name in ("concurrency", "burst", "history", "max_list_pages"):
        return checker.integer(node, name, minimum=1)
    if name in ("retries", "breaker"):
        return checker.integer(node, name, minimum=0)
    if name in ("rate", "timeout", "backoff", "lock_wait", "max_answer_mb"):
        return checker.number(node, name, positive=name in ("timeout", "max_answer_mb"))
    if name in _BOOL_SETTINGS:
        return checker.boolean(node, name)
    if name == "max_duration":
        return _max_duration(checker, node)
    value = checker.text(node, name)
    if value is None:
        return None
    if name == "region" and not REGION.fullmatch(value):
        checker.problem(node, name, f"{value!r} is not a region name like cn-north-4")
        return None
    problem = _endpoint_problem(value) if name == "endpoint" else None
    if problem:
        checker.problem(node, name, problem)
        return None
    return value


def _max_duration(checker: _Checker, node: yaml.Node) -> float | None:
    """Seconds as a number, or a duration such as ``90s``, ``30m`` or ``2h``."""
    if isinstance(node, yaml.ScalarNode) and node.tag in (_INT, _FLOAT):
        return checker.number(node, "max_duration", positive=True)
    text = checker.text(node, "max_duration")
    if text is None:
        return None
    try:
        return parse_duration(text)
    except ValueError as exc:
        checker.problem(node, "max_duration", str(exc))
        return None


def _endpoint_problem(url: str) -> str | None:
    """What is wrong with an endpoint URL; never quotes one that holds a password."""
    if url_has_credentials(url):
        return URL_CREDENTIALS_ADVICE
    if not _BASE_URL.fullmatch(url):
        return f"{url!r} is not a base URL like https://host[:port]"
    return None


def _settings(checker: _Checker, root: _At, values: dict[str, object], base: Path) -> RunSettings:
    if "endpoint" in values and "region" in values:
        checker.problem(root, "region", "give either `endpoint` or `region`, not both")
    given = {name: value for name, value in values.items() if value is not None}
    if isinstance(given.get("region"), str):
        given["endpoint"] = endpoint_for_region(str(given["region"]))
    if isinstance(given.get("endpoint"), str):
        given["endpoint"] = str(given["endpoint"]).rstrip("/")
    for name in _PATH_SETTINGS:
        if isinstance(given.get(name), str):
            given[name] = base / str(given[name])
    if "max_answer_mb" in given:
        given["max_answer_bytes"] = int(float(str(given.pop("max_answer_mb"))) * MIB)
    try:
        return RunSettings(**given)  # type: ignore[arg-type]  # each value checked above
    except UsageError as exc:  # settings that contradict each other, e.g. quiet and verbose
        checker.problem(root, "", str(exc))
        return RunSettings()


def _read_defaults(checker: _Checker, node: yaml.Node) -> dict[str, tuple[str, _At]]:
    defaults: dict[str, tuple[str, _At]] = {}
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
    if all(name in defaults for name in _SOURCE_KEYS):
        checker.problem(node, "defaults", "give either `img_url` or `image`, not both")
    return defaults


def _check_field(checker: _Checker, node: _At, key: str, name: str, value: str) -> bool:
    message = field_problem(name, value)
    if message is not None:
        checker.problem(node, key, message)
        return False
    return True


def _read_items_file(
    checker: _Checker, path: Path, defaults: dict[str, tuple[str, _At]]
) -> ItemStream:
    from batchthumb.itemsfile import read_items_file

    if checker.problems:
        return ()  # the job file itself is wrong: say so before reading a large file
    if "image" in defaults:
        checker.problem(
            defaults["image"][1], "defaults.image", "items_file items take img_url, not image"
        )
        return ()
    values = {name: value for name, (value, _) in defaults.items()}
    found = read_items_file(path, defaults=values, problems=checker.problems)
    if found is not None and not len(found):
        checker.problems.append(Problem(str(path), 0, "", "lists no items"))
    return () if found is None else found


@dataclass(slots=True)
class _ItemCheck:
    """What checking the items found: never the items themselves, which the run reads again."""

    count: int = 0
    projects: set[str] = field(default_factory=set)
    repeated: set[int] = field(default_factory=set)  # key digests listed more than once
    problems: list[Problem] = field(default_factory=list)
    more: int = 0  # problems beyond MAX_PROBLEMS, counted only
    kept: list[Item] | None = field(default_factory=list)  # None past KEEP_IN_MEMORY items


def _check_items(
    events: _Events, event: yaml.Event, defaults: dict[str, tuple[str, _At]]
) -> _ItemCheck:
    """Check every item of ``items:`` in one pass, keeping 8 bytes per item (its key digest)."""
    checker = events.checker
    check = _ItemCheck()
    problems = checker.problems
    before = len(problems)
    digests = KeyDigests()
    projects = check.projects
    for _, item in _walk_items(events, event, defaults):
        if len(problems) - before > MAX_PROBLEMS:  # a million bad items are not a million lines
            check.more += len(problems) - before - MAX_PROBLEMS
            del problems[before + MAX_PROBLEMS :]
        if item is not None:
            check.count += 1
            digests.add(item.key)
            projects.add(item.project_id)
            if check.kept is not None:
                check.kept.append(item)
                if check.count > KEEP_IN_MEMORY:
                    check.kept = None  # a large job: the run reads the file again
    check.repeated = digests.repeated()
    check.problems = problems[before:]
    del problems[before:]
    return check


def _walk_items(
    events: _Events, event: yaml.Event, defaults: dict[str, tuple[str, _At]]
) -> Iterator[tuple[yaml.Event, Item | None]]:
    """Each element of ``items:`` (its first event) and the item it makes, None if it is bad."""
    checker = events.checker
    if type(event) is not yaml.SequenceStartEvent:
        node = events.node(event, "items")
        if node is not None:
            checker.problem(node, "items", f"must be a list of plans, not {_kind(node)}")
        return
    if event.anchor is not None:
        checker.problem(event, "items", _ANCHORS)
    index = 0
    for item_event in events.events:
        if type(item_event) is yaml.SequenceEndEvent:
            break
        yield item_event, _walk_item(events, item_event, f"items[{index}]", defaults)
        index += 1
    if not index:
        checker.problem(event, "items", "is empty; list at least one plan")


def _duplicates(events: _Events, found: _Sections) -> list[Problem]:
    """The items checked again, for the few whose key digests repeat: exact keys, first lines.

    Merged with the other problems of the items by line, as one pass would have found them.
    """
    check = found.items
    assert check is not None
    value = _find_items(events)
    first: dict[tuple[str, str], int] = {}
    duplicates: list[Problem] = []
    if value is not None:
        path = str(events.checker.path)
        for index, (item_event, item) in enumerate(_walk_items(events, value, found.defaults)):
            if item is None or key_hash(item.key) not in check.repeated:
                continue
            seen = first.setdefault(item.key, item.line)
            if seen != item.line:
                message = f"plan {item.plan_id} is already listed at line {seen}"
                duplicates.append(Problem(path, _line(item_event), f"items[{index}]", message))
    return duplicates


def _item_problems(path: Path, check: _ItemCheck, duplicates: list[Problem]) -> list[Problem]:
    """The problems of the items in file order, as one pass would have found them; capped."""
    merged = sorted((*check.problems, *duplicates), key=lambda problem: problem.line)
    more = check.more + max(0, len(merged) - MAX_PROBLEMS)
    del merged[MAX_PROBLEMS:]
    if more:
        merged.append(Problem(str(path), 0, "items", f"and {more} more problems"))
    return merged


def _walk_item(
    events: _Events, event: yaml.Event, where: str, defaults: dict[str, tuple[str, _At]]
) -> Item | None:
    checker = events.checker
    if type(event) is not yaml.MappingStartEvent:
        node = events.node(event, where)
        if node is not None:
            checker.problem(node, where, f"must be a mapping, not {_kind(node)}")
        return None
    before = len(checker.problems)
    if event.anchor is not None:
        checker.problem(event, where, _ANCHORS)
    own: dict[str, tuple[str, _At]] = {}
    for name, value in events.pairs(where):
        if name not in _ITEM_KEYS:
            key = f"{where}.{name}"
            checker.problem(value, key, f"unknown key (known: {', '.join(_ITEM_KEYS)})")
            events.skip(value)
            continue
        text: str | None
        if type(value) is yaml.ScalarEvent and value.anchor is None and not _null(value):
            text = value.value  # the usual case, without composing a node
        else:
            node = events.node(value, f"{where}.{name}")
            text = None if node is None else checker.text(node, f"{where}.{name}")
        if text is None:
            continue
        message = field_problem(name, text)
        if message is not None:
            checker.problem(value, f"{where}.{name}", message)
            continue
        own[name] = (text, value)
    if len(checker.problems) != before:
        return None
    return _item(checker, event, where, own, defaults)


def _item(
    checker: _Checker,
    node: _At,
    where: str,
    own: dict[str, tuple[str, _At]],
    defaults: dict[str, tuple[str, _At]],
) -> Item | None:
    """The item its own well-formed fields and the defaults make, if they make one."""
    sources = [name for name in _SOURCE_KEYS if name in own]
    if len(sources) > 1:
        checker.problem(node, where, "give either `img_url` or `image`, not both")
        return None
    # The item's own source replaces the default's, whichever kind that is.
    merged = {n: v for n, v in defaults.items() if not (sources and n in _SOURCE_KEYS)}
    merged.update(own)
    ok = True
    for name in ("project_id", "plan_id"):
        if name not in merged:
            checker.problem(node, f"{where}.{name}", "missing")
            ok = False
    if not any(name in merged for name in _SOURCE_KEYS):
        checker.problem(node, f"{where}.img_url", "missing (or give `image:` a local file)")
        ok = False
    if not ok:
        return None
    line = _line(node)
    project_id, plan_id = merged["project_id"][0], merged["plan_id"][0]
    if "image" in merged:
        value, value_node = merged["image"]
        key = f"{where}.image" if "image" in own else "defaults.image"
        image = checker.image(value_node, key, value)
        return None if image is None else Item(project_id, plan_id, None, line, image=image)
    # No warning when the img_url's middle part is another id than project_id: what it holds
    # is unproven, and the documented upload examples answer such URLs (facts §0).
    return Item(project_id, plan_id, merged["img_url"][0], line)
