"""End to end over loopback: local images, export, migrate, undo and resume, via the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from batchthumb.jobfile import load_job
from batchthumb.sandbox import Sandbox, SandboxConfig
from tests.clihelp import cli as in_process
from tests.imagedata import png

pytestmark = pytest.mark.anyio

SRC = "a" * 32
DST = "b" * 32
TOKEN = "t" * 40
ROOT = Path(__file__).resolve().parents[1]


def env() -> dict[str, str]:
    """The environment as it is now, with the token."""
    # Not a copy taken at import: the in-process CLI would undo what was set since, such as
    # mutmut's MUTANT_UNDER_TEST, and test the unmutated code.
    return {**os.environ, "BATCHTHUMB_TOKEN": TOKEN, "PYTHONPATH": str(ROOT)}


async def cli(*args: str, cwd: Path, check: int | None = 0) -> subprocess.CompletedProcess[bytes]:
    """``batchthumb ARGS`` in process (:func:`tests.clihelp.cli`), shaped like a subprocess's."""
    result = await in_process(*args, env=env(), cwd=cwd)
    done = subprocess.CompletedProcess(args, result.code, result.out.encode(), result.err.encode())
    if check is not None:
        assert done.returncode == check, done.stderr.decode()
    return done


def strict() -> Sandbox:
    return Sandbox(SandboxConfig(strict_urls=True, autocreate=False))


def uploads_to(sandbox: Sandbox, project: str) -> list[bytes]:
    return [u.data for u in sandbox.store.uploads.values() if u.project_id == project]


async def test_local_image_shared_by_many_plans_is_uploaded_once_per_project(
    tmp_path: Path,
) -> None:
    """One file named by plans in two projects is uploaded once to each, and every plan shows it."""
    sandbox = strict()
    plans = [sandbox.add_plan(p, name=f"P{n}") for p in (SRC, DST) for n in range(5)]
    (tmp_path / "logo.png").write_bytes(png(1))
    lines = [f"  - {{project_id: {p.project_id}, plan_id: {p.id}, image: logo.png}}" for p in plans]
    async with sandbox.serve() as url:
        (tmp_path / "job.yaml").write_text(f"endpoint: {url}\nitems:\n" + "\n".join(lines) + "\n")
        await cli("run", "job.yaml", "--no-progress", cwd=tmp_path)
    assert sandbox.stats.uploads == 2
    for plan in plans:
        shown = sandbox.plan(plan.project_id, plan.id)
        assert shown is not None and shown.img_url is not None
        assert sandbox.store.uploads[shown.img_url].project_id == plan.project_id
        assert sandbox.image_bytes(shown.img_url) == png(1)


@pytest.mark.parametrize(
    ("name", "data", "expected"),
    [
        ("missing.png", None, "missing.png does not exist"),
        (
            "big.png",
            png(1) + b"\0" * (5 * 2**20),
            "is larger than 5 MB, the limit for an image (the API takes at most 5 MB)",
        ),
        ("fake.png", b"not an image at all", "is not a PNG, JPEG, GIF, BMP or WebP image"),
    ],
)
async def test_a_bad_image_fails_validation_and_nothing_is_sent(
    tmp_path: Path, name: str, data: bytes | None, expected: str
) -> None:
    """A missing, oversized or fake image is named with its line, exit 2, and no request is made."""
    sandbox = strict()
    plan = sandbox.add_plan(SRC)
    if data is not None:
        (tmp_path / name).write_bytes(data)
    async with sandbox.serve() as url:
        (tmp_path / "job.yaml").write_text(
            f"endpoint: {url}\nitems:\n  - {{project_id: {SRC}, plan_id: {plan.id}, image: {name}}}\n"
        )
        done = await cli("run", "job.yaml", "--no-progress", cwd=tmp_path, check=2)
    assert "job.yaml:3: items[0].image:" in done.stderr.decode()
    assert expected in done.stderr.decode()
    assert sandbox.stats.requests == 0


