"""Hostile files through the CLI: FIFOs, devices, directories, huge and malformed files.

Every file batchthumb reads is opened without blocking, refused unless it is a regular file,
and read with a cap. The FIFO cases run the CLI in a subprocess with its own deadline, so a
regression that blocks on the FIFO fails its test instead of hanging the suite.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path

import anyio
import pytest

from batchthumb import jobfile
from batchthumb.cli import main
from batchthumb.files import ITEMS_LINE_LIMIT, JOB_FILE_LIMIT
from batchthumb.sandbox import Sandbox
from tests.clihelp import (
    CLI_TIMEOUT,
    cli,
    cli_process,
    cli_with_file_limit,
    command,
    environment,
    write_job,
)
from tests.conftest import P1, TOKEN, img_url, plan_id
from tests.imagedata import png

pytestmark = pytest.mark.anyio

ITEM = f"{{project_id: {P1}, plan_id: {plan_id(1)}"
Q1 = "d57000000000000000000000000b0b0b"


@pytest.fixture(autouse=True)
def token(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process runs find credentials, so that they get as far as the file at fault."""
    monkeypatch.setenv("BATCHTHUMB_TOKEN", TOKEN)


def fifo(path: Path) -> Path:
    """A named pipe that nobody writes to: reading it would block forever."""
    os.mkfifo(path)
    return path


def run_main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """``batchthumb ARGV`` in process: its exit code and stderr."""
    code = main(list(argv))
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


@pytest.mark.subprocess
async def test_a_fifo_as_the_job_file_is_refused_without_blocking(tmp_path: Path) -> None:
    """`validate FIFO` and `run FIFO` say it is a FIFO and exit 2 instead of hanging."""
    job = fifo(tmp_path / "job.yaml")
    for args in (("validate", str(job)), ("run", str(job), "--dry-run")):
        result = await cli_process(*args)
        assert result.code == 2
        assert f"{job}: is a FIFO (named pipe), not a regular file" in result.err


@pytest.mark.subprocess
async def test_a_fifo_as_the_items_file_is_refused_without_blocking(tmp_path: Path) -> None:
    """An items_file that is a FIFO is reported as such (not "no such file"), exit 2."""
    items = fifo(tmp_path / "items.csv")
    (tmp_path / "job.yaml").write_text("items_file: items.csv\n")
    result = await cli_process("validate", str(tmp_path / "job.yaml"))
    assert result.code == 2
    assert f"{items}: items_file: is a FIFO (named pipe), not a regular file" in result.err


@pytest.mark.subprocess
async def test_a_fifo_as_an_image_is_refused_without_blocking(tmp_path: Path) -> None:
    """`image:` naming a FIFO is a problem on its line, exit 2, no hang."""
    fifo(tmp_path / "logo.png")
    (tmp_path / "job.yaml").write_text(f"items:\n  - {ITEM}, image: logo.png}}\n")
    result = await cli_process("validate", str(tmp_path / "job.yaml"))
    assert result.code == 2
    assert "job.yaml:2: items[0].image: " in result.err
    assert "logo.png is a FIFO (named pipe), not a regular file" in result.err


@pytest.mark.subprocess
async def test_a_fifo_as_the_token_or_credentials_file_is_refused(tmp_path: Path) -> None:
    """A token file, an SDK credentials file or an --auth file that is a FIFO: exit 2, no hang."""
    fifo(tmp_path / "token")
    fifo(tmp_path / "credentials")
    fifo(tmp_path / "auth.yaml")
    job = write_job(tmp_path / "job.yaml", endpoint="http://127.0.0.1:9", plans=[1])
    cases = [
        ("auth: {token_file: token}\n", (), "token: is a FIFO"),
        ("auth: {aksk: {credentials_file: credentials}}\n", (), "credentials: is a FIFO"),
        ("", ("--auth", str(tmp_path / "auth.yaml")), "auth.yaml: is a FIFO"),
    ]
    base = job.read_text()
    for auth, extra, expected in cases:
        job.write_text(auth + base)
        env = {k: v for k, v in environment().items() if not k.startswith("HUAWEICLOUD_")}
        result = await cli_process("run", str(job), "--no-progress", *extra, env=env)
        assert result.code == 2, result.err
        assert expected in result.err
        assert "not a regular file" in result.err


