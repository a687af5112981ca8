"""Running the real CLI (in process, or in a subprocess), the sandbox as a process, and writing job
files for it."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shlex
import sys
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.abc

from batchthumb import cli as batchthumb_cli
from tests.conftest import P1, TOKEN, img_url, plan_id

SECRETS = (TOKEN,)
CLI_TIMEOUT = 180  # a backstop: a hung CLI fails its test instead of hanging the suite
# (the chaos run, 8 s on two quiet cores, once passed 90 s with four mutation runs beside it)


@dataclass(frozen=True)
class Result:
    """What a CLI run printed and how it exited."""

    code: int
    out: str
    err: str


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "batchthumb", *args]


def environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATCHTHUMB_")}
    env["BATCHTHUMB_TOKEN"] = TOKEN
    env.update(extra)
    return env


def check_no_leak(*texts: str) -> None:
    """No secret used by the tests appears in any output."""
    for text in texts:
        for secret in SECRETS:
            assert secret not in text, "a secret leaked into the output"


async def cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> Result:
    """Run ``batchthumb ARGS`` in this process (``cli.main`` in a thread); no secret leaked.

    The thread has its own event loop, so a sandbox served by the test's loop answers it over
    loopback as it would a subprocess. Signals need the main thread: those tests use
    :func:`cli_process`.
    """
    with anyio.fail_after(CLI_TIMEOUT):
        result = await anyio.to_thread.run_sync(
            _main, list(args), env or environment(), cwd, abandon_on_cancel=True
        )
    check_no_leak(result.out, result.err)
    return result


_IN_PROCESS = threading.Lock()  # the environment, directory and sys.stdout are process-wide


def _main(args: list[str], env: dict[str, str], cwd: Path | None) -> Result:
    out, err = io.StringIO(), io.StringIO()
    with (
        _IN_PROCESS,
        _environment(env),
        contextlib.chdir(cwd or Path.cwd()),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        try:
            code = batchthumb_cli.main(args)
        except SystemExit as exc:  # argparse: usage errors, --help, --version
            code = exc.code if isinstance(exc.code, int) else 2
    return Result(code, out.getvalue(), err.getvalue())


@contextlib.contextmanager
def _environment(env: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


async def cli_process(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> Result:
    """Run ``batchthumb ARGS`` in a subprocess to completion; no secret leaked, no traceback."""
    with anyio.fail_after(CLI_TIMEOUT):
        done = await anyio.run_process(
            command(*args), env=env or environment(), cwd=cwd, check=False
        )
    result = Result(done.returncode, done.stdout.decode(), done.stderr.decode())
    check_no_leak(result.out, result.err)
    assert "Traceback" not in result.err, result.err
    return result


async def cli_with_file_limit(*args: str, kilobytes: int) -> Result:
    """Run ``batchthumb ARGS`` unable to grow any file past ``kilobytes`` (a full disk)."""
    # Ignore SIGXFSZ so that writing past the limit fails with EFBIG instead of killing.
    shell = f"trap '' XFSZ; ulimit -f {kilobytes}; exec {shlex.join(command(*args))}"
    # Coverage measurement of the child (if any) would hit the same limit saving its data.
    env = {k: v for k, v in environment().items() if not k.startswith("COVERAGE")}
    with anyio.fail_after(CLI_TIMEOUT):
        done = await anyio.run_process(["bash", "-c", shell], env=env, check=False)
    result = Result(done.returncode, done.stdout.decode(), done.stderr.decode())
    check_no_leak(result.out, result.err)
    assert "Traceback" not in result.err
    return result


def write_job(
    path: Path,
    *,
    endpoint: str | None,
    plans: Iterable[int],
    project: str = P1,
    settings: str = "",
    report: str | None = None,
) -> Path:
    """A job file with one item per plan number, all in ``project``."""
    lines = []
    if endpoint is not None:
        lines.append(f"endpoint: {endpoint}")
    if report is not None:
        lines.append(f"report: {report}")
    lines.append(settings)
    lines.append(f"defaults:\n  project_id: {project}\nitems:")
    lines.extend(f"  - {{plan_id: {plan_id(n)}, img_url: {img_url(n, project)}}}" for n in plans)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def read_report(path: Path) -> list[dict[str, Any]]:
    """Every item line of a report, parsed (upload and snapshot lines left out); no leaks."""
    text = path.read_text(encoding="utf-8")
    check_no_leak(text)
    records = [json.loads(line) for line in text.splitlines()]
    return [record for record in records if "kind" not in record]


def by_plan(records: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Report records keyed by plan id (the last one wins)."""
    return {r["plan_id"]: r for r in records}


async def start(*args: str) -> anyio.abc.Process:
    return await anyio.open_process(command(*args), env=environment())


async def read_until(process: anyio.abc.Process, marker: str) -> str:
    """Read the process's stderr until ``marker`` appears (the process says it got there)."""
    assert process.stderr is not None
    seen = ""
    with anyio.fail_after(CLI_TIMEOUT):
        while marker not in seen:
            seen += (await process.stderr.receive()).decode()
    return seen


async def finish(process: anyio.abc.Process, already: str = "") -> tuple[int, str]:
    """Wait for the process to exit; return its code and all of its stderr."""
    assert process.stderr is not None
    err = already
    with anyio.fail_after(CLI_TIMEOUT):
        async for chunk in process.stderr:
            err += chunk.decode()
        code = await process.wait()
    check_no_leak(err)
    return code, err


ROOT = Path(__file__).resolve().parent.parent


async def start_sandbox(*options: str) -> tuple[anyio.abc.Process, str]:
    """A ``batchthumb sandbox`` process on a free port, and its URL once it says it is ready."""
    from batchthumb.sandbox.command import READY_LINE

    command = [sys.executable, "-m", "batchthumb.sandbox", "--port", "0", *options]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    process = await anyio.open_process(command, env=env, cwd=ROOT)
    assert process.stdout is not None
    line = b""
    with anyio.fail_after(30):  # interpreter and aiohttp start-up on a loaded machine
        while not line.endswith(b"\n"):
            line += await process.stdout.receive()
    match = re.fullmatch(
        re.escape(READY_LINE.format(url="")) + r"(http://127\.0\.0\.1:\d+)\n", line.decode()
    )
    assert match is not None, line
    return process, match.group(1)