async def test_export_pages_through_450_plans_into_a_valid_job(tmp_path: Path) -> None:
    """Export lists every page (200 at a time) and writes a job validate accepts, bare plans as comments."""
    sandbox = strict()
    url_of = sandbox.upload(SRC, png(2))
    for n in range(450):
        sandbox.add_plan(SRC, name=f"Plan {n}", type="gantt", img_url=url_of if n % 9 else None)
    async with sandbox.serve() as url:
        await cli(
            "export",
            "--project",
            SRC,
            "--endpoint",
            url,
            "-o",
            "out.yaml",
            "--no-progress",
            cwd=tmp_path,
        )
    assert sandbox.stats.lists == 3
    job = load_job(tmp_path / "out.yaml")
    assert len(job.items) == 400
    assert {item.img_url for item in job.items} == {url_of}
    assert (tmp_path / "out.yaml").read_text().count(": no thumbnail") == 50
    await cli("validate", "out.yaml", cwd=tmp_path)


async def test_export_of_a_project_without_plans_is_a_clear_error(tmp_path: Path) -> None:
    """Exporting an empty project says so and exits 2."""
    sandbox = strict()
    sandbox.add_project(SRC)
    async with sandbox.serve() as url:
        done = await cli(
            "export", "--project", SRC, "--endpoint", url, "-o", "o.yaml", cwd=tmp_path, check=2
        )
    assert f"project {SRC} has no plans" in done.stderr.decode()


def seed_migration(sandbox: Sandbox, count: int) -> None:
    """count source plans with 10 shared images; targets for two thirds of the names, one duplicated."""
    images = [sandbox.upload(SRC, png(100 + n)) for n in range(10)]
    for n in range(count):
        sandbox.add_plan(SRC, name=f"Plan {n}", type="mind", img_url=images[n % 10])
        if n % 3:
            sandbox.add_plan(DST, name=f"Plan {n}", type="mind")
    sandbox.add_plan(DST, name="Plan 1", type="mind")  # ambiguous


async def test_migrate_copies_paired_thumbnails_and_reports_the_unpaired(tmp_path: Path) -> None:
    """Each paired target shows an image uploaded to the target with the source's bytes; each source image moves once."""
    sandbox = strict()
    seed_migration(sandbox, 300)
    async with sandbox.serve() as url:
        done = await cli(
            "migrate", "--from", SRC, "--to", DST, "--endpoint", url, "--no-progress", cwd=tmp_path
        )
    source = {p.name: p for p in sandbox.plans(SRC)}
    copied = 0
    for plan in sandbox.plans(DST):
        if plan.name == "Plan 1":
            assert plan.img_url is None
            continue
        assert plan.img_url is not None and sandbox.store.uploads[plan.img_url].project_id == DST
        original = source[plan.name].img_url
        assert original is not None
        assert sandbox.image_bytes(plan.img_url) == sandbox.image_bytes(original)
        copied += 1
    assert copied == 199
    assert sandbox.stats.uploads == 10
    unpaired = (tmp_path / f"migrate-{SRC[:8]}-{DST[:8]}.results.unpaired.csv").read_text()
    assert unpaired.count(f"\n{SRC},{DST},source,") == 101
    assert unpaired.count(f"\n{SRC},{DST},target,") == 2
    assert "ambiguous" in unpaired
    assert "103 unpaired" in done.stderr.decode()


async def test_migrate_falls_back_to_the_v3_download_when_download_image_file_is_refused(
    tmp_path: Path,
) -> None:
    """Without codeartsreq:attachment:download (400 PM.02174103), migrate still copies every
    image, through GET /v3/upload/...: one refused call, then the v3 route for each image."""
    sandbox = Sandbox(SandboxConfig(strict_urls=True, download_permission=False))
    seed_migration(sandbox, 30)
    async with sandbox.serve() as url:
        await cli(
            "migrate", "--from", SRC, "--to", DST, "--endpoint", url, "--no-progress",
            "--concurrency", "1", cwd=tmp_path,
        )  # fmt: skip
    source = {p.name: p for p in sandbox.plans(SRC)}
    copied = [p for p in sandbox.plans(DST) if p.img_url is not None]
    assert len(copied) == 19
    for plan in copied:
        assert plan.img_url is not None
        original = source[plan.name].img_url
        assert original is not None
        assert sandbox.image_bytes(plan.img_url) == sandbox.image_bytes(original)
    assert sandbox.stats.downloads == 11  # the refused DownloadImageFile, then 10 images
    assert sandbox.stats.status_counts[400] == 1


