"""Reading a seed YAML file into a sandbox.

::

    projects:
      919bb351ef424e2daaf3dd80c179fae9:
        plans:
          - {id: bf56512ab4e544c29d03d068711ca56a, name: Roadmap, type: gantt}
          - {name: Sprint map, type: mind, image: logo.png}   # relative to the seed file
        generate: {count: 450, name: "Plan {n}", type: gantt}

The whole file is checked first; nothing is added unless it is valid.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from batchthumb.errors import BatchthumbError, Problem
from batchthumb.files import SEED_FILE_LIMIT, FileRefused, read_regular
from batchthumb.images import image_type
from batchthumb.sandbox.server import Sandbox
from batchthumb.sandbox.state import IMG_URL_PATTERN, PLAN_TYPES, is_id

MAX_GENERATED = 1_000_000
_PLAN_KEYS = {"id", "name", "type", "image", "img_url"}
_GENERATE_KEYS = {"count", "name", "type"}


class SeedError(BatchthumbError):
    """A seed file cannot be read or is invalid; ``problems`` lists every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("invalid sandbox seed file:\n" + "\n".join(map(str, self.problems)))


@dataclass(frozen=True, slots=True)
class _PlanSeed:
    project_id: str
    name: str
    type: str
    plan_id: str | None
    img_url: str | None
    image: Path | None
    where: str = ""
    line: int = 0


class _Reader:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.problems: list[Problem] = []
        self.plans: list[_PlanSeed] = []
        self.plan_ids: set[tuple[str, str]] = set()
        self._constructor = yaml.SafeLoader("")

    def problem(self, node: yaml.Node, key: str, message: str) -> None:
        self.problems.append(Problem(str(self.path), node.start_mark.line + 1, key, message))

    def value(self, node: yaml.Node) -> Any:
        return self._constructor.construct_object(node, deep=True)

    def mapping(self, node: yaml.Node, key: str) -> list[tuple[yaml.ScalarNode, yaml.Node]]:
        if not isinstance(node, yaml.MappingNode):
            self.problem(node, key, "expected a mapping")
            return []
        items: list[tuple[yaml.ScalarNode, yaml.Node]] = []
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode):
                items.append((k, v))
            else:
                self.problem(k, key, "keys must be plain strings")
        return items

    def text(self, node: yaml.Node, key: str) -> str | None:
        # Raw scalar text, so ids made only of digits stay strings.
        if isinstance(node, yaml.ScalarNode):
            return str(node.value)
        self.problem(node, key, "expected a string")
        return None

    def read_root(self, root: yaml.Node | None) -> None:
        if root is None:
            self.problems.append(Problem(str(self.path), 0, "", "the file is empty"))
            return
        for key_node, value in self.mapping(root, ""):
            if key_node.value != "projects":
                self.problem(key_node, key_node.value, "unknown key (expected: projects)")
                continue
            for project_node, body in self.mapping(value, "projects"):
                self.read_project(project_node, body)

    def read_project(self, key_node: yaml.ScalarNode, body: yaml.Node) -> None:
        project_id = str(key_node.value)
        where = f"projects.{project_id}"
        if not is_id(project_id):
            self.problem(key_node, where, "a project id is 32 letters or digits")
            return
        if isinstance(body, yaml.ScalarNode) and body.value in ("", "~", "null"):
            self.plans.append(_PlanSeed(project_id, "", "", None, None, None))  # empty project
            return
        for key, value in self.mapping(body, where):
            if key.value == "plans":
                if not isinstance(value, yaml.SequenceNode):
                    self.problem(value, f"{where}.plans", "expected a list of plans")
                    continue
                for index, item in enumerate(value.value):
                    self.read_plan(project_id, item, f"{where}.plans[{index}]")
            elif key.value == "generate":
                self.read_generate(project_id, value, f"{where}.generate")
            else:
                self.problem(key, f"{where}.{key.value}", "unknown key (expected: plans, generate)")

    def read_plan(self, project_id: str, node: yaml.Node, where: str) -> None:
        fields: dict[str, tuple[yaml.Node, Any]] = {}
        for key, value in self.mapping(node, where):
            if key.value not in _PLAN_KEYS:
                self.problem(
                    key, f"{where}.{key.value}", f"unknown key (expected: {_keys(_PLAN_KEYS)})"
                )
            elif key.value in ("id", "name", "image", "img_url"):
                fields[key.value] = (value, self.text(value, f"{where}.{key.value}"))
            else:
                fields[key.value] = (value, self.value(value))
        name = fields.get("name", (node, None))[1]
        if not isinstance(name, str) or not name:
            self.problem(node, f"{where}.name", "every plan needs a non-empty name")
            return
        plan_type = self.plan_type(fields.get("type", (node, "mind")), where)
        plan_id = fields.get("id", (node, None))[1]
        if plan_id is not None and not is_id(plan_id):
            self.problem(fields["id"][0], f"{where}.id", "a plan id is 32 letters or digits")
        elif plan_id is not None and (project_id, plan_id) in self.plan_ids:
            self.problem(fields["id"][0], f"{where}.id", f"plan id {plan_id} appears twice")
        elif plan_id is not None:
            self.plan_ids.add((project_id, plan_id))
        img_url = fields.get("img_url", (node, None))[1]
        if img_url is not None and IMG_URL_PATTERN.fullmatch(img_url) is None:
            self.problem(fields["img_url"][0], f"{where}.img_url", "not a /v1/upload/... URL")
        image_name = fields.get("image", (node, None))[1]
        image = None
        if image_name is not None:
            image = self.path.parent / image_name
            if img_url is not None:
                self.problem(
                    fields["image"][0], f"{where}.image", "give image or img_url, not both"
                )
            elif not image.is_file():
                self.problem(fields["image"][0], f"{where}.image", f"no such file: {image}")
        if plan_type is not None:
            line = node.start_mark.line + 1
            seed = _PlanSeed(project_id, name, plan_type, plan_id, img_url, image, where, line)
            self.plans.append(seed)

    def plan_type(self, field: tuple[yaml.Node, Any], where: str) -> str | None:
        node, value = field
        if value not in PLAN_TYPES:
            self.problem(node, f"{where}.type", "type must be gantt or mind")
            return None
        return str(value)

    def read_generate(self, project_id: str, node: yaml.Node, where: str) -> None:
        fields: dict[str, tuple[yaml.Node, Any]] = {}
        for key, value in self.mapping(node, where):
            if key.value not in _GENERATE_KEYS:
                self.problem(
                    key, f"{where}.{key.value}", f"unknown key (expected: {_keys(_GENERATE_KEYS)})"
                )
            else:
                fields[key.value] = (value, self.value(value))
        count_node, count = fields.get("count", (node, None))
        if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= MAX_GENERATED:
            self.problem(
                count_node, f"{where}.count", f"count must be an integer 0..{MAX_GENERATED}"
            )
            return
        name_node, template = fields.get("name", (node, "Plan {n}"))
        if not isinstance(template, str) or not template:
            self.problem(name_node, f"{where}.name", "name must be a non-empty string")
            return
        plan_type = self.plan_type(fields.get("type", (node, "mind")), where)
        if plan_type is None:
            return
        for n in range(1, count + 1):
            name = template.replace("{n}", str(n))
            self.plans.append(_PlanSeed(project_id, name, plan_type, None, None, None))


