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

from batchthumb.auth import ENV_NAME, AkSkAuth, AuthConfig, IamAuth, TokenAuth
from batchthumb.errors import JobFileError, Problem
from batchthumb.images import ImageProblem, inspect_image
from batchthumb.model import (
    IMG_URL,
    Item,
    ItemSource,
    Job,
    LocalImage,
    Settings,
    endpoint_for_region,
    field_problem,
)

# libyaml's parser is several times faster on large jobs; fall back to the pure one.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d+")
_BASE_URL = re.compile(r"https?://[^/\s]+/?")
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
_TOP_KEYS = frozenset((*_SETTING_KEYS, "auth", "defaults", "items", "items_file"))
_AUTH_WAYS = ("token_env", "token_file", "iam", "aksk")
_IAM_KEYS = ("endpoint", "domain", "user", "password_env", "project")
_AKSK_KEYS = ("ak_env", "sk_env", "credentials_file")
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
_ITEM_KEYS = ("project_id", "plan_id", "img_url", "image")
_SOURCE_KEYS = ("img_url", "image")  # where the thumbnail comes from: exactly one
_DEFAULT_KEYS = frozenset(("project_id", "img_url", "image"))
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
    images: dict[Path, LocalImage | str] = field(default_factory=dict)  # checked once per path
    reported: set[int] = field(default_factory=set)

    def image(self, node: yaml.Node, key: str, value: str) -> LocalImage | None:
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
            if id(node) not in self.reported:  # a bad `defaults.image` is reported once
                self.reported.add(id(node))
                self.problem(node, key, found)
            return None
        return found

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
    auth: AuthConfig | None = None
    for name, node in checker.mapping(root, ""):
        if name in _SECRET_KEYS:
            checker.problem(node, name, _SECRET_KEYS[name])
        elif name not in _TOP_KEYS:
            checker.problem(node, name, f"unknown key (known: {', '.join(sorted(_TOP_KEYS))})")
        elif name == "items":
            items_node = node
        elif name == "items_file":
            text = checker.text(node, name)
            items_file = None if text is None else (text, node)
        elif name == "defaults":
            defaults = _read_defaults(checker, node)
        elif name == "auth":
            auth = _read_auth(checker, node, path.parent)
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
    return Job(
        path=path, settings=settings, items=items, warnings=tuple(checker.warnings), auth=auth
    )


def load_auth(path: Path) -> AuthConfig:
    """Read a YAML file holding just an ``auth:`` section (``run --auth FILE``)."""
    checker = _Checker(path)
    root = _compose(path)
    auth: AuthConfig | None = None
    found = False
    for name, node in checker.mapping(root, "") if root is not None else ():
        if name == "auth":
            found = True
            auth = _read_auth(checker, node, path.parent)
        elif name in _SECRET_KEYS:
            checker.problem(node, name, _SECRET_KEYS[name])
        else:
            checker.problem(node, name, "unknown key; this file holds only an `auth:` section")
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
            if text and name == "endpoint" and not _BASE_URL.fullmatch(text):
                checker.problem(value_node, key, f"{text!r} is not a base URL like https://host")
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
        else:
            values[name] = _env_name(checker, value_node, key)
    if len(checker.problems) != before:
        return None
    defaults = AkSkAuth()
    file = values.get("credentials_file")
    return AkSkAuth(
        ak_env=str(values.get("ak_env") or defaults.ak_env),
        sk_env=str(values.get("sk_env") or defaults.sk_env),
        credentials_file=file if isinstance(file, Path) else None,
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
    if not text:
        return None
    # Relative to the job file, like every path in it; ~ is the running user's home.
    return base / Path(text).expanduser()


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
    if name == "endpoint" and not _BASE_URL.fullmatch(value):
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
        region=region if isinstance(region, str) else None,
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
    if all(name in defaults for name in _SOURCE_KEYS):
        checker.problem(node, "defaults", "give either `img_url` or `image`, not both")
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
    if "image" in defaults:
        checker.problem(
            defaults["image"][1], "defaults.image", "items_file items take img_url, not image"
        )
        return ()
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
    own: dict[str, tuple[str, yaml.Node]] = {}
    before = len(checker.problems)
    for name, value_node in checker.mapping(node, where):
        key = f"{where}.{name}"
        if name not in _ITEM_KEYS:
            checker.problem(value_node, key, f"unknown key (known: {', '.join(_ITEM_KEYS)})")
            continue
        value = checker.text(value_node, key)
        if value is not None and _check_field(checker, value_node, key, name, value):
            own[name] = (value, value_node)
    if len(checker.problems) != before:
        return None
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
    line = node.start_mark.line + 1
    project_id, plan_id = merged["project_id"][0], merged["plan_id"][0]
    if "image" in merged:
        value, value_node = merged["image"]
        key = f"{where}.image" if "image" in own else "defaults.image"
        image = checker.image(value_node, key, value)
        return None if image is None else Item(project_id, plan_id, None, line, image=image)
    item = Item(project_id, plan_id, merged["img_url"][0], line)
    match = IMG_URL.fullmatch(merged["img_url"][0])
    if match and match["project"] != item.project_id:
        # Inferred (facts §1.6): the URL path seems to embed the project it was uploaded to.
        checker.warn(
            node, where, "img_url was uploaded to another project; the API may refuse it there"
        )
    return item