async def test_migrate_to_a_job_file_downloads_each_image_once(tmp_path: Path) -> None:
    """migrate -o writes a valid job of image: items with the images next to it, sending no PUT."""
    sandbox = strict()
    seed_migration(sandbox, 30)
    async with sandbox.serve() as url:
        await cli(
            "migrate",
            "--from",
            SRC,
            "--to",
            DST,
            "--endpoint",
            url,
            "-o",
            "move.yaml",
            cwd=tmp_path,
        )
    assert sandbox.stats.downloads == 10 and sandbox.stats.puts == 0
    job = load_job(tmp_path / "move.yaml")
    assert len(job.items) == 19
    assert len(list((tmp_path / "move.images").iterdir())) == 10


async def test_mapping_errors_name_their_lines_and_nothing_is_sent(tmp_path: Path) -> None:
    """Unknown plans and two sources mapped to one target are errors with line numbers, exit 2."""
    sandbox = strict()
    a, b = sandbox.add_plan(SRC, name="A"), sandbox.add_plan(SRC, name="B")
    t = sandbox.add_plan(DST, name="T")
    (tmp_path / "map.csv").write_text(
        f"source_plan_id,target_plan_id\n{a.id},{t.id}\n{b.id},{t.id}\n{'c' * 32},{t.id}\n"
    )
    async with sandbox.serve() as url:
        done = await cli(
            "migrate",
            "--from",
            SRC,
            "--to",
            DST,
            "--match",
            "map.csv",
            "--endpoint",
            url,
            cwd=tmp_path,
            check=2,
        )
    err = done.stderr.decode()
    assert f"map.csv:3: target plan {t.id} is already the target of line 2" in err
    assert f"map.csv:4: source plan {'c' * 32} is not a plan of the source project" in err
    assert sandbox.stats.puts == 0 and sandbox.stats.uploads == 0


async def test_undo_restores_the_exact_previous_state(tmp_path: Path) -> None:
    """After a run, the undo job puts every changed plan's previous thumbnail back; --backup matches it."""
    sandbox = strict()
    old = [sandbox.upload(SRC, png(n)) for n in range(3)]
    plans = [sandbox.add_plan(SRC, name=f"P{n}", img_url=old[n % 3]) for n in range(6)]
    bare = sandbox.add_plan(SRC, name="bare")
    new = sandbox.upload(SRC, png(9))
    before = {p.id: sandbox.plan(SRC, p.id).img_url for p in [*plans, bare]}  # type: ignore[union-attr]
    lines = [f"  - {{plan_id: {p.id}, img_url: {new}}}" for p in [*plans, bare]]
    async with sandbox.serve() as url:
        (tmp_path / "job.yaml").write_text(
            f"endpoint: {url}\ndefaults: {{project_id: {SRC}}}\nitems:\n" + "\n".join(lines) + "\n"
        )
        await cli("run", "job.yaml", "--no-progress", "--backup", "backup.yaml", cwd=tmp_path)
        assert all(sandbox.plan(SRC, p.id).img_url == new for p in plans)  # type: ignore[union-attr]
        done = await cli("undo", "job.results.jsonl", "-o", "undo.yaml", cwd=tmp_path)
        assert "cannot be restored" in done.stdout.decode()
        await cli("run", "undo.yaml", "--endpoint", url, "--no-progress", cwd=tmp_path)
    after = {p.id: sandbox.plan(SRC, p.id).img_url for p in [*plans, bare]}  # type: ignore[union-attr]
    assert after == {**before, bare.id: new}
    assert {i.plan_id: i.img_url for i in load_job(tmp_path / "backup.yaml").items} == {
        p.id: before[p.id] for p in plans
    }


async def test_a_plan_already_showing_its_thumbnail_is_skipped_without_a_put(
    tmp_path: Path,
) -> None:
    """The snapshot lets a run skip plans that already show the wanted img_url."""
    sandbox = strict()
    url_of = sandbox.upload(SRC, png(1))
    plan = sandbox.add_plan(SRC, img_url=url_of)
    async with sandbox.serve() as url:
        (tmp_path / "job.yaml").write_text(
            f"endpoint: {url}\nitems:\n  - {{project_id: {SRC}, plan_id: {plan.id}, img_url: {url_of}}}\n"
        )
        await cli("run", "job.yaml", "--no-progress", cwd=tmp_path)
    assert sandbox.stats.puts == 0
    assert '"error": "already set"' in (tmp_path / "job.results.jsonl").read_text()


