"""End to end: a migration between two regions, two sandboxes on two ports, each its own account.

The source region accepts only its token; the target region accepts only its AK/SK signature.
Both record the headers of every request, so the tests can show that no credential of one side
ever reached the other.
"""

from __future__ import annotations

import json
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import anyio.abc
import pytest
from aiohttp import web

from batchthumb.errors import UsageError
from batchthumb.jobfile import load_job
from batchthumb.model import RunSettings, Side, TokenAuth
from batchthumb.sandbox import IamUser, Sandbox, SandboxConfig
from batchthumb.sandbox.faults import Fault
from tests.clihelp import ROOT, Result, cli, environment, start_sandbox
from tests.conftest import TOKEN, SecretGuard
from tests.hostile import serve
from tests.test_images_cli import png

pytestmark = pytest.mark.anyio

SRC1, SRC2 = "1" * 32, "2" * 32
DST1, DST2 = "a" * 32, "b" * 32
SOURCE_TOKEN = "source-region-token-0123456789"
TARGET_AK = "TARGETAKEXAMPLE0000"
TARGET_SK = "target-secret-key-do-not-leak-0123456789"
SECRETS = (SOURCE_TOKEN, TARGET_AK, TARGET_SK)


def regions() -> tuple[Sandbox, Sandbox]:
    """Two strict regions: the source takes only its token, the target only its AK/SK."""
    source = Sandbox(SandboxConfig(tokens={SOURCE_TOKEN}, autocreate=False, record_headers=True))
    target = Sandbox(
        SandboxConfig(
            aksk={TARGET_AK: TARGET_SK},
            tokens={"another-token-nobody-sends-00"},
            autocreate=False,
            strict_urls=True,
            record_headers=True,
        )
    )
    return source, target


def seed(source: Sandbox, target: Sandbox) -> None:
    """Two project pairs; names differ in case and spacing; one plan per pair has no partner."""
    for number, (src, dst) in enumerate(((SRC1, DST1), (SRC2, DST2))):
        for n in range(4):
            url = source.upload(src, png(10 * number + n))
            source.add_plan(src, name=f"Plan {n}", type="mind", img_url=url)
            target.add_plan(dst, name=f"  plan   {n} " if n % 2 else f"Plan {n}", type="mind")
        source.add_plan(src, name="Only in the source", type="mind")
        target.add_plan(dst, name="Plan 0", type="gantt")  # same name as a source plan, other type


@asynccontextmanager
async def serving(source: Sandbox, target: Sandbox) -> AsyncIterator[tuple[str, str]]:
    async with source.serve() as source_url, target.serve() as target_url:
        yield source_url, target_url


def files(tmp_path: Path, pairs: str) -> None:
    """The projects file and one auth file per side (references to secrets, not secrets)."""
    (tmp_path / "projects.csv").write_text(pairs)
    (tmp_path / "source.yaml").write_text("auth: {token_env: SOURCE_TOKEN}\n")


def target_auth(tmp_path: Path, url: str) -> None:
    """The target's AK/SK, its X-Project-Id looked up from the target region's IAM only."""
    (tmp_path / "target.yaml").write_text(
        "auth: {aksk: {ak_env: TARGET_AK, sk_env: TARGET_SK, "
        f"iam_endpoint: {url}, project: cn-north-4}}}}\n"
    )


async def migrate(tmp_path: Path, urls: tuple[str, str], *extra: str) -> Result:
    """``migrate --projects`` from the source region (token) to the target region (AK/SK)."""
    env = environment(SOURCE_TOKEN=SOURCE_TOKEN, TARGET_AK=TARGET_AK, TARGET_SK=TARGET_SK)
    target_auth(tmp_path, urls[1])
    done = await cli(
        "migrate", "--projects", "projects.csv",
        "--from-endpoint", urls[0], "--from-auth", "source.yaml",
        "--to-endpoint", urls[1], "--to-auth", "target.yaml",
        "--no-progress", "--backoff", "0", *extra,
        env=env, cwd=tmp_path,
    )  # fmt: skip
    for secret in SECRETS:
        assert secret not in done.out + done.err
    return done


def header_values(sandbox: Sandbox) -> str:
    """Every header name and value a sandbox received, as one text to search."""
    return "\n".join(f"{k}: {v}" for headers in sandbox.stats.headers for k, v in headers.items())