@pytest.mark.subprocess
async def test_a_fifo_as_a_sandbox_seed_is_refused(tmp_path: Path) -> None:
    """`sandbox --seed FIFO`, or a seed naming a FIFO as an image: exit 2, no blocking."""
    seed = fifo(tmp_path / "seed.yaml")
    result = await cli_process("sandbox", "--port", "0", "--seed", str(seed))
    assert result.code == 2
    assert f"{seed}: is a FIFO (named pipe), not a regular file" in result.err
    seed.unlink()
    image = fifo(tmp_path / "logo.png")
    seed.write_text(f"projects:\n  {P1}:\n    plans:\n      - {{name: A, image: logo.png}}\n")
    result = await cli_process("sandbox", "--port", "0", "--seed", str(seed))
    assert result.code == 2
    assert f"{image}: is a FIFO (named pipe), not a regular file" in result.err


@pytest.mark.subprocess
async def test_a_fifo_as_a_report_or_a_mapping_file_is_refused(
    tmp_path: Path, sandbox: tuple[Sandbox, str]
) -> None:
    """`undo FIFO`, `run --resume --report FIFO` and `migrate --match FIFO`: exit 2, no hang."""
    box, url = sandbox
    report = fifo(tmp_path / "r.jsonl")
    mapping = fifo(tmp_path / "map.csv")
    box.add_plan(P1, name="A", img_url=img_url(1))
    box.add_plan(Q1, name="A")
    job = write_job(tmp_path / "job.yaml", endpoint=url, plans=[1])
    cases = [
        (("undo", str(report), "-o", str(tmp_path / "undo.yaml")), f"{report}: is a FIFO"),
        (
            ("run", str(job), "--no-progress", "--resume", "--report", str(report)),
            f"{report}: not a regular file",
        ),
        (
            ("migrate", "--from", P1, "--to", Q1, "--endpoint", url, "--match", str(mapping)),
            f"{mapping}: is a FIFO",
        ),
    ]
    for args, expected in cases:
        result = await cli_process(*args)
        assert result.code == 2, result.err
        assert expected in result.err
    assert box.stats.puts == 0


