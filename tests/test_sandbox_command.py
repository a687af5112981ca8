"""Tests for the ``sandbox`` subcommand: option parsing and a real server process."""

from __future__ import annotations

import argparse
import signal
import socket
from pathlib import Path

import aiohttp
import anyio
import pytest

from batchthumb.sandbox.command import add_arguments, build_sandbox, main
from batchthumb.sandbox.limits import RateLimit, RetryAfter, Shape
from tests.clihelp import start_sandbox

ROOT = Path(__file__).resolve().parent.parent
P = "919bb351ef424e2daaf3dd80c179fae9"
PLAN = "bf56512ab4e544c29d03d068711ca56a"
TOKEN = "a-static-token-0123"
IMG = f"/v1/upload/{P}/202506/1749730526922581391.png"


def parse(*argv: str) -> argparse.Namespace:
    """Parse ``sandbox`` options as the CLI would."""
    parser = argparse.ArgumentParser(prog="batchthumb sandbox")
    add_arguments(parser)
    return parser.parse_args(argv)


def test_options_build_the_described_sandbox() -> None:
    """Each option lands in the sandbox's config or faults; --fail-first scripts 503s."""
    sandbox = build_sandbox(
        parse(
            "--token", "t1-0123456789", "--token", "t2-0123456789", "--strict",
            "--latency", "0.5", "--p500", "0.1", "--p503", "0.2", "--p429", "0.3",
            "--retry-after", "4", "--p-drop", "0.05", "--rate-limit", "7.5@0,2@3",
            "--limit-shape", "fixed", "--limit-window", "60", "--limit-burst", "3",
            "--limit-scope", "shared", "--limit-retry-after", "date", "--jitter", "0.25",
            "--limit-align", "clock",
            "--throttle-code", "APIG.0308",
            "--fail-first", "3", "--seed-random", "9", "--aksk", "AK1:SK1",
            "--iam-user", "acme/bot:pw:with:colons",
        )
    )  # fmt: skip
    config, faults = sandbox.config, sandbox.faults
    assert config.tokens == {"t1-0123456789", "t2-0123456789"}
    assert (config.autocreate, config.strict_urls) == (False, True)
    assert dict(config.aksk) == {"AK1": "SK1"}
    user = config.iam_users[0]
    assert (user.domain, user.name, user.password) == ("acme", "bot", "pw:with:colons")
    assert (faults.latency, faults.p500, faults.p503, faults.p429) == (0.5, 0.1, 0.2, 0.3)
    assert (faults.retry_after, faults.jitter) == ("4", 0.25)
    assert (faults.p_drop, faults.seed) == (0.05, 9)
    assert config.rate_limit == RateLimit(
        ((0.0, 7.5), (3.0, 2.0)),
        shape=Shape.FIXED,
        burst=3,
        window=60.0,
        aligned=True,
        per_api=False,
        retry_after=RetryAfter.DATE,
    )
    assert config.throttle_code == "APIG.0308"
    assert faults.scripted_remaining == 3


def test_defaults_and_rejected_values(capsys: pytest.CaptureFixture[str]) -> None:
    """Defaults are 127.0.0.1:8080 and the documented behaviour (no autocreate, wrapped list
    elements, X-Project-Id required); a probability above 1 is a usage error."""
    args = parse()
    assert (args.host, args.port, args.strict) == ("127.0.0.1", 8080, False)
    config = build_sandbox(args).config
    assert (config.autocreate, config.list_wrapped, config.require_project_id) == (
        False,
        True,
        True,
    )
    assert (config.download_permission, config.non_member_projects) == (True, frozenset())
    loose = build_sandbox(
        parse(
            "--autocreate", "--list-bare", "--no-project-id-check", "--no-download-permission",
            "--non-member", "919bb351ef424e2daaf3dd80c179fae9",
        )
    ).config  # fmt: skip
    assert (loose.autocreate, loose.list_wrapped, loose.require_project_id) == (True, False, False)
    assert not loose.download_permission
    assert loose.non_member_projects == {"919bb351ef424e2daaf3dd80c179fae9"}
    with pytest.raises(SystemExit) as raised:
        parse("--p500", "1.5")
    assert raised.value.code == 2
    assert "between 0 and 1" in capsys.readouterr().err


def test_bad_seed_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A bad seed file ends the command with status 2 and a message, before serving."""
    seed = tmp_path / "seed.yaml"
    seed.write_text("projects:\n  nope: {}\n", encoding="utf-8")
    assert main(["--port", "0", "--seed", str(seed)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "seed.yaml:2: projects.nope" in captured.err


@pytest.mark.anyio
@pytest.mark.subprocess
async def test_subprocess_serves_until_sigint(tmp_path: Path) -> None:
    """The command prints one URL line, serves the seed (first PUT 503), exits 0 on SIGINT."""
    seed = tmp_path / "seed.yaml"
    seed.write_text(
        f"projects:\n  {P}:\n    plans:\n      - {{id: {PLAN}, name: Roadmap}}\n",
        encoding="utf-8",
    )
    process, url = await start_sandbox("--token", TOKEN, "--seed", str(seed), "--fail-first", "1")
    async with process:
        assert process.stdout is not None
        path = f"/v3/plan/{P}/management/{PLAN}/img"
        with anyio.fail_after(20):
            async with aiohttp.ClientSession(url, headers={"X-Auth-Token": TOKEN}) as http:
                async with http.put(path, json={"img_url": IMG}) as first:
                    first_status = first.status
                async with http.put(path, json={"img_url": IMG}) as second:
                    second_body = await second.json()
        process.send_signal(signal.SIGINT)
        with anyio.fail_after(20):
            returncode = await process.wait()
            rest = b""
            try:
                while True:
                    rest += await process.stdout.receive()
            except (anyio.EndOfStream, anyio.ClosedResourceError):
                pass
    assert first_status == 503
    assert second_body["result"]["img_url"] == IMG
    assert returncode == 0
    assert rest == b""


def test_port_in_use_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    """A port that is already taken ends the command with status 2 and says why."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["--port", str(port)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"cannot listen on 127.0.0.1:{port}" in captured.err