def assert_sides_kept_apart(source: Sandbox, target: Sandbox) -> None:
    """The source saw only its token, the target only its signature; nothing crossed over."""
    assert source.stats.headers and target.stats.headers
    seen_by_source, seen_by_target = header_values(source), header_values(target)
    assert TARGET_AK not in seen_by_source and "Authorization" not in seen_by_source
    assert SOURCE_TOKEN not in seen_by_target and "X-Auth-Token" not in seen_by_target
    assert all(h.get("X-Auth-Token") == SOURCE_TOKEN for h in source.stats.headers)
    assert all(TARGET_AK in h.get("Authorization", "") for h in target.stats.headers)


PAIRS = f"source_project,target_project\n{SRC1},{DST1}\n{SRC2},{DST2}\n"


async def test_a_migration_between_regions_keeps_each_sides_credentials_to_itself(
    tmp_path: Path,
) -> None:
    """Two pairs, token on the source and AK/SK on the target: every thumbnail moves, each
    region receives only its own credentials, and the source is only read from."""
    source, target = regions()
    seed(source, target)
    files(tmp_path, PAIRS)
    async with serving(source, target) as urls:
        done = await migrate(tmp_path, urls, "--match", "name-loose")
    assert done.code == 0, done.err
    assert_sides_kept_apart(source, target)
    assert source.stats.puts == source.stats.uploads == 0
    assert target.stats.downloads == 0
    for src, dst in ((SRC1, DST1), (SRC2, DST2)):
        originals = {p.name: p.img_url for p in source.plans(src)}
        for plan in target.plans(dst):
            if plan.type == "gantt":
                assert plan.img_url is None
                continue
            assert plan.img_url is not None and target.store.uploads[plan.img_url].project_id == dst
            name = " ".join(plan.name.split()).capitalize()
            original = originals[name]
            assert original is not None
            assert target.image_bytes(plan.img_url) == source.image_bytes(original)
    assert f"pair 1/2 {SRC1} -> {DST1}: 4 done, 0 failed, 0 not sent; 2 unpaired" in done.err
    assert f"pair 2/2 {SRC2} -> {DST2}: 4 done, 0 failed, 0 not sent; 2 unpaired" in done.err
    assert f"pair 2/2 {SRC2} -> {DST2} finished: 4 set, 0 failed" in done.err
    unpaired = (tmp_path / "migrate-projects.results.unpaired.csv").read_text().splitlines()
    assert unpaired[0] == "source_project,target_project,side,plan_id,name,type,why,reason"
    rows = sorted(line.split(",")[:3] + line.split(",")[5:7] for line in unpaired[1:])
    assert rows == sorted(
        [[src, dst, "source", "mind", "no partner"] for src, dst in ((SRC1, DST1), (SRC2, DST2))]
        + [
            [src, dst, "target", "gantt", "type mismatch"]
            for src, dst in ((SRC1, DST1), (SRC2, DST2))
        ]
    )


async def test_exact_names_leave_the_differently_spaced_plans_unpaired(tmp_path: Path) -> None:
    """Without name-loose, "Plan 1" and "  plan   1 " do not pair: only the exact names move."""
    source, target = regions()
    seed(source, target)
    files(tmp_path, PAIRS)
    async with serving(source, target) as urls:
        done = await migrate(tmp_path, urls)
    assert done.code == 0, done.err
    assert sum(p.img_url is not None for p in target.plans(DST1) + target.plans(DST2)) == 4


async def test_an_unknown_project_names_its_line_and_nothing_is_sent(tmp_path: Path) -> None:
    """A target project the target region does not know: exit 2 naming the line; every
    project was listed first, so nothing was downloaded, uploaded or set."""
    source, target = regions()
    seed(source, target)
    unknown = "c" * 32
    files(tmp_path, f"{SRC1},{DST1}\n{SRC2},{unknown}\n")
    async with serving(source, target) as urls:
        done = await migrate(tmp_path, urls)
    assert done.code == 2
    assert f"projects.csv:2: target project {unknown} does not exist" in done.err
    assert source.stats.downloads == target.stats.uploads == target.stats.puts == 0
    assert source.stats.lists == 2 and target.stats.lists == 2


