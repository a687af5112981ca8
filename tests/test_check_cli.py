"""`batchthumb check` and `run --dry-run` end to end: list calls only, a diff of the job."""

from __future__ import annotations

from pathlib import Path

import pytest

from batchthumb.sandbox import Sandbox, SandboxConfig
from tests.clihelp import cli, environment
from tests.conftest import P1, TOKEN, plan_id
from tests.pictures import thumbnail

pytestmark = pytest.mark.anyio

GONE = 9  # a plan the job names that the project does not have


def seed_drift(box: Sandbox, folder: Path, url: str) -> Path:
    """Plans 0 (in sync), 1 (another image), 2 (none), 3 (a local file), and a missing one."""
    shown = box.upload(P1, thumbnail(0))
    other = box.upload(P1, thumbnail(1))
    new = box.upload(P1, thumbnail(2))
    box.add_plan(P1, name="In sync", type="gantt", plan_id=plan_id(0), img_url=shown)
    box.add_plan(P1, name="Drifted", type="gantt", plan_id=plan_id(1), img_url=other)
    box.add_plan(P1, name="Bare", type="mind", plan_id=plan_id(2))
    box.add_plan(P1, name="From a file", type="gantt", plan_id=plan_id(3), img_url=other)
    (folder / "logo.png").write_bytes(thumbnail(3))
    job = folder / "job.yaml"
    job.write_text(
        f"endpoint: {url}\ndefaults:\n  project_id: {P1}\nitems:\n"
        f"  - {{plan_id: {plan_id(0)}, img_url: {shown}}}\n"
        f"  - {{plan_id: {plan_id(1)}, img_url: {new}}}\n"
        f"  - {{plan_id: {plan_id(2)}, img_url: {new}}}\n"
        f"  - {{plan_id: {plan_id(3)}, image: logo.png}}\n"
        f"  - {{plan_id: {plan_id(GONE)}, img_url: {new}}}\n",
        encoding="utf-8",
    )
    return job


def rows(out: str) -> dict[str, str]:
    """plan_id -> its whole row, for the table's rows."""
    found = {}
    for line in out.splitlines():
        for n in (0, 1, 2, 3, GONE):
            if f"/{plan_id(n)}" in line:
                found[plan_id(n)] = line
    return found


async def test_check_sorts_every_plan_and_sends_only_list_calls(
    tmp_path: Path, sandbox: tuple[Sandbox, str]
) -> None:
    """In sync, would change (old -> new), missing, and a local image it cannot compare:
    marked '  ', '~', '-', '?', counted, exit 1; no PUT and no upload reach the sandbox."""
    box, url = sandbox
    job = seed_drift(box, tmp_path, url)
    result = await cli("check", str(job))
    assert result.code == 1, result.err
    table = rows(result.out)
    shown = box.plan(P1, plan_id(0))
    other = box.plan(P1, plan_id(1))
    assert shown is not None and other is not None
    assert table[plan_id(0)].startswith(f"  {P1[:8]}/{plan_id(0)}  In sync ")
    assert table[plan_id(0)].endswith(str(shown.img_url))
    assert table[plan_id(1)].startswith("~ ")
    assert f"{other.img_url} -> /v1/upload/" in table[plan_id(1)]
    assert table[plan_id(2)].startswith("~ ") and "(none) -> /v1/upload/" in table[plan_id(2)]
    assert table[plan_id(3)].startswith("? ")
    assert "local image" in table[plan_id(3)] and "not uploaded yet" in table[plan_id(3)]
    assert table[plan_id(GONE)].startswith("- ") and "no such plan" in table[plan_id(GONE)]
    assert result.out.splitlines()[-1] == "1 in sync, 2 would change, 1 missing, 1 unknown"
    assert "1 list calls for 1 project(s); nothing was changed" in result.err
    assert (box.stats.puts, box.stats.uploads, box.stats.lists) == (0, 0, 1)


async def test_after_a_run_check_finds_everything_in_sync_and_exits_0(
    tmp_path: Path, sandbox: tuple[Sandbox, str]
) -> None:
    """After the job ran, every plan is in sync: the local image is compared by the URL the
    report says it was uploaded as."""
    box, url = sandbox
    job = seed_drift(box, tmp_path, url)
    ran = await cli("run", str(job), "--no-progress")
    assert ran.code == 0, ran.err
    puts = box.stats.puts
    result = await cli("check", str(job))
    assert result.code == 0, result.out
    assert result.out.splitlines()[-1] == "5 in sync, 0 would change, 0 missing, 0 unknown"
    assert "was uploaded as /v1/upload/" in rows(result.out)[plan_id(3)]
    assert box.stats.puts == puts