def _keys(keys: set[str]) -> str:
    return ", ".join(sorted(keys))


def load_seed(path: str | Path, sandbox: Sandbox) -> int:
    """Add the projects, plans and images of a seed file to ``sandbox``; return the plan count.

    Raises :class:`SeedError` listing every problem (``file:line: key: message``) and adds
    nothing when the file is unreadable or invalid.
    """
    path = Path(path)
    reader = _Reader(path)
    try:
        data = read_regular(path, limit=SEED_FILE_LIMIT, what="a seed file")
        root = yaml.compose(data.decode("utf-8"), Loader=yaml.SafeLoader)
    except FileRefused as exc:
        raise SeedError([Problem(str(path), 0, "", exc.reason)]) from None
    except UnicodeDecodeError:
        raise SeedError([Problem(str(path), 0, "", "not UTF-8 text")]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 0
        raise SeedError([Problem(str(path), line, "", f"not valid YAML: {exc}")]) from exc
    reader.read_root(root)
    images = _read_images(reader, sandbox.config.max_upload_bytes)
    for project_id, plan_id in sorted(reader.plan_ids):
        if sandbox.plan(project_id, plan_id) is not None:
            reader.problems.append(
                Problem(str(path), 0, f"projects.{project_id}", f"plan {plan_id} already exists")
            )
    if reader.problems:
        raise SeedError(reader.problems)
    return _apply(reader.plans, images, sandbox)


def _read_images(reader: _Reader, limit: int) -> dict[Path, tuple[bytes, str]]:
    images: dict[Path, tuple[bytes, str]] = {}
    for seed in reader.plans:
        if seed.image is None or seed.image in images:
            continue
        where = Problem(str(reader.path), seed.line, f"{seed.where}.image", "")
        try:
            data = read_regular(seed.image, limit=limit, what="an upload")
        except FileRefused as exc:
            reader.problems.append(_replace(where, f"{seed.image}: {exc.reason}"))
            continue
        ext = image_type(data)
        if ext is None:
            reader.problems.append(_replace(where, "not a png, jpg, gif, bmp or webp image"))
        else:
            images[seed.image] = (data, ext)
    return images


def _replace(problem: Problem, message: str) -> Problem:
    return Problem(problem.path, problem.line, problem.key, message)


def _apply(plans: list[_PlanSeed], images: dict[Path, tuple[bytes, str]], sandbox: Sandbox) -> int:
    uploaded: dict[tuple[str, Path], str] = {}
    count = 0
    for seed in plans:
        sandbox.add_project(seed.project_id)
        if not seed.name:
            continue
        img_url = seed.img_url
        if seed.image is not None:
            key = (seed.project_id, seed.image)
            if key not in uploaded:
                data, ext = images[seed.image]
                uploaded[key] = sandbox.upload(seed.project_id, data, ext)
            img_url = uploaded[key]
        sandbox.add_plan(seed.project_id, seed.name, seed.type, img_url, seed.plan_id)
        count += 1
    return count