async def test_resume_finishes_the_failed_items_of_every_pair_under_one_report(
    tmp_path: Path,
) -> None:
    """One report covers both pairs: a plan refused in the second pair fails (exit 1), and
    --resume sends only that plan, uploading nothing twice."""
    source, target = regions()
    seed(source, target)
    files(tmp_path, PAIRS)
    refused = next(p.id for p in target.plans(DST2) if p.name == "Plan 2")
    target.faults.script(Fault.status(500), plan_id=refused)
    async with serving(source, target) as urls:
        first = await migrate(tmp_path, urls, "--retries", "0")
        puts, uploads = target.stats.puts, target.stats.uploads
        second = await migrate(tmp_path, urls, "--resume")
    assert first.code == 1, first.err
    assert f"pair 1/2 {SRC1} -> {DST1}: 2 done, 0 failed, 0 not sent" in first.err
    assert f"pair 2/2 {SRC2} -> {DST2}: 1 done, 1 failed, 0 not sent" in first.err
    assert second.code == 0, second.err
    assert target.stats.puts == puts + 1
    assert target.stats.uploads == uploads  # the refused plan's image was uploaded already
    assert f"pair 2/2 {SRC2} -> {DST2}: 2 done, 0 failed, 0 not sent" in second.err
    assert "1 of 4 plans to set, 3 already done" in second.err


async def test_each_side_is_throttled_on_its_own(tmp_path: Path) -> None:
    """The target region throttling its PUTs slows the target's sender only: the summary
    names the target's throttling and none on the source."""
    source, target = regions()
    seed(source, target)
    files(tmp_path, PAIRS)
    target.faults.script(Fault.status(429), times=3)
    async with serving(source, target) as urls:
        done = await migrate(tmp_path, urls)
    assert done.code == 0, done.err
    assert "target: throttled 3 times" in done.err
    assert "source: throttled" not in done.err


async def test_migrate_o_between_regions_writes_the_targets_endpoint(tmp_path: Path) -> None:
    """-o downloads from the source with its token and writes a job that runs against the target."""
    source, target = regions()
    seed(source, target)
    files(tmp_path, PAIRS)
    async with serving(source, target) as urls:
        done = await migrate(tmp_path, urls, "-o", "move.yaml")
        job = load_job(tmp_path / "move.yaml")
    assert done.code == 0, done.err
    assert job.settings.endpoint == urls[1]
    assert len(job.items) == 4 and {item.project_id for item in job.items} == {DST1, DST2}
    # Listed (after one X-Project-Id lookup at the target's IAM); nothing uploaded or set.
    assert (target.stats.lists, target.stats.project_lookups, target.stats.requests) == (2, 1, 3)
    assert_sides_kept_apart(source, target)


async def test_projects_and_a_single_pair_do_not_go_together(tmp_path: Path) -> None:
    """--projects with --from, or no projects at all, is a usage error (exit 2) before any request."""
    files(tmp_path, PAIRS)
    both = await cli("migrate", "--projects", "projects.csv", "--from", SRC1, cwd=tmp_path)
    neither = await cli("migrate", "--endpoint", "http://127.0.0.1:9", cwd=tmp_path)
    assert both.code == neither.code == 2
    assert "--projects lists the pairs: drop --from and --to" in both.err
    assert "--from SRC --to DST, or --projects MAP.csv" in neither.err


async def test_a_source_side_without_its_own_auth_signs_in_with_the_shared_one(
    tmp_path: Path,
) -> None:
    """--from-endpoint alone: the source uses the shared credentials ($BATCHTHUMB_TOKEN here),
    the target its own AK/SK; still nothing crosses."""
    _, target = regions()
    source = Sandbox(SandboxConfig(tokens={TOKEN}, autocreate=False, record_headers=True))
    seed(source, target)
    files(tmp_path, PAIRS)
    env = environment(TARGET_AK=TARGET_AK, TARGET_SK=TARGET_SK)
    async with serving(source, target) as (source_url, target_url):
        target_auth(tmp_path, target_url)
        done = await cli(
            "migrate", "--projects", "projects.csv", "--from-endpoint", source_url,
            "--endpoint", target_url, "--to-auth", "target.yaml", "--no-progress",
            env=env, cwd=tmp_path,
        )  # fmt: skip
    assert done.code == 0, done.err
    assert all(h.get("X-Auth-Token") == TOKEN for h in source.stats.headers)
    assert TOKEN not in header_values(target) and TARGET_AK not in header_values(source)
    assert sum(p.img_url is not None for p in target.plans(DST1) + target.plans(DST2)) == 4