def test_dev_zero_as_an_image_is_refused_without_reading_it_all(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`image: /dev/zero` (size 0 by stat, endless in fact) is a device: exit 2, no MemoryError."""
    job = tmp_path / "job.yaml"
    job.write_text(f"items:\n  - {ITEM}, image: /dev/zero}}\n")
    code, err = run_main(capsys, "validate", str(job))
    assert code == 2
    assert f"{job}:2: items[0].image: /dev/zero is a device, not a regular file" in err


def test_dev_zero_as_the_job_file_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    """`validate /dev/zero` is refused as a device, exit 2."""
    code, err = run_main(capsys, "validate", "/dev/zero")
    assert code == 2
    assert "/dev/zero: is a device, not a regular file" in err


def test_a_directory_as_the_items_file_is_reported_as_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An items_file that is a directory says "is a directory", not "no such file"."""
    (tmp_path / "items.csv").mkdir()
    (tmp_path / "job.yaml").write_text("items_file: items.csv\n")
    code, err = run_main(capsys, "validate", str(tmp_path / "job.yaml"))
    assert code == 2
    assert "items.csv: items_file: is a directory, not a regular file" in err


def test_a_job_file_over_the_cap_is_refused_as_it_streams(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job file growing past the cap as it is streamed is one problem naming the limit."""
    assert JOB_FILE_LIMIT >= 1024 * 1024 * 1024  # a million inline items fit (issue 9)
    monkeypatch.setattr(jobfile, "JOB_FILE_LIMIT", 64 * 1024)  # the real cap is 1 GB
    job = tmp_path / "job.yaml"
    job.write_text("items:\n" + "# padding, valid YAML all the way\n" * 4000)
    code, err = run_main(capsys, "validate", str(job))
    assert code == 2
    assert f"{job}: is larger than 64 KB, the limit for a job file" in err


def test_an_image_over_5_mb_is_refused_whatever_stat_says(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A valid PNG header followed by more than 5 MB is refused by the bytes read."""
    (tmp_path / "big.png").write_bytes(png() + bytes(5 * 1024 * 1024))
    (tmp_path / "job.yaml").write_text(f"items:\n  - {ITEM}, image: big.png}}\n")
    code, err = run_main(capsys, "validate", str(tmp_path / "job.yaml"))
    assert code == 2
    assert "big.png is larger than 5 MB, the limit for an image" in err


def test_a_png_signature_alone_is_not_an_image(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Eight bytes of PNG signature without an IHDR chunk fail validation."""
    (tmp_path / "sig.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (tmp_path / "job.yaml").write_text(f"items:\n  - {ITEM}, image: sig.png}}\n")
    code, err = run_main(capsys, "validate", str(tmp_path / "job.yaml"))
    assert code == 2
    assert "sig.png is not a PNG, JPEG, GIF, BMP or WebP image (by its content)" in err


def items_job(tmp_path: Path, name: str, content: bytes) -> Path:
    (tmp_path / name).write_bytes(content)
    job = tmp_path / "job.yaml"
    job.write_text(f"items_file: {name}\n")
    return job


CSV_HEADER = b"project_id,plan_id,img_url\n"
CSV_ROW = f"{P1},{plan_id(1)},{img_url(1)}\n".encode()


def test_a_csv_items_file_may_start_with_a_byte_order_mark(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A UTF-8 BOM (as spreadsheets write) before the header is accepted."""
    job = items_job(tmp_path, "items.csv", b"\xef\xbb\xbf" + CSV_HEADER + CSV_ROW)
    code, err = run_main(capsys, "validate", str(job))
    assert code == 0, err


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        (
            "items.csv",
            b"project_id,plan_id,img_url,plan_id\n" + CSV_ROW,
            ":1: column 'plan_id' appears twice",
        ),
        (
            "items.jsonl",
            f'{{"project_id": "{P1}", "plan_id": "{plan_id(1)}", "img_url": "{img_url(1)}", '
            f'"plan_id": "{plan_id(2)}"}}\n'.encode(),
            ":1: items[0]: not valid JSON: key 'plan_id' appears twice",
        ),
        ("items.jsonl", b"[" * 10_000 + b"\n", ":1: items[0]: not valid JSON: nested more than"),
        (
            "items.jsonl",
            b'{"project_id": ' + b"[" * 5000 + b"]" * 5000 + b"}\n",
            ":1: items[0]: not valid JSON: nested more than 32 levels deep",
        ),
        (
            "items.jsonl",
            b'{"a": "' + b"x" * ITEMS_LINE_LIMIT + b'"}\n',
            ":1: line longer than 16 KB",
        ),
        (
            "items.csv",
            CSV_HEADER + CSV_ROW + b'"unclosed,quote\n',
            ":3: not valid CSV: unexpected end of data",
        ),
        (
            "items.csv",
            CSV_HEADER + CSV_ROW + CSV_ROW[:5] + b"\0" + CSV_ROW[5:],
            ":3: items[1].project_id: must be 32 letters or digits",
        ),
        (
            "items.jsonl",
            f'{{"project_id": "{P1}", "plan_id": "{plan_id(1)}\x1b[2J", "img_url": "{img_url(1)}"}}\n'.encode(),
            ":1: items[0]: not valid JSON: Invalid control character at",
        ),
    ],
)
def test_malformed_items_files_are_problems_with_their_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, content: bytes, expected: str
) -> None:
    """Duplicate columns and keys, deep nesting, long lines, bad quoting, NUL and control
    characters are each one problem naming the line; exit 2, no RecursionError."""
    job = items_job(tmp_path, name, content)
    code, err = run_main(capsys, "validate", str(job))
    assert code == 2
    assert f"{tmp_path / name}{expected}" in err


def test_a_control_character_in_a_job_file_is_reported_with_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """YAML refuses control characters; the problem names the line they are on."""
    job = tmp_path / "job.yaml"
    job.write_text(f'concurrency: 2\nitems:\n  - {ITEM}, img_url: "{img_url(1)}\x1b"}}\n')
    code, err = run_main(capsys, "validate", str(job))
    assert code == 2
    assert f"{job}:3: not valid YAML: control characters are not allowed (character 0x1b)" in err


# -- the report and its lock -------------------------------------------------------------


async def test_a_symlinked_lock_file_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    """REPORT.lock pointing at another file (a planted symlink): exit 2, the target unchanged."""
    victim = tmp_path / "credentials"
    victim.write_text("[basic]\nak = x\n")
    (tmp_path / "job.results.jsonl.lock").symlink_to(victim)
    job = write_job(tmp_path / "job.yaml", endpoint="http://127.0.0.1:9", plans=[1])
    result = await cli("run", str(job), "--no-progress")
    assert result.code == 2
    assert "job.results.jsonl.lock: cannot use as the lock file: is a symbolic link" in result.err
    assert victim.read_text() == "[basic]\nak = x\n"