async def test_a_list_without_img_url_makes_every_plan_unknown(tmp_path: Path) -> None:
    """When the list call shows no img_url, nothing can be compared: '?' and exit 1."""
    box = Sandbox(SandboxConfig(tokens=frozenset({TOKEN}), list_img=False))
    async with box.serve() as url:
        job = seed_drift(box, tmp_path, url)
        result = await cli("check", str(job))
    assert result.code == 1
    table = rows(result.out)
    assert all(table[plan_id(n)].startswith("? ") for n in (0, 1, 2, 3))
    assert "the list shows no img_url" in table[plan_id(0)]
    assert result.out.splitlines()[-1] == "0 in sync, 0 would change, 1 missing, 4 unknown"


async def test_rejected_credentials_stop_the_check_with_exit_3(
    tmp_path: Path, sandbox: tuple[Sandbox, str]
) -> None:
    """A token the API refuses: one message, exit 3, no table."""
    box, url = sandbox
    job = seed_drift(box, tmp_path, url)
    result = await cli("check", str(job), env=environment(BATCHTHUMB_TOKEN="wrong-token-12345"))
    assert result.code == 3
    assert "credentials rejected" in result.err
    assert result.out == ""


async def test_dry_run_with_credentials_compares_first_and_shows_what_it_would_skip(
    tmp_path: Path, sandbox: tuple[Sandbox, str]
) -> None:
    """--dry-run with a token at hand: the endpoint, the plans it would skip, the PUTs it
    would send, the counts; only a list call was made."""
    box, url = sandbox
    job = seed_drift(box, tmp_path, url)
    result = await cli("run", str(job), "--dry-run")
    assert result.code == 0, result.err
    out = result.out.splitlines()
    assert f"endpoint: {url} (compared with 1 list calls)" in out
    skip = out.index("would skip 1 plans that already show their thumbnail:")
    assert out[skip + 1].startswith(f"    {P1[:8]}/{plan_id(0)}")
    assert "would send 4 PUTs:" in out
    assert out[-2:] == ["1 in sync, 2 would change, 1 missing, 1 unknown", "nothing was changed"]
    assert (box.stats.puts, box.stats.uploads, box.stats.lists) == (0, 0, 1)


async def test_dry_run_with_the_sandbox_does_not_compare(tmp_path: Path) -> None:
    """--dry-run --sandbox says why it does not compare, and lists the PUTs."""
    job = tmp_path / "job.yaml"
    job.write_text(
        f"defaults:\n  project_id: {P1}\nitems:\n"
        f"  - {{plan_id: {plan_id(0)}, img_url: /v1/upload/{P1}/202506/1.png}}\n"
    )
    result = await cli("run", str(job), "--dry-run", "--sandbox")
    assert result.code == 0, result.err
    assert "not compared with the API (--sandbox starts an empty sandbox)" in result.out
    assert f"  PUT /v3/plan/{P1}/management/{plan_id(0)}/img" in result.out


async def test_dry_run_still_shows_the_plan_when_the_api_cannot_be_asked(tmp_path: Path) -> None:
    """Credentials that cannot be had (an IAM endpoint nobody answers): the dry run says why
    it did not compare, lists the PUTs, and exits 0."""
    job = tmp_path / "job.yaml"
    job.write_text(
        "endpoint: http://127.0.0.1:9\n"
        "auth: {iam: {endpoint: http://127.0.0.1:9, domain: acme, user: bot, password_env: PW,"
        " project: cn-north-4}}\n"
        f"defaults:\n  project_id: {P1}\nitems:\n"
        f"  - {{plan_id: {plan_id(0)}, img_url: /v1/upload/{P1}/202506/1.png}}\n"
    )
    result = await cli("run", str(job), "--dry-run", env=environment(PW="not-a-real-one"))
    assert result.code == 0, result.err
    assert "not compared with the API (the API could not be asked: " in result.out
    assert f"  PUT /v3/plan/{P1}/management/{plan_id(0)}/img" in result.out
    assert result.out.endswith("nothing was sent\n")


async def test_a_plan_name_a_terminal_would_obey_is_printed_escaped(
    tmp_path: Path, sandbox: tuple[Sandbox, str]
) -> None:
    """A plan named with an ANSI escape (clear the screen) shows the escape as text."""
    box, url = sandbox
    job = seed_drift(box, tmp_path, url)
    box.add_plan(P1, name="\x1b[2Jevil", type="gantt", plan_id=plan_id(GONE))
    result = await cli("check", str(job))
    assert "\x1b" not in result.out
    assert "\\u001b[2Jevil" in rows(result.out)[plan_id(GONE)]