@pytest.mark.subprocess
async def test_resume_after_a_kill_during_a_migration_uploads_nothing_twice(tmp_path: Path) -> None:
    """Killed with SIGKILL mid-migration, a --resume run finishes without uploading any image twice to the target."""
    sandbox = strict()
    images = [sandbox.upload(SRC, png(500 + n)) for n in range(40)]
    for n in range(40):
        sandbox.add_plan(SRC, name=f"Plan {n}", img_url=images[n])
        sandbox.add_plan(DST, name=f"Plan {n}")
    async with sandbox.serve() as url:
        args = [
            sys.executable,
            "-m",
            "batchthumb",
            "migrate",
            "--from",
            SRC,
            "--to",
            DST,
            "--endpoint",
            url,
            "--no-progress",
            "--concurrency",
            "2",
            # A rate: with none, the slow start keeps one PUT in flight until it is answered,
            # and the closed gate answers none.
            "--rate",
            "1000",
        ]
        sandbox.gate.close()
        async with await anyio.open_process(args, cwd=tmp_path, env=env()) as process:
            with anyio.fail_after(30):
                await sandbox.wait_until(lambda s: s.waiting_at_gate >= 2)
            process.send_signal(signal.SIGKILL)
            with anyio.fail_after(30):
                await process.wait()
        sandbox.gate.open()
        uploaded = len(uploads_to(sandbox, DST))
        assert 2 <= uploaded < 40
        await cli(
            "migrate",
            "--from",
            SRC,
            "--to",
            DST,
            "--endpoint",
            url,
            "--no-progress",
            "--resume",
            cwd=tmp_path,
        )
    data = uploads_to(sandbox, DST)
    assert len(data) == len(set(data)) == 40
    assert all(p.img_url is not None for p in sandbox.plans(DST))


async def test_migrate_o_says_why_its_images_folder_cannot_be_created(tmp_path: Path) -> None:
    """A file where migrate -o puts its images folder: one message, exit 2, nothing downloaded."""
    sandbox = strict()
    seed_migration(sandbox, 3)
    (tmp_path / "move.images").write_text("in the way\n")
    async with sandbox.serve() as url:
        done = await cli(
            "migrate", "--from", SRC, "--to", DST, "--endpoint", url, "-o", "move.yaml",
            cwd=tmp_path, check=2,
        )  # fmt: skip
    assert done.stderr.decode().splitlines()[-1] == (
        "batchthumb: move.images: cannot create the images folder: File exists"
    )
    assert sandbox.stats.downloads == 0
    assert not (tmp_path / "move.yaml").exists()


async def test_an_image_the_server_refuses_fails_its_plans_after_one_upload(
    tmp_path: Path,
) -> None:
    """A refused upload fails every plan showing that image, says "upload failed", is not retried."""
    sandbox = Sandbox(SandboxConfig(strict_urls=True, autocreate=False, max_upload_bytes=64))
    plans = [sandbox.add_plan(SRC, name=f"P{n}") for n in range(3)]
    (tmp_path / "logo.png").write_bytes(png(1) + b"\0" * 100)
    lines = [f"  - {{project_id: {SRC}, plan_id: {p.id}, image: logo.png}}" for p in plans]
    async with sandbox.serve() as url:
        (tmp_path / "job.yaml").write_text(f"endpoint: {url}\nitems:\n" + "\n".join(lines) + "\n")
        await cli("run", "job.yaml", "--no-progress", cwd=tmp_path, check=1)
    assert (sandbox.stats.uploads, sandbox.stats.puts) == (1, 0)
    lines = (tmp_path / "job.results.jsonl").read_text().splitlines()
    failed = [r for r in map(json.loads, lines) if r.get("outcome") == "failed"]
    assert len(failed) == 3
    assert {r["error"] for r in failed} == {
        "upload failed: Invalid parameter file: the image is larger than 64 bytes"
    }
    assert sorted(r["attempts"] for r in failed) == [0, 0, 1]  # one upload; the others reuse it
