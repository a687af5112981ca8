"""`batchthumb run` end to end with each way of authenticating, against a loopback sandbox."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from batchthumb.sandbox import IamUser, Sandbox, SandboxConfig
from tests.clihelp import cli

if TYPE_CHECKING:
    from conftest import SecretGuard

pytestmark = pytest.mark.anyio

P = "919bb351ef424e2daaf3dd80c179fae9"
URL = f"/v1/upload/{P}/202506/1749730526922581391.png"
PASSWORD = "pw-SENTINEL-cli-93b1"
AK = "AKSENTINELCLI0000001"
SK = "sk-SENTINEL-cli-e07d4c"
PLANS = [f"{n:032x}" for n in range(6)]


@dataclass(frozen=True)
class Result:
    code: int
    stdout: str
    stderr: str


@pytest.fixture
async def sandbox() -> AsyncIterator[tuple[Sandbox, str]]:
    config = SandboxConfig(
        iam_users=(IamUser("acme", "bot", PASSWORD, "cn-north-4"),), aksk={AK: SK}
    )
    box = Sandbox(config)
    for plan in PLANS:
        box.add_plan(P, plan_id=plan)
    async with box.serve() as url:
        yield box, url


def write_job(tmp_path: Path, endpoint: str, auth: str) -> Path:
    items = "".join(f"  - plan_id: {plan}\n" for plan in PLANS)
    text = (
        f"endpoint: {endpoint}\nconcurrency: 3\n{auth}"
        f"defaults:\n  project_id: {P}\n  img_url: {URL}\nitems:\n{items}"
    )
    path = tmp_path / "job.yaml"
    path.write_text(text)
    return path


async def run_cli(
    guard: SecretGuard, tmp_path: Path, args: Sequence[str], env: dict[str, str] | None = None
) -> Result:
    """Run the CLI in process in a clean environment (no inherited credentials, HOME in tmp_path)."""
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("HUAWEICLOUD_", "BATCHTHUMB_")) and "proxy" not in k.lower()
    }
    clean.update(HOME=str(tmp_path / "home"), **(env or {}))
    done = await cli(*args, env=clean, cwd=tmp_path)  # in process
    result = Result(done.code, done.out, done.err)
    guard.output("stdout", result.stdout)
    guard.output("stderr", result.stderr)
    return result


def run_args(job: Path, *extra: str) -> list[str]:
    return ["run", str(job), "--no-progress", "--log-json", "--log-file", "run.log", *extra]


AKSK = "auth:\n  aksk: {{iam_endpoint: {url}, project: cn-north-4}}\n"
IAM = "auth:\n  iam: {{endpoint: {url}, domain: acme, user: bot, password_env: BT_PW, project: cn-north-4}}\n"


async def test_iam_password_run_fetches_one_token_and_never_shows_secrets(
    sandbox: tuple[Sandbox, str], tmp_path: Path, guard: SecretGuard
) -> None:
    """A 6-plan IAM run exits 0 with one token; password and token appear in no output."""
    box, url = sandbox
    job = write_job(tmp_path, url, IAM.format(url=url))
    result = await run_cli(guard, tmp_path, run_args(job), {"BT_PW": PASSWORD})
    guard.watch(PASSWORD, *box.store.tokens)
    assert result.code == 0, result.stderr
    assert box.stats.tokens_issued == 1
    assert sum(box.stats.applied.values()) == len(PLANS)


async def test_wrong_password_exits_3_with_a_clear_message(
    sandbox: tuple[Sandbox, str], tmp_path: Path, guard: SecretGuard
) -> None:
    """A refused password ends the run before any PUT: exit 3, one line, no password."""
    box, url = sandbox
    wrong = "wrong-SENTINEL-cli-2a"
    guard.watch(wrong, PASSWORD)
    job = write_job(tmp_path, url, IAM.format(url=url))
    result = await run_cli(guard, tmp_path, run_args(job), {"BT_PW": wrong})
    assert result.code == 3
    assert result.stderr.splitlines()[-1].startswith(
        f"batchthumb: IAM at {url} refused a token for IAM user bot of account acme"
    )
    assert "Traceback" not in result.stderr
    assert box.stats.puts == 0


async def test_aksk_run_from_the_sdk_variables_is_verified_by_the_sandbox(
    sandbox: tuple[Sandbox, str], tmp_path: Path, guard: SecretGuard
) -> None:
    """auth: aksk signs every PUT with HUAWEICLOUD_SDK_AK/SK, the X-Project-Id the sandbox
    requires looked up once from its IAM by region; the SK is never shown."""
    box, url = sandbox
    guard.watch(SK)
    job = write_job(tmp_path, url, AKSK.format(url=url))
    env = {"HUAWEICLOUD_SDK_AK": AK, "HUAWEICLOUD_SDK_SK": SK}
    result = await run_cli(guard, tmp_path, run_args(job), env)
    assert result.code == 0, result.stderr
    assert sum(box.stats.applied.values()) == len(PLANS)
    assert box.stats.project_lookups == 1
    assert box.stats.status_counts[401] == 0


async def test_aksk_run_whose_project_lookup_is_refused_exits_3_saying_so(
    sandbox: tuple[Sandbox, str], tmp_path: Path, guard: SecretGuard
) -> None:
    """IAM refusing the key pair at the X-Project-Id lookup: exit 3, a message naming the
    lookup, no PUT sent."""
    box, url = sandbox
    wrong = "sk-SENTINEL-wrong-77"
    guard.watch(SK, wrong)
    job = write_job(tmp_path, url, AKSK.format(url=url))
    env = {"HUAWEICLOUD_SDK_AK": AK, "HUAWEICLOUD_SDK_SK": wrong}
    result = await run_cli(guard, tmp_path, run_args(job), env)
    assert result.code == 3
    last = result.stderr.splitlines()[-1]
    assert last.startswith("batchthumb: cannot look up the IAM project id of cn-north-4"), last
    assert "Traceback" not in result.stderr
    assert box.stats.project_lookups == 1
    assert box.stats.puts == 0


def write_profile(tmp_path: Path, mode: int, iam_endpoint: str = "") -> Path:
    path = tmp_path / "home" / ".huaweicloud" / "credentials"
    path.parent.mkdir(parents=True)
    path.write_text(f"[basic]\nak = {AK}\nsk = {SK}\niam_endpoint = {iam_endpoint}\n")
    path.chmod(mode)
    return path


async def test_sdk_credentials_file_in_home_is_used(
    sandbox: tuple[Sandbox, str], tmp_path: Path, guard: SecretGuard
) -> None:
    """Without the variables, ~/.huaweicloud/credentials (mode 0600) supplies the key pair
    and the IAM endpoint that the project id is looked up at."""
    box, url = sandbox
    guard.watch(SK)
    guard.holds_secrets(write_profile(tmp_path, 0o600, iam_endpoint=url))
    job = write_job(tmp_path, url, "auth: {aksk: {project: cn-north-4}}\n")
    result = await run_cli(guard, tmp_path, run_args(job))
    assert result.code == 0, result.stderr
    assert sum(box.stats.applied.values()) == len(PLANS)
    assert box.stats.project_lookups == 1


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
async def test_credentials_file_readable_by_others_is_refused(
    sandbox: tuple[Sandbox, str], tmp_path: Path, guard: SecretGuard
) -> None:
    """A 0644 credentials file stops the run with exit 2 and the chmod to fix it."""
    box, url = sandbox
    guard.watch(SK)
    profile = guard.holds_secrets(write_profile(tmp_path, 0o644))
    job = write_job(tmp_path, url, "auth: {aksk: {}}\n")
    result = await run_cli(guard, tmp_path, run_args(job))
    assert result.code == 2
    assert f"run chmod 600 {profile}" in result.stderr
    assert box.stats.requests == 0


async def test_auth_file_flag_wins_over_the_job(
    sandbox: tuple[Sandbox, str], tmp_path: Path, guard: SecretGuard
) -> None:
    """--auth FILE replaces the job's auth: section (here a token variable that is unset)."""
    box, url = sandbox
    guard.watch(PASSWORD)
    job = write_job(tmp_path, url, "auth: {token_env: UNSET_TOKEN}\n")
    auth = tmp_path / "auth.yaml"
    auth.write_text(IAM.format(url=url))
    result = await run_cli(
        guard, tmp_path, [*run_args(job), "--auth", str(auth)], {"BT_PW": PASSWORD}
    )
    guard.watch(*box.store.tokens)
    assert result.code == 0, result.stderr
    assert box.stats.tokens_issued == 1