def test_a_side_overrides_only_what_it_names() -> None:
    """A side's region sets its endpoint; its endpoint wins over a region; the rest is shared."""
    shared = RunSettings(endpoint="https://shared.example", region="cn-north-4", rate=5)
    auth = TokenAuth(env="OTHER_TOKEN")
    assert Side().settings(shared) == shared
    moved = Side(region="ap-southeast-3", auth=auth).settings(shared)
    assert moved.endpoint == "https://projectman-ext.ap-southeast-3.myhuaweicloud.com"
    assert (moved.region, moved.auth, moved.rate) == ("ap-southeast-3", auth, 5)
    pinned = Side(endpoint="https://mirror.example/", region="ap-southeast-3").settings(shared)
    assert pinned.endpoint == "https://mirror.example"
    with pytest.raises(UsageError, match="is not a region name"):
        Side(region="evil.example/x#")


async def test_an_empty_project_in_a_projects_file_is_a_warning_not_a_stop(tmp_path: Path) -> None:
    """A listed project with no plans is named with its line; the other pairs still move."""
    source, target = regions()
    seed(source, target)
    empty = "e" * 32
    target.add_project(empty)
    source.add_plan("f" * 32, name="Lonely", type="mind")
    files(tmp_path, f"{SRC1},{DST1}\n{'f' * 32},{empty}\n")
    async with serving(source, target) as urls:
        done = await migrate(tmp_path, urls)
    assert done.code == 0, done.err
    assert f"warning: projects.csv:2: project {empty} has no plans" in done.err
    assert sum(p.img_url is not None for p in target.plans(DST1)) == 2


async def test_a_plan_mapping_file_is_for_one_pair_only(tmp_path: Path) -> None:
    """--match MAPPING.csv with --projects is a usage error: a plan mapping pairs one project."""
    files(tmp_path, PAIRS)
    (tmp_path / "plans.csv").write_text("")
    done = await cli(
        "migrate", "--projects", "projects.csv", "--match", "plans.csv", "--endpoint",
        "http://127.0.0.1:9", cwd=tmp_path,
    )  # fmt: skip
    assert done.code == 2
    assert "--match MAPPING.csv maps the plans of one pair; not with --projects" in done.err


async def test_a_source_refusing_its_token_aborts_naming_the_source_and_masks_it(
    tmp_path: Path, guard: SecretGuard
) -> None:
    """A source region that lists but then refuses downloads with a 401 echoing its token:
    exit 3, the abort names the source side, and the token is masked in the report and log."""
    guard.watch(*SECRETS)
    url = f"/v1/upload/{SRC1}/202506/1749730526922581392.png"
    _, target = regions()
    target.add_plan(DST1, name="Plan 1", type="mind")

    async def source_region(request: web.Request) -> web.StreamResponse:
        if request.path.endswith("/managements"):
            plan = {"id": f"{1:032d}", "name": "Plan 1", "type": "mind", "img_url": url}
            return web.json_response({"status": "success", "plans": [plan], "total": 1})
        token = request.headers.get("X-Auth-Token", "")
        body = {"error_code": "APIGW.0302", "error_msg": f"token {token} is not accepted"}
        return web.json_response(body, status=401)

    files(tmp_path, f"{SRC1},{DST1}\n")
    async with serve(source_region) as source, target.serve() as target_url:
        done = await migrate(
            tmp_path, (source.url, target_url), "--log-json", "--log-file", "run.log"
        )
    guard.output("stderr", done.err)
    assert done.code == 3, done.err
    assert source.headers_named("X-Auth-Token")[-1] == SOURCE_TOKEN  # the echo held it
    assert "aborted: the source side: the server rejected the credentials (HTTP 401" in done.err
    assert "token *** is not accepted" in (tmp_path / "migrate-projects.results.jsonl").read_text()
    assert "token *** is not accepted" in (tmp_path / "run.log").read_text()
    assert target.stats.puts == target.stats.uploads == 0