@pytest.mark.parametrize("dangling", [True, False])
def test_a_symlinked_report_is_refused_and_nothing_is_created_through_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], dangling: bool
) -> None:
    """A report path that is a symlink (dangling or not) is refused before anything is sent."""
    target = tmp_path / "elsewhere.jsonl"
    if not dangling:
        target.write_text("")
    (tmp_path / "job.results.jsonl").symlink_to(target)
    job = write_job(tmp_path / "job.yaml", endpoint="http://127.0.0.1:9", plans=[1])
    code, err = run_main(capsys, "run", str(job), "--no-progress")
    assert code == 2
    assert "job.results.jsonl: is a symbolic link; refusing to write the report through it" in err
    assert target.exists() is not dangling
    if not dangling:
        assert target.read_text() == ""


def test_resume_on_a_file_that_is_not_a_report_is_refused_not_appended_to(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--resume --report NOTES` on a text file: exit 2, the file byte for byte unchanged."""
    notes = tmp_path / "notes.txt"
    notes.write_text("remember the milk\n")
    job = write_job(tmp_path / "job.yaml", endpoint="http://127.0.0.1:9", plans=[1])
    code, err = run_main(
        capsys, "run", str(job), "--no-progress", "--resume", "--report", str(notes)
    )
    assert code == 2
    assert f"{notes}:1: not a report line ('remember the milk\\n')" in err
    assert notes.read_text() == "remember the milk\n"


@pytest.mark.parametrize("how", ["delete the folder", "rename the report"])
@pytest.mark.subprocess
async def test_a_report_that_vanishes_mid_run_stops_the_run_with_exit_2(
    tmp_path: Path, sandbox: tuple[Sandbox, str], how: str
) -> None:
    """The report's folder deleted, or the report renamed, while PUTs are held: exit 2."""
    box, url = sandbox
    folder = tmp_path / "out"
    job = write_job(
        tmp_path / "job.yaml",
        endpoint=url,
        plans=range(5),
        settings="concurrency: 1",
        report="out/r.jsonl",
    )
    box.gate.close()
    try:
        process = await anyio.open_process(
            command("run", str(job), "--no-progress", "--no-snapshot"), env=environment()
        )
        with anyio.fail_after(CLI_TIMEOUT):
            await box.wait_until(lambda s: s.waiting_at_gate == 1)
        if how == "delete the folder":
            shutil.rmtree(folder)
        else:
            (folder / "r.jsonl").rename(folder / "moved.jsonl")
    finally:
        box.gate.open()
    assert process.stderr is not None
    err = b""
    with anyio.fail_after(CLI_TIMEOUT):
        async for chunk in process.stderr:
            err += chunk
        await process.wait()
    assert process.returncode == 2, err
    assert b"r.jsonl: the report was deleted or moved (or its folder was) during the run" in err
    assert b"Traceback" not in err


# -- settings: maxima --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "value", "expected"),
    [
        ("concurrency", "1000000", "concurrency: must be at most 512, not 1000000"),
        (
            "concurrency",
            "100000000000000000000",
            "concurrency: must be at most 512, not 100000000000000000000",
        ),
        ("concurrency", "9" * 5000, "concurrency: must be at most 512, not 9999"),
        ("rate", "1.0e+9", "rate: must be at most 10,000, not 1.0e+9"),
        ("burst", "5000", "burst: must be at most 1,000, not 5000"),
        ("retries", "1000", "retries: must be at most 100, not 1000"),
        ("timeout", "86400", "timeout: must be at most 3,600, not 86400"),
    ],
)
def test_job_file_settings_past_their_maximum_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], setting: str, value: str, expected: str
) -> None:
    """Each setting has an upper bound; past it `validate` names the line and the bound."""
    job = write_job(tmp_path / "job.yaml", endpoint=None, plans=[1], settings=f"{setting}: {value}")
    code, err = run_main(capsys, "validate", str(job))
    assert code == 2
    assert f"{job}:1: {expected}" in err


@pytest.mark.parametrize(
    ("flag", "value", "expected"),
    [
        ("--concurrency", "1000000", "must be at most 512, not 1000000"),
        ("--rate", "1e9", "must be at most 10,000, not 1e9"),
        ("--burst", "5000", "must be at most 1,000, not 5000"),
        ("--retries", "101", "must be at most 100, not 101"),
        ("--timeout", "1e6", "must be at most 3,600, not 1e6"),
        ("--backoff", "3600", "must be at most 60, not 3600"),
        ("--lock-wait", "1e9", "must be at most 86,400, not 1e9"),
        ("--max-duration", "1000h", "must be at most 7 days (168h), not 1000h"),
        ("--rate", "nan", "must be 0 or more, not nan"),
    ],
)
def test_command_line_settings_past_their_maximum_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str, value: str, expected: str
) -> None:
    """The same bounds hold for the flags: a usage error (exit 2) naming the flag and bound."""
    job = write_job(tmp_path / "job.yaml", endpoint=None, plans=[1])
    with pytest.raises(SystemExit) as exited:
        main(["run", str(job), "--dry-run", f"{flag}={value}"])
    assert exited.value.code == 2
    assert f"argument {flag}: {expected}" in capsys.readouterr().err


async def test_a_run_starts_no_more_workers_than_it_has_items(
    tmp_path: Path, sandbox: tuple[Sandbox, str]
) -> None:
    """`--concurrency 512` on a 2-item job starts 2 workers (and 2 pooled connections)."""
    _, url = sandbox
    job = write_job(tmp_path / "job.yaml", endpoint=url, plans=range(2))
    result = await cli("run", str(job), "--no-progress", "--concurrency", "512", "--log-json")
    assert result.code == 0, result.err
    start = next(json.loads(line) for line in result.err.splitlines() if '"start"' in line)
    assert (start["concurrency"], start["workers"]) == (512, 2)


# -- the log file ----------------------------------------------------------------------


@pytest.mark.subprocess
async def test_a_log_file_on_a_full_disk_is_a_clear_error_and_the_report_untouched(
    tmp_path: Path, sandbox: tuple[Sandbox, str]
) -> None:
    """--log-file past a real file-size limit: one message, exit 2, last night's report kept."""
    box, url = sandbox
    job = write_job(tmp_path / "job.yaml", endpoint=url, plans=range(3))
    report = tmp_path / "job.results.jsonl"
    report.write_text("")  # last run's report: a fresh run would move it to .1
    log = tmp_path / "run.log"
    log.write_bytes(b"x" * 2048)  # at the limit already: the first event cannot be written
    done = await cli_with_file_limit(
        "run", str(job), "--no-progress", "--log-json", "--log-file", str(log), kilobytes=2
    )
    assert done.code == 2, done.err
    assert f"{log}: cannot write the log: File too large" in done.err
    assert report.exists() and not report.with_name(report.name + ".1").exists()
    assert box.stats.puts == 0


@pytest.mark.parametrize("kind", ["dangling symlink", "symlink", "fifo"])
async def test_a_log_file_that_is_not_a_regular_file_is_refused_before_anything_is_sent(
    tmp_path: Path, sandbox: tuple[Sandbox, str], kind: str
) -> None:
    """--log-file through a symlink or into a FIFO: exit 2 at once, no PUT, no file created."""
    box, url = sandbox
    job = write_job(tmp_path / "job.yaml", endpoint=url, plans=range(3))
    log, target = tmp_path / "run.log", tmp_path / "elsewhere"
    if kind == "fifo":
        fifo(log)
    else:
        if kind == "symlink":
            target.write_text("keep\n")
        log.symlink_to(target)
    with anyio.fail_after(30):  # a FIFO opened for writing with no reader would block
        result = await cli("run", str(job), "--no-progress", "--log-file", str(log))
    assert result.code == 2, result.err
    reason = "is a symbolic link" if "symlink" in kind else "not a regular file"
    assert f"{log}: cannot write the log: " in result.err and reason in result.err
    assert box.stats.puts == 0
    if kind == "dangling symlink":
        assert not target.exists()
    elif kind == "symlink":
        assert target.read_text() == "keep\n"


def test_a_failing_log_stream_reports_once_and_drops_later_events() -> None:
    """Writes to /dev/full fail: the error is kept, told once, and never raised into the run."""
    from batchthumb.errors import UsageError
    from batchthumb.logs import JsonEvents

    told: list[OSError] = []
    stream = open("/dev/full", "w", encoding="utf-8")  # noqa: SIM115
    try:
        events = JsonEvents(stream, on_error=told.append)
        events.emit("start")
        events.emit("retry")
        assert len(told) == 1 and events.error is told[0]
        with pytest.raises(UsageError, match="/dev/full: cannot write the log: No space left"):
            events.check()
    finally:
        with contextlib.suppress(OSError):  # the unwritten event is still buffered
            stream.close()


def test_a_token_file_over_its_cap_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A token file larger than 64 KB (a log pasted by mistake, a device) is refused, exit 2."""
    token = tmp_path / "token"
    token.write_text("t" * (64 * 1024 + 1))
    token.chmod(0o600)
    job = write_job(tmp_path / "job.yaml", endpoint="http://127.0.0.1:9", plans=[1])
    job.write_text("auth: {token_file: token}\n" + job.read_text())
    code, err = run_main(capsys, "run", str(job), "--no-progress")
    assert code == 2
    assert f"{token}: larger than 64 KB, the limit for a file of secrets" in err
