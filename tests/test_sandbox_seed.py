"""Tests for loading a sandbox seed YAML file."""

from __future__ import annotations

from pathlib import Path

import pytest

from batchthumb.sandbox import Sandbox, SeedError, load_seed
from tests.imagedata import png

P = "919bb351ef424e2daaf3dd80c179fae9"
PLAN = "bf56512ab4e544c29d03d068711ca56a"
PNG = png()


def write(tmp_path: Path, text: str) -> Path:
    """Write a seed file and return its path."""
    path = tmp_path / "seed.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_seed_plans_images_and_generated_plans(tmp_path: Path) -> None:
    """Plans, an image beside the seed file and 450 generated plans all land in the sandbox."""
    (tmp_path / "logo.png").write_bytes(PNG)
    path = write(
        tmp_path,
        f"""
projects:
  {P}:
    plans:
      - {{id: {PLAN}, name: Roadmap, type: gantt}}
      - {{name: Sprint map, type: mind, image: logo.png}}
    generate: {{count: 450, name: "Plan {{n}}", type: gantt}}
""",
    )
    sandbox = Sandbox()
    assert load_seed(path, sandbox) == 452
    plans = sandbox.plans(P)
    assert len(plans) == 452
    assert (plans[0].id, plans[0].name, plans[0].type) == (PLAN, "Roadmap", "gantt")
    sprint = plans[1]
    assert sprint.img_url is not None
    assert sprint.img_url.startswith(f"/v1/upload/{P}/")
    assert sprint.img_url.endswith(".png")
    assert sandbox.image_bytes(sprint.img_url) == PNG
    assert [p.name for p in plans[2:4]] == ["Plan 1", "Plan 2"]
    assert plans[-1].name == "Plan 450"


def test_digit_only_ids_stay_strings(tmp_path: Path) -> None:
    """Ids made only of digits are read as text, not as YAML integers."""
    project, plan = "1" * 32, "2" * 32
    path = write(
        tmp_path, f"projects:\n  {project}:\n    plans:\n      - {{id: {plan}, name: A}}\n"
    )
    sandbox = Sandbox()
    load_seed(path, sandbox)
    assert [(p.project_id, p.id, p.type) for p in sandbox.plans(project)] == [
        (project, plan, "mind")
    ]


def test_empty_project_is_created(tmp_path: Path) -> None:
    """A project with no body is created empty, so strict mode knows it."""
    path = write(tmp_path, f"projects:\n  {P}:\n")
    sandbox = Sandbox()
    assert load_seed(path, sandbox) == 0
    assert P in sandbox.store.projects


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "the file is empty"),
        ("projects: [", "not valid YAML"),
        ("plans: []\n", ":1: plans: unknown key"),
        ("projects:\n  abc:\n    plans: []\n", ":2: projects.abc: a project id is 32"),
        (
            f"projects:\n  {P}:\n    plans:\n      - {{type: gantt}}\n",
            f":4: projects.{P}.plans[0].name",
        ),
        (
            f"projects:\n  {P}:\n    plans:\n      - {{name: A, type: pie}}\n",
            "type must be gantt or mind",
        ),
        (
            f"projects:\n  {P}:\n    plans:\n      - {{name: A, colour: red}}\n",
            "plans[0].colour: unknown key",
        ),
        (f"projects:\n  {P}:\n    plans:\n      - {{name: A, id: short}}\n", "a plan id is 32"),
        (f"projects:\n  {P}:\n    plans:\n      - {{name: A, image: nope.png}}\n", "no such file"),
        (f"projects:\n  {P}:\n    plans: {{name: A}}\n", "expected a list of plans"),
        (f"projects:\n  {P}:\n    generate: {{count: -1}}\n", "count must be an integer"),
        (
            f"projects:\n  {P}:\n    plans:\n      - {{name: A, img_url: http://x}}\n",
            "not a /v1/upload/... URL",
        ),
        (
            f"projects:\n  {P}:\n    plans:\n      - {{name: A, id: {PLAN}}}\n"
            f"      - {{name: B, id: {PLAN}}}\n",
            f":5: projects.{P}.plans[1].id: plan id {PLAN} appears twice",
        ),
    ],
)
def test_invalid_seed_files(tmp_path: Path, text: str, expected: str) -> None:
    """Each kind of bad input is reported as file:line: key: message and nothing is added."""
    path = write(tmp_path, text)
    sandbox = Sandbox()
    with pytest.raises(SeedError) as raised:
        load_seed(path, sandbox)
    assert expected in str(raised.value)
    assert str(path) in str(raised.value)
    assert sandbox.store.projects == {}


def test_all_problems_reported_and_images_checked(tmp_path: Path) -> None:
    """Every problem is listed at once, including a file that is not an image."""
    (tmp_path / "notes.png").write_bytes(b"plain text")
    path = write(
        tmp_path,
        f"projects:\n  {P}:\n    plans:\n      - {{name: A, image: notes.png}}\n"
        "      - {type: mind}\n",
    )
    with pytest.raises(SeedError) as raised:
        load_seed(path, Sandbox())
    assert len(raised.value.problems) == 2
    assert "not a png, jpg, gif, bmp or webp image" in str(raised.value)


def test_unreadable_file_and_existing_plan(tmp_path: Path) -> None:
    """A missing file is a SeedError; so is a plan id the sandbox already has."""
    with pytest.raises(SeedError, match="no such file"):
        load_seed(tmp_path / "missing.yaml", Sandbox())
    sandbox = Sandbox()
    sandbox.add_plan(P, "Existing", plan_id=PLAN)
    path = write(tmp_path, f"projects:\n  {P}:\n    plans:\n      - {{name: A, id: {PLAN}}}\n")
    with pytest.raises(SeedError, match="already exists"):
        load_seed(path, sandbox)
    assert len(sandbox.plans(P)) == 1