async def test_an_iam_user_on_the_source_gets_its_token_from_the_source_only(
    tmp_path: Path, guard: SecretGuard
) -> None:
    """--from-auth with an IAM user: the source region issues and receives its token, the
    target (AK/SK) never sees the password or the issued token; every thumbnail moves."""
    password = "source-iam-password-0123"
    guard.watch(password, *SECRETS)
    user = IamUser("acme", "bot", password, "cn-north-4")
    source = Sandbox(SandboxConfig(iam_users=(user,), autocreate=False, record_headers=True))
    _, target = regions()
    seed(source, target)
    files(tmp_path, PAIRS)
    async with serving(source, target) as urls:
        (tmp_path / "source.yaml").write_text(
            f"auth:\n  iam: {{endpoint: {urls[0]}, domain: acme, user: bot, "
            "password_env: SOURCE_PW, project: cn-north-4}\n"
        )
        env = environment(SOURCE_PW=password, TARGET_AK=TARGET_AK, TARGET_SK=TARGET_SK)
        target_auth(tmp_path, urls[1])
        done = await cli(
            "migrate", "--projects", "projects.csv",
            "--from-endpoint", urls[0], "--from-auth", "source.yaml",
            "--to-endpoint", urls[1], "--to-auth", "target.yaml", "--no-progress",
            env=env, cwd=tmp_path,
        )  # fmt: skip
    guard.output("stderr", done.err)
    assert done.code == 0, done.err
    issued = {h["X-Auth-Token"] for h in source.stats.headers if "X-Auth-Token" in h}
    assert issued and source.stats.tokens_issued >= 1
    assert not any(token in header_values(target) for token in issued)
    assert password not in header_values(target) and "X-Auth-Token" not in header_values(target)
    assert sum(p.img_url is not None for p in target.plans(DST1) + target.plans(DST2)) == 4


async def test_a_side_region_that_is_not_one_is_refused_before_it_becomes_a_host(
    tmp_path: Path,
) -> None:
    """--to-region is checked like --region: anything but a region name is exit 2, unsent."""
    files(tmp_path, PAIRS)
    done = await cli(
        "migrate", "--projects", "projects.csv", "--to-region", "evil.example/x#", cwd=tmp_path
    )
    assert done.code == 2
    assert "--to-region 'evil.example/x#' is not a region name like cn-north-4" in done.err


async def stop_sandbox(process: anyio.abc.Process) -> None:
    """SIGTERM, and wait for the process to write its recorded headers and exit 0."""
    process.send_signal(signal.SIGTERM)
    with anyio.fail_after(20):
        assert await process.wait() == 0
    await process.aclose()


@pytest.mark.subprocess
async def test_two_sandbox_processes_as_two_regions_never_see_each_others_credentials(
    tmp_path: Path,
) -> None:
    """The walkthrough's seeds in two `batchthumb sandbox` processes, a token on one and AK/SK
    on the other: the migration succeeds, and each process's recorded headers hold only its
    own credential."""
    seeds = ROOT / "jobs" / "seeds"
    source, source_url = await start_sandbox(
        "--strict", "--token", SOURCE_TOKEN, "--seed", str(seeds / "region-source.yaml"),
        "--record-headers", str(tmp_path / "source-headers.jsonl"),
    )  # fmt: skip
    try:
        target, target_url = await start_sandbox(
            "--strict", "--aksk", f"{TARGET_AK}:{TARGET_SK}",
            "--seed", str(seeds / "region-target.yaml"),
            "--record-headers", str(tmp_path / "target-headers.jsonl"),
        )  # fmt: skip
        try:
            pairs = "c40000000000000000000000000000a1,ap3000000000000000000000000000b1\n"
            pairs += "c40000000000000000000000000000a2,ap3000000000000000000000000000b2\n"
            files(tmp_path, pairs)
            done = await migrate(tmp_path, (source_url, target_url), "--match", "name-loose")
        finally:
            await stop_sandbox(target)
    finally:
        await stop_sandbox(source)
    assert done.code == 0, done.err
    assert "5 succeeded, 0 failed" in done.err
    seen_by_source = (tmp_path / "source-headers.jsonl").read_text().splitlines()
    seen_by_target = (tmp_path / "target-headers.jsonl").read_text().splitlines()
    # The source: 2 lists, 4 downloads; the target: its X-Project-Id lookup, 4 lists (pairing
    # and snapshot), 4 uploads, 5 PUTs.
    assert len(seen_by_source) == 6 and len(seen_by_target) == 14
    assert all(json.loads(line)["X-Auth-Token"] == SOURCE_TOKEN for line in seen_by_source)
    assert all(TARGET_AK in json.loads(line)["Authorization"] for line in seen_by_target)
    assert not any(TARGET_AK in line or TARGET_SK in line for line in seen_by_source)
    assert not any(SOURCE_TOKEN in line for line in seen_by_target)