async def test_literal_password_in_the_job_is_refused(tmp_path: Path, guard: SecretGuard) -> None:
    """A job with a literal password exits 2, says where it belongs, and never prints it."""
    guard.watch(PASSWORD)
    auth = f"auth:\n  iam: {{domain: acme, user: bot, password: {PASSWORD}}}\n"
    job = guard.holds_secrets(write_job(tmp_path, "https://example.com", auth))
    result = await run_cli(guard, tmp_path, run_args(job))
    assert result.code == 2
    assert "auth.iam.password: secrets never go in a job file" in result.stderr


async def test_missing_password_variable_is_named(tmp_path: Path, guard: SecretGuard) -> None:
    """An unset password_env variable exits 2 naming it; nothing is sent."""
    guard.watch(PASSWORD)
    job = write_job(tmp_path, "https://example.com", IAM.format(url="https://iam.example.com"))
    result = await run_cli(guard, tmp_path, run_args(job))
    assert result.code == 2
    assert "environment variable BT_PW (password_env) is not set" in result.stderr


async def test_plain_http_to_a_remote_host_needs_insecure(
    tmp_path: Path, guard: SecretGuard
) -> None:
    """http:// to a non-loopback host is refused; --insecure lets it through with a warning."""
    guard.watch(PASSWORD)
    job = write_job(tmp_path, "http://192.0.2.10:8080", "")
    refused = await run_cli(guard, tmp_path, run_args(job))
    assert refused.code == 2
    assert "is plain http" in refused.stderr
    # With --insecure it gets past the check and stops at the missing token: nothing is sent.
    allowed = await run_cli(guard, tmp_path, [*run_args(job), "--insecure"])
    assert allowed.code == 2
    assert allowed.stderr.startswith("warning: --insecure: the endpoint http://192.0.2.10:8080")
    assert "no credentials: set BATCHTHUMB_TOKEN" in allowed.stderr


async def test_dry_run_says_where_secrets_come_from_without_reading_them(
    tmp_path: Path, guard: SecretGuard
) -> None:
    """--dry-run names the auth way and its variable, and shows no secret."""
    guard.watch(PASSWORD)
    job = write_job(tmp_path, "https://example.com", IAM.format(url="https://iam.example.com"))
    # --no-check: this job's IAM endpoint is not a real one to compare with.
    args = [*run_args(job), "--dry-run", "--no-check"]
    result = await run_cli(guard, tmp_path, args, {"BT_PW": PASSWORD})
    assert result.code == 0
    assert "credentials: IAM user bot of account acme, password from $BT_PW" in result.stdout
