"""Credentials: IAM tokens and AK/SK signing, in units and over loopback against the sandbox."""

from __future__ import annotations

import dataclasses
import io
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import pytest

from batchthumb import signing
from batchthumb.auth import (
    AkSk,
    IamIdentity,
    IamPassword,
    IssuedToken,
    ProjectSource,
    Redactor,
    StaticToken,
    check_header_value,
    describe_auth,
    load_credentials,
    mask_secrets,
    read_secret_file,
)
from batchthumb.client import (
    IamProjects,
    IamTokens,
    PlanApi,
    check_url,
    is_loopback,
    make_transport,
    open_api,
)
from batchthumb.console import StderrConsole
from batchthumb.errors import CredentialsError, RunAborted, UsageError
from batchthumb.jobrun import plan_run, run_plan
from batchthumb.model import AkSkAuth, IamAuth, Item, Job, RunSettings, TokenAuth, Verdict
from batchthumb.sandbox import Fault, IamUser, Sandbox, SandboxConfig
from batchthumb.sandbox.undocumented import IAM_PROJECT_ID
from batchthumb.sending import Stop
from batchthumb.session import Connection
from tests.imagedata import png

if TYPE_CHECKING:
    from conftest import SecretGuard

pytestmark = pytest.mark.anyio

P = "919bb351ef424e2daaf3dd80c179fae9"
URL = f"/v1/upload/{P}/202506/1749730526922581391.png"
PASSWORD = "pw-SENTINEL-7f3a91c2e4"
AK = "AKSENTINEL0000000001"
SK = "sk-SENTINEL-b8d2e6f04a1c93e7d5"
SECURITY_TOKEN = "st-SENTINEL-4c1e9a7b"
T0 = 1_800_000_000.0
PNG = png()


def plan_id(n: int) -> str:
    return f"{n:032x}"


class FakeClock:
    """A clock tests move by hand; ``wall`` is the same instant as epoch seconds."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t

    def wall(self) -> float:
        return T0 + self.t


def never_called() -> IamTokens:
    return IamTokens(make_transport())


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sandbox(clock: FakeClock) -> Sandbox:
    config = SandboxConfig(
        iam_users=(IamUser("acme", "bot", PASSWORD, "cn-north-4", token_ttl=3600.0),),
        aksk={AK: SK},
    )
    box = Sandbox(config, wall_clock=clock.wall)
    for n in range(12):
        box.add_plan(P, name=f"Plan {n}", plan_id=plan_id(n))
    return box


@pytest.fixture
async def base_url(sandbox: Sandbox) -> AsyncIterator[str]:
    async with sandbox.serve() as url:
        yield url


def iam(base_url: str, clock: FakeClock, password: str = PASSWORD) -> IamPassword:
    identity = IamIdentity(base_url, "acme", "bot", "cn-north-4")
    return IamPassword(identity, password, issue=IamTokens(make_transport()), clock=clock)


def watch_issued(guard: SecretGuard, sandbox: Sandbox) -> None:
    guard.watch(*sandbox.store.tokens)


async def put(api: PlanApi, n: int) -> Verdict:
    return (await api.set_thumbnail(P, plan_id(n), URL)).verdict


# -- units ---------------------------------------------------------------------------------


async def test_redactor_masks_secrets_added_after_it_was_made() -> None:
    """A redactor reading a live source masks a token issued after it was created."""
    secrets = ["first-secret"]
    redact = Redactor(lambda: secrets)
    assert redact("a first-secret b") == "a *** b"
    secrets.append("renewed-token")
    assert redact("x renewed-token first-secret") == "x *** ***"


def test_redactor_masks_a_secret_containing_another_whole() -> None:
    """Longest first: a secret that contains a shorter one is masked whole, not in part."""
    redact = Redactor(["tok-abc", "tok-abc-renewed-9f"])
    assert redact("a tok-abc-renewed-9f b tok-abc") == "a *** b ***"


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
@pytest.mark.parametrize("mode", [0o640, 0o620, 0o604, 0o660])
def test_a_secret_file_readable_or_writable_by_group_or_others_is_refused(
    tmp_path: Path, mode: int
) -> None:
    """Any group or other permission bit on a secrets file refuses it, with the chmod to run."""
    path = tmp_path / "token"
    path.write_text("t" * 20)
    path.chmod(mode)
    with pytest.raises(CredentialsError, match="run chmod 600"):
        read_secret_file(path)
    path.chmod(0o600)
    assert read_secret_file(path) == "t" * 20


async def test_aksk_signs_each_attempt_with_a_fresh_date(guard: SecretGuard) -> None:
    """Each authorize call signs with the current X-Sdk-Date, verifiable with the SK."""
    guard.watch(SK, SECURITY_TOKEN)
    moments = iter([datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC), datetime(2026, 1, 1, 12, 0, 9)])
    creds = AkSk(AK, SK, project_id="p1", security_token=SECURITY_TOKEN, now=lambda: next(moments))
    url = f"https://example.com/v3/plan/{P}/management/{plan_id(1)}/img"
    signed = []
    for _ in range(2):
        headers = {"Content-Type": "application/json"}
        await creds.authorize("PUT", url, headers, b"{}")
        signed.append(headers)
        assert headers["X-Project-Id"] == "p1"
        assert "x-security-token" in headers["Authorization"]
        result = signing.verify_request(
            method="PUT",
            path=url.removeprefix("https://example.com"),
            query="",
            headers=headers,
            body=b"{}",
            secret_for={AK: SK},
            now=datetime(2026, 1, 1, 12, 0, 5, tzinfo=UTC),
        )
        assert result.ok, result.detail
    assert signed[0]["X-Sdk-Date"] == "20260101T120000Z"
    assert signed[1]["X-Sdk-Date"] == "20260101T120009Z"
    guard.output("repr", repr(creds))


def test_missing_env_var_is_named(guard: SecretGuard) -> None:
    """A missing password variable is a CredentialsError naming it; nothing is sent."""
    guard.watch(PASSWORD)
    config = IamAuth(domain="acme", user="bot", password_env="BT_TEST_PASSWORD")
    with pytest.raises(CredentialsError, match="BT_TEST_PASSWORD") as info:
        load_credentials(config, issue=never_called(), region="cn-north-4", environ={})
    guard.output("error", str(info.value))


def test_iam_endpoint_and_project_default_to_the_region() -> None:
    """Without endpoint and project, IAM is the region's and so is the project."""
    config = IamAuth(domain="acme", user="bot", password_env="PW")
    creds = load_credentials(
        config, issue=never_called(), region="cn-east-3", environ={"PW": PASSWORD}
    )
    assert isinstance(creds, IamPassword)
    assert creds.identity == IamIdentity(
        "https://iam.cn-east-3.myhuaweicloud.com", "acme", "bot", "cn-east-3"
    )
    assert PASSWORD not in repr(creds)


def test_aksk_comes_from_the_sdk_environment_variables() -> None:
    """aksk: {} reads the SDK's variables, project id and security token included."""
    environ = {
        "HUAWEICLOUD_SDK_AK": AK,
        "HUAWEICLOUD_SDK_SK": SK,
        "HUAWEICLOUD_SDK_PROJECT_ID": "proj",
        "HUAWEICLOUD_SDK_SECURITY_TOKEN": SECURITY_TOKEN,
    }
    creds = load_credentials(AkSkAuth(), issue=never_called(), environ=environ)
    assert isinstance(creds, AkSk)
    assert (creds.ak, creds.project_id, set(creds.secrets)) == (AK, "proj", {SK, SECURITY_TOKEN})


def write_profile(path: Path, mode: int) -> Path:
    path.write_text(f"[basic]\nak = {AK}\nsk = {SK}\nproject_id = proj\n")
    path.chmod(mode)
    return path


def test_credentials_file_is_read_when_the_variables_are_absent(
    tmp_path: Path, guard: SecretGuard
) -> None:
    """The SDK profile file named by HUAWEICLOUD_SDK_CREDENTIALS_FILE supplies the key pair."""
    guard.watch(SK)
    path = guard.holds_secrets(write_profile(tmp_path / "credentials", 0o600))
    environ = {"HUAWEICLOUD_SDK_CREDENTIALS_FILE": str(path)}
    creds = load_credentials(AkSkAuth(), issue=never_called(), environ=environ)
    assert isinstance(creds, AkSk)
    assert (creds.ak, creds.project_id, creds.secrets) == (AK, "proj", (SK,))


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
@pytest.mark.parametrize("kind", ["credentials", "token"])
def test_a_secret_file_others_can_read_is_refused(
    tmp_path: Path, guard: SecretGuard, kind: str
) -> None:
    """A credentials or token file with mode 0644 is refused, saying how to fix it."""
    guard.watch(SK)
    path = guard.holds_secrets(write_profile(tmp_path / kind, 0o644))
    config = AkSkAuth(credentials_file=path) if kind == "credentials" else TokenAuth(file=path)
    with pytest.raises(CredentialsError) as info:
        load_credentials(config, issue=never_called(), environ={})
    assert str(info.value) == (
        f"{path}: other users can read this file (mode 0644); "
        f"secrets must be private: run chmod 600 {path}"
    )
    guard.output("error", str(info.value))


def test_plain_http_is_refused_except_to_loopback() -> None:
    """http:// to a remote host needs --insecure (then warns); loopback is always fine."""
    assert check_url("http://127.0.0.1:8080", insecure=False) is None
    assert check_url("http://[::1]:8080", insecure=False) is None
    assert check_url("https://iam.cn-north-4.myhuaweicloud.com", insecure=False) is None
    with pytest.raises(UsageError, match="plain http"):
        check_url("http://10.0.0.5:8080", insecure=False)
    warning = check_url("http://10.0.0.5:8080", insecure=True)
    assert warning is not None and warning.startswith("--insecure: the endpoint")


def test_proxy_is_resolved_from_the_environment_honouring_no_proxy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """HTTPS_PROXY applies, except to NO_PROXY hosts and loopback."""
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.corp:3128")
    monkeypatch.setenv("NO_PROXY", "internal.corp")
    transport = make_transport()
    assert transport.proxy_for("https://projectman-ext.cn-north-4.myhuaweicloud.com") == (
        "http://proxy.corp:3128"
    )
    assert transport.proxy_for("https://api.internal.corp/x") is None
    assert transport.proxy_for("http://127.0.0.1:8080") is None
    assert is_loopback("localhost")


def test_an_unreadable_ca_bundle_is_a_usage_error(tmp_path: Path) -> None:
    """--ca-bundle naming a missing file fails before anything is sent."""
    with pytest.raises(UsageError, match="cannot load it"):
        make_transport(ca_bundle=tmp_path / "missing.pem")


async def test_static_token_cannot_be_renewed() -> None:
    """A pasted token has nothing to renew with."""
    assert await StaticToken("t" * 20).renew({"X-Auth-Token": "t" * 20}) is False


# -- IAM over loopback ---------------------------------------------------------------------


async def test_iam_token_is_fetched_once_for_a_whole_run(
    sandbox: Sandbox, base_url: str, clock: FakeClock, tmp_path: Path, guard: SecretGuard
) -> None:
    """A 12-item run with 4 workers asks IAM for one token, and logs and report hide it."""
    guard.watch(PASSWORD)
    creds = iam(base_url, clock)
    await creds.prepare()
    items = tuple(Item(P, plan_id(n), URL) for n in range(12))
    settings = RunSettings(concurrency=4, progress=False, backoff=0.0)
    job = Job(path=tmp_path / "job.yaml", settings=settings, items=items)
    report = tmp_path / "report.jsonl"
    log, stderr = io.StringIO(), io.StringIO()
    summary = await run_plan(
        plan_run(job, settings, report),
        settings=settings,
        report=report,
        connection=Connection(base_url, creds, make_transport()),
        stop=Stop(),
        console=StderrConsole(stderr),
        log=log,
    )
    watch_issued(guard, sandbox)
    guard.output("log", log.getvalue())
    guard.output("stderr", stderr.getvalue())
    assert summary.tally.succeeded == 12
    assert sandbox.stats.tokens_issued == 1


async def test_token_is_renewed_before_it_expires(
    sandbox: Sandbox, base_url: str, clock: FakeClock, guard: SecretGuard
) -> None:
    """Within the renewal margin (a tenth of a 1 h token), the next request gets a new token."""
    guard.watch(PASSWORD)
    creds = iam(base_url, clock)
    await creds.prepare()
    async with open_api(base_url, creds, concurrency=1, timeout=10) as api:
        assert await put(api, 1) is Verdict.OK
        clock.t = 3600 - 360 - 1  # just outside the margin: the same token
        assert await put(api, 2) is Verdict.OK
        assert sandbox.stats.tokens_issued == 1
        clock.t = 3600 - 360  # inside it: renewed before sending
        assert await put(api, 3) is Verdict.OK
    watch_issued(guard, sandbox)
    assert sandbox.stats.tokens_issued == 2
    assert sandbox.stats.status_counts[401] == 0


async def test_many_workers_hitting_a_stale_token_cause_one_renewal(
    sandbox: Sandbox, base_url: str, clock: FakeClock, guard: SecretGuard
) -> None:
    """Four requests rejected at once as 'token must be updated' share one renewal, then pass."""
    guard.watch(PASSWORD)
    creds = iam(base_url, clock)
    await creds.prepare()
    sandbox.faults.script(Fault.expire_token(), times=4)
    results: list[Verdict] = []
    async with open_api(base_url, creds, concurrency=4, timeout=10) as api:
        sandbox.gate.close()

        async def send(n: int) -> None:
            results.append(await put(api, n))

        async with anyio.create_task_group() as tasks:
            for n in range(4):
                tasks.start_soon(send, n)
            with anyio.fail_after(10):
                await sandbox.wait_until(lambda stats: stats.waiting_at_gate == 4)
            sandbox.gate.open()
    watch_issued(guard, sandbox)
    assert results == [Verdict.OK] * 4
    assert sandbox.stats.status_counts[401] == 4
    assert sandbox.stats.tokens_issued == 2
    assert creds.generation == 2


async def test_a_wrong_password_aborts_before_the_run_without_showing_it(
    sandbox: Sandbox, base_url: str, clock: FakeClock, guard: SecretGuard
) -> None:
    """prepare() raises RunAborted (exit 3) naming the user; the password is not in it."""
    wrong = "wrong-SENTINEL-0d9c"
    guard.watch(wrong, PASSWORD)
    with pytest.raises(RunAborted) as info:
        await iam(base_url, clock, wrong).prepare()
    guard.output("error", str(info.value))
    assert "refused a token for IAM user bot of account acme" in str(info.value)
    assert "IAM.0004" in str(info.value)
    assert info.value.exit_code == 3
    assert sandbox.stats.puts == 0


async def test_a_failed_renewal_rejects_the_request(
    sandbox: Sandbox, base_url: str, clock: FakeClock, guard: SecretGuard
) -> None:
    """When the token goes stale and IAM then refuses, the 401 stands, saying why."""
    guard.watch(PASSWORD)
    creds = iam(base_url, clock)
    await creds.prepare()
    # The password changed since the run began: IAM now refuses it.
    sandbox.config = dataclasses.replace(sandbox.config, iam_users=())
    sandbox.faults.script(Fault.expire_token())
    async with open_api(base_url, creds, concurrency=1, timeout=10) as api:
        attempt = await api.set_thumbnail(P, plan_id(1), URL)
    watch_issued(guard, sandbox)
    guard.output("attempt", repr(attempt))
    assert attempt.verdict is Verdict.REJECTED
    assert attempt.error is not None and "renewing the token failed" in attempt.error


# -- AK/SK over loopback --------------------------------------------------------------------


def aksk(clock: FakeClock, skew: float = 0.0, *, project_id: str | None = IAM_PROJECT_ID) -> AkSk:
    """A key pair whose X-Project-Id is configured (the IAM lookup has its own tests)."""
    now = lambda: datetime.fromtimestamp(clock.wall() + skew, UTC)  # noqa: E731
    return AkSk(AK, SK, project_id=project_id, now=now)


async def test_aksk_signed_put_is_accepted_and_retries_are_re_signed(
    sandbox: Sandbox, base_url: str, clock: FakeClock, guard: SecretGuard
) -> None:
    """A signed PUT passes the sandbox's verification, also when retried 14 minutes later."""
    guard.watch(SK)
    async with open_api(base_url, aksk(clock), concurrency=1, timeout=10) as api:
        assert await put(api, 1) is Verdict.OK
        clock.t += 14 * 60  # a stale X-Sdk-Date from the first attempt would now be refused
        assert await put(api, 1) is Verdict.OK
    assert sandbox.stats.applied[(P, plan_id(1))] == 2
    assert sandbox.stats.status_counts[401] == 0


async def test_aksk_signed_multipart_upload_is_accepted(
    sandbox: Sandbox, base_url: str, clock: FakeClock, guard: SecretGuard
) -> None:
    """A multipart upload is signed with UNSIGNED-PAYLOAD and stored by the sandbox."""
    guard.watch(SK)
    boundary = "batchthumb-test-boundary"
    body = (
        (
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="file"; filename="a.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + PNG
        + f"\r\n--{boundary}--\r\n".encode()
    )
    async with open_api(base_url, aksk(clock), concurrency=1, timeout=10) as api:
        reply = await api.request(
            "POST",
            f"/v2/{P}/img",
            body=body,
            content_type=f"multipart/form-data; boundary={boundary}",
            expect="img_url",
        )
    assert reply.attempt.verdict is Verdict.OK
    assert sandbox.image_bytes(reply.body["img_url"]) == PNG


async def test_a_skewed_clock_is_rejected_not_renewed(
    sandbox: Sandbox, base_url: str, clock: FakeClock, guard: SecretGuard
) -> None:
    """A signature dated 20 minutes off is refused (401 APIGW.0303) and not retried."""
    guard.watch(SK)
    skewed = aksk(clock, skew=-timedelta(minutes=20).total_seconds())
    async with open_api(base_url, skewed, concurrency=1, timeout=10) as api:
        attempt = await api.set_thumbnail(P, plan_id(1), URL)
    guard.output("attempt", repr(attempt))
    assert (attempt.verdict, attempt.http_status, attempt.error_code) == (
        Verdict.REJECTED,
        401,
        "APIGW.0303",
    )
    assert sandbox.stats.requests == 1


async def test_a_bad_secret_key_is_rejected(
    sandbox: Sandbox, base_url: str, clock: FakeClock, guard: SecretGuard
) -> None:
    """A request signed with the wrong SK fails the sandbox's signature check."""
    wrong = "wrong-sk-SENTINEL-51e0"
    guard.watch(wrong, SK)
    creds = AkSk(AK, wrong, now=lambda: datetime.fromtimestamp(clock.wall(), UTC))
    async with open_api(base_url, creds, concurrency=1, timeout=10) as api:
        attempt = await api.set_thumbnail(P, plan_id(1), URL)
    guard.output("attempt", repr(attempt))
    assert (attempt.http_status, attempt.error_code) == (401, "APIGW.0303")


# -- X-Project-Id, looked up from IAM as the SDK does ---------------------------------------


def looked_up(clock: FakeClock, base_url: str, region: str = "cn-north-4") -> AkSk:
    """A key pair without a project id: prepare() asks the sandbox's IAM for it."""
    source = ProjectSource(base_url, region, IamProjects(make_transport(), timeout=10))
    now = lambda: datetime.fromtimestamp(clock.wall(), UTC)  # noqa: E731
    return AkSk(AK, SK, project_source=source, now=now)


async def test_the_iam_project_id_is_looked_up_once_and_sent_on_every_call(
    sandbox: Sandbox, base_url: str, clock: FakeClock, guard: SecretGuard
) -> None:
    """Without a configured id, prepare() finds it by region once; every call then carries it."""
    guard.watch(SK)
    creds = looked_up(clock, base_url)
    with anyio.fail_after(30):
        await creds.prepare()
        await creds.prepare()  # already known: IAM is not asked again
        async with open_api(base_url, creds, concurrency=1, timeout=10) as api:
            assert await put(api, 1) is Verdict.OK
            assert await put(api, 2) is Verdict.OK
    assert creds.project_id == IAM_PROJECT_ID
    assert sandbox.stats.project_lookups == 1
    assert sandbox.stats.applied[(P, plan_id(1))] == sandbox.stats.applied[(P, plan_id(2))] == 1


async def test_a_signed_call_without_x_project_id_is_refused_by_default(
    sandbox: Sandbox, base_url: str, clock: FakeClock, guard: SecretGuard
) -> None:
    """The sandbox, like an SDK-shaped gateway, refuses AK/SK calls lacking X-Project-Id."""
    guard.watch(SK)
    with anyio.fail_after(30):
        async with open_api(
            base_url, aksk(clock, project_id=None), concurrency=1, timeout=10
        ) as api:
            attempt = await api.set_thumbnail(P, plan_id(1), URL)
    assert (attempt.verdict, attempt.http_status, attempt.error_code) == (
        Verdict.REJECTED,
        401,
        "APIGW.0301",
    )
    assert "X-Project-Id" in (attempt.error or "")
    assert sandbox.stats.applied_total == 0


@pytest.mark.parametrize(
    ("projects", "message"),
    [
        ({}, "has no project named cn-north-4"),
        (
            {"cn-north-4": ("a" * 32, "b" * 32)},
            f"has 2 projects named cn-north-4 ({'a' * 32}, {'b' * 32})",
        ),
    ],
    ids=["none", "several"],
)
async def test_a_lookup_matching_zero_or_several_projects_is_an_error_saying_so(
    projects: dict[str, tuple[str, ...]], message: str, clock: FakeClock
) -> None:
    """Zero or several IAM projects of the region's name: a CredentialsError naming them."""
    box = Sandbox(SandboxConfig(aksk={AK: SK}, iam_projects=projects), wall_clock=clock.wall)
    async with box.serve() as url:
        with anyio.fail_after(30), pytest.raises(CredentialsError) as caught:
            await looked_up(clock, url).prepare()
    assert message in str(caught.value)
    assert "cannot look up the IAM project id of cn-north-4" in str(caught.value)
    assert "HUAWEICLOUD_SDK_PROJECT_ID" in str(caught.value)


async def test_a_lookup_with_refused_keys_aborts_and_says_it_was_the_lookup(
    clock: FakeClock, guard: SecretGuard
) -> None:
    """IAM refusing the key pair during the lookup is RunAborted (exit 3), the SK never shown."""
    guard.watch(SK)
    box = Sandbox(SandboxConfig(aksk={"OTHERAK": SK}), wall_clock=clock.wall)
    async with box.serve() as url:
        with anyio.fail_after(30), pytest.raises(RunAborted) as caught:
            await looked_up(clock, url).prepare()
    guard.output("error", str(caught.value))
    assert caught.value.exit_code == 3
    assert "cannot look up the IAM project id of cn-north-4" in str(caught.value)
    assert "HTTP 401" in str(caught.value) and "check the access key pair" in str(caught.value)


def test_aksk_without_a_project_id_or_a_region_is_refused_before_sending() -> None:
    """No X-Project-Id and no region to look it up by: a CredentialsError saying both ways."""
    env = {"HUAWEICLOUD_SDK_AK": AK, "HUAWEICLOUD_SDK_SK": SK}
    lookup = IamProjects(make_transport())
    with pytest.raises(CredentialsError, match=r"HUAWEICLOUD_SDK_PROJECT_ID.*region"):
        load_credentials(AkSkAuth(), issue=never_called(), lookup=lookup, environ=env)


def test_aksk_lookup_endpoint_follows_config_then_sdk_variable_then_region() -> None:
    """The IAM endpoint for the lookup: auth.aksk.iam_endpoint, $HUAWEICLOUD_SDK_IAM_ENDPOINT,
    then the region's, less a final "/"; the project name: auth.aksk.project, then the region."""
    env = {"HUAWEICLOUD_SDK_AK": AK, "HUAWEICLOUD_SDK_SK": SK}
    lookup = IamProjects(make_transport())

    def source(config: AkSkAuth, environ: dict[str, str]) -> ProjectSource | None:
        creds = load_credentials(
            config, issue=never_called(), lookup=lookup, region="cn-east-3", environ=environ
        )
        assert isinstance(creds, AkSk)
        return creds.project_source

    regional = source(AkSkAuth(), env)
    assert regional is not None
    assert (regional.endpoint, regional.name) == (
        "https://iam.cn-east-3.myhuaweicloud.com",
        "cn-east-3",
    )
    from_env = source(AkSkAuth(), {**env, "HUAWEICLOUD_SDK_IAM_ENDPOINT": "https://iam.example/X/"})
    assert from_env is not None and from_env.endpoint == "https://iam.example/X"  # slash only
    configured = source(
        AkSkAuth(iam_endpoint="https://iam.cfg", project="cn-north-4"),
        {**env, "HUAWEICLOUD_SDK_IAM_ENDPOINT": "https://iam.example"},
    )
    assert configured is not None
    assert (configured.endpoint, configured.name) == ("https://iam.cfg", "cn-north-4")
    assert source(AkSkAuth(), {**env, "HUAWEICLOUD_SDK_PROJECT_ID": "p1"}) is None


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("APIGW.0301", "Incorrect IAM authentication information: decrypt token fail"),
        ("PM.10001002", "illegal token"),
    ],
)
async def test_a_stale_token_code_alone_causes_one_renewal(
    sandbox: Sandbox, base_url: str, clock: FakeClock, guard: SecretGuard, code: str, message: str
) -> None:
    """A 401 with APIGW.0301 or PM.10001002 renews the token once even when its message does
    not say "token must be updated", and the request then succeeds."""
    guard.watch(PASSWORD)
    creds = iam(base_url, clock)
    sandbox.faults.script(Fault.status(401, code, message))
    with anyio.fail_after(30):
        await creds.prepare()
        async with open_api(base_url, creds, concurrency=1, timeout=10) as api:
            assert await put(api, 1) is Verdict.OK
    watch_issued(guard, sandbox)
    assert sandbox.stats.tokens_issued == 2
    assert sandbox.stats.applied[(P, plan_id(1))] == 1


async def test_iam_must_answer_201_for_a_token(guard: SecretGuard) -> None:
    """A token answer with another 2xx than IAM's documented 201 is refused (RunAborted)."""
    from aiohttp import web

    guard.watch(PASSWORD)

    async def tokens(request: web.Request) -> web.Response:
        body = {"token": {"expires_at": "2999-01-01T00:00:00.000000Z"}}
        return web.json_response(body, status=200, headers={"X-Subject-Token": "t" * 40})

    app = web.Application()
    app.router.add_post("/v3/auth/tokens", tokens)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        identity = IamIdentity(f"http://127.0.0.1:{port}", "acme", "bot", "cn-north-4")
        with anyio.fail_after(30), pytest.raises(RunAborted, match="HTTP 200") as caught:
            await IamTokens(make_transport(), timeout=10)(identity, PASSWORD)
    finally:
        await runner.cleanup()
    guard.output("error", str(caught.value))


class RenewedMidRun:
    """A token source whose second token only exists once the run is under way."""

    def __init__(self) -> None:
        self.tokens = ["tok-SENTINEL-first-000001"]
        self.calls = 0

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(self.tokens)

    async def prepare(self) -> None:
        pass

    async def authorize(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None
    ) -> None:
        self.calls += 1
        if self.calls == 3:
            self.tokens.append(RENEWED)
        headers["X-Auth-Token"] = self.tokens[-1]

    async def renew(self, rejected: object) -> bool:
        return False


RENEWED = "tok-SENTINEL-renewed-7c0d2e"


async def test_a_token_renewed_mid_run_is_masked_in_the_report_and_the_logs(
    tmp_path: Path, guard: SecretGuard
) -> None:
    """The report and --log-json read the secrets at each use: a token that appeared after the
    run started, echoed in an error message, is masked in both."""
    guard.watch(RENEWED)
    box = Sandbox(SandboxConfig(autocreate=True))
    box.faults.script(Fault.status(400, "PM.02175006", f"bad {RENEWED} here"), plan_id=plan_id(6))
    items = tuple(Item(P, plan_id(n), URL) for n in range(8))
    settings = RunSettings(concurrency=1, progress=False, backoff=0.0)
    job = Job(path=tmp_path / "job.yaml", settings=settings, items=items)
    report = tmp_path / "report.jsonl"
    log, stderr = io.StringIO(), io.StringIO()
    async with box.serve() as url:
        with anyio.fail_after(60):
            summary = await run_plan(
                plan_run(job, settings, report),
                settings=settings,
                report=report,
                connection=Connection(url, RenewedMidRun(), make_transport()),
                stop=Stop(),
                console=StderrConsole(stderr),
                log=log,
            )
    guard.output("log", log.getvalue())
    guard.output("stderr", stderr.getvalue())
    assert summary.tally.failed == 1
    assert "bad *** here" in report.read_text()
    assert "bad *** here" in log.getvalue()


@pytest.mark.parametrize(
    ("source", "bad", "expected"),
    [
        (
            "env",
            "tok-SENTINEL-env\nX-Evil: 1",
            "the token in $BATCHTHUMB_TOKEN contains a line break (U+000A at character 17)",
        ),
        (
            "file",
            "tok-SENTINEL-file\x1b[31m",
            "contains a control or non-ASCII character (U+001B at character 18)",
        ),
        (
            "security token",
            "st-SENTINEL\rx",
            "the access key from the environment: security_token contains a line break (U+000D at character 12)",
        ),
        (
            "ak",
            "AK SENTINEL",
            "the access key from the environment: ak contains a space (U+0020 at character 3)",
        ),
    ],
)
def test_a_secret_that_cannot_travel_in_a_header_is_refused_at_load(
    tmp_path: Path, guard: SecretGuard, source: str, bad: str, expected: str
) -> None:
    """A token, AK or security token with a CR, LF, space or control character is refused
    when loaded, saying which and where, without quoting it."""
    guard.watch(bad.split("\n")[0].split("\r")[0].split("\x1b")[0], bad)
    environ = {"HUAWEICLOUD_SDK_AK": AK, "HUAWEICLOUD_SDK_SK": SK}
    config: TokenAuth | AkSkAuth | None = None
    if source == "env":
        environ["BATCHTHUMB_TOKEN"] = bad
    elif source == "file":
        path = guard.holds_secrets(tmp_path / "token")
        path.write_text(bad + "\n")
        path.chmod(0o600)
        config = TokenAuth(file=path)
    elif source == "security token":
        environ["HUAWEICLOUD_SDK_SECURITY_TOKEN"] = bad
        config = AkSkAuth()
    else:
        environ["HUAWEICLOUD_SDK_AK"] = bad
        config = AkSkAuth()
    with pytest.raises(CredentialsError) as info:
        load_credentials(config, issue=never_called(), environ=environ)
    assert expected in str(info.value)
    guard.output("error", str(info.value))


def test_mask_secrets_masks_what_any_loaded_credential_holds() -> None:
    """The CLI's backstop masks the secrets of every credential loaded in the process, and
    its console applies it to every line."""
    StaticToken("tok-SENTINEL-backstop-01")
    AkSk(AK, "sk-SENTINEL-backstop-02", security_token="st-SENTINEL-backstop-03")
    text = "a tok-SENTINEL-backstop-01 b sk-SENTINEL-backstop-02 c st-SENTINEL-backstop-03"
    assert mask_secrets(text) == "a *** b *** c ***"
    stream = io.StringIO()
    console = StderrConsole(stream, mask=mask_secrets)
    console.warn(text)
    console.status(text)
    assert stream.getvalue() == "warning: a *** b *** c ***\nbatchthumb: a *** b *** c ***\n"


async def test_a_token_from_iam_that_cannot_be_a_header_aborts(guard: SecretGuard) -> None:
    """IAM issuing a token with a control character stops the run before it is ever sent."""
    bad = "MII-SENTINEL-iam\x01token"
    guard.watch(bad)

    async def issue(identity: IamIdentity, password: str) -> IssuedToken:
        return IssuedToken(bad, 3600.0)

    creds = IamPassword(
        IamIdentity("https://iam.example.com", "acme", "bot", "p"), PASSWORD, issue=issue
    )
    with pytest.raises(RunAborted) as info:
        await creds.prepare()
    assert "the token IAM at https://iam.example.com issued contains a control" in str(info.value)
    assert creds.secrets == (PASSWORD, bad)  # masked from then on
    guard.output("error", str(info.value))


def profile(tmp_path: Path, text: str) -> Path:
    """An SDK credentials file holding ``text``, private as it must be."""
    path = tmp_path / "credentials"
    path.write_text(text)
    path.chmod(0o600)
    return path


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("ak = x\n", ":1: not a valid credentials file (INI)"),
        ("[basic]\nak\n", ": not a valid credentials file (INI)"),
        ("[other]\nak = x\nsk = y\n", ": no [basic] section with ak and sk"),
        ("[basic]\nak = x\n", ": [basic] needs both ak and sk"),
        ("[basic]\nsk = y\n", ": [basic] needs both ak and sk"),
        ("[basic]\nak = x\nsk = y\nproject_id = a b\n", " [basic]: project_id contains a space"),
    ],
)
def test_a_bad_credentials_file_says_what_is_wrong_and_where(
    tmp_path: Path, text: str, problem: str
) -> None:
    """An SDK profile that is not INI, lacks [basic] or one key, or holds a bad id: named."""
    path = profile(tmp_path, text)
    with pytest.raises(CredentialsError) as info:
        load_credentials(AkSkAuth(credentials_file=path), issue=never_called(), environ={})
    assert str(info.value).startswith(f"{path}{problem}")


def test_a_credentials_file_gives_its_project_id_and_security_token(tmp_path: Path) -> None:
    """project_id and security_token in [basic] are used; absent, they are None and unsent."""
    path = profile(
        tmp_path,
        f"[basic]\nak = {AK}\nsk = {SK}\nproject_id = proj\nsecurity_token = {SECURITY_TOKEN}\n",
    )
    creds = load_credentials(AkSkAuth(credentials_file=path), issue=never_called(), environ={})
    assert isinstance(creds, AkSk)
    assert (creds.project_id, set(creds.secrets)) == ("proj", {SK, SECURITY_TOKEN})
    bare = profile(tmp_path, f"[basic]\nak = {AK}\nsk = {SK}\nproject_id = proj\n")
    creds = load_credentials(AkSkAuth(credentials_file=bare), issue=never_called(), environ={})
    assert isinstance(creds, AkSk)
    assert (creds.project_id, creds.secrets) == ("proj", (SK,))


def test_environment_keys_without_project_or_token_leave_them_unset() -> None:
    """With only the key pair in the environment, no project id or security token is made up."""
    environ = {"HUAWEICLOUD_SDK_AK": AK, "HUAWEICLOUD_SDK_SK": SK}
    with pytest.raises(CredentialsError) as info:
        load_credentials(AkSkAuth(), issue=never_called(), environ=environ)
    assert str(info.value) == (
        "auth.aksk: no IAM project id for X-Project-Id: set HUAWEICLOUD_SDK_PROJECT_ID (or "
        "project_id in the profile's [basic]), or give the region (`region:` in the job, or "
        "auth.aksk.project) so batchthumb looks it up from IAM as the SDK does"
    )
    environ["HUAWEICLOUD_SDK_PROJECT_ID"] = "proj"
    creds = load_credentials(AkSkAuth(), issue=never_called(), environ=environ)
    assert isinstance(creds, AkSk)
    assert (creds.project_id, creds.secrets) == ("proj", (SK,))


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        (
            {"HUAWEICLOUD_SDK_AK": AK},
            "auth.aksk: HUAWEICLOUD_SDK_SK is not set (the other key of the pair is)",
        ),
        (
            {"HUAWEICLOUD_SDK_SK": SK},
            "auth.aksk: HUAWEICLOUD_SDK_AK is not set (the other key of the pair is)",
        ),
    ],
)
def test_half_a_key_pair_names_the_missing_variable(environ: dict[str, str], message: str) -> None:
    """One key of the pair in the environment: the error names the other, not the file."""
    with pytest.raises(CredentialsError) as info:
        load_credentials(AkSkAuth(), issue=never_called(), environ=environ)
    assert str(info.value) == message


def test_no_key_and_no_file_says_both_ways_to_give_one(tmp_path: Path) -> None:
    """Without keys or a credentials file, the error names the variables and the file."""
    path = tmp_path / "absent"
    with pytest.raises(CredentialsError) as info:
        load_credentials(
            AkSkAuth(),
            issue=never_called(),
            environ={"HUAWEICLOUD_SDK_CREDENTIALS_FILE": str(path)},
        )
    assert str(info.value) == (
        "auth.aksk: no access key: set HUAWEICLOUD_SDK_AK and HUAWEICLOUD_SDK_SK, "
        f"or write them to {path} ([basic] ak = ..., sk = ...)"
    )


def test_a_secret_file_is_refused_plainly_when_missing_a_folder_too_big_or_not_utf8(
    tmp_path: Path,
) -> None:
    """Each unusable token file is a CredentialsError naming it; 64 KB exactly is accepted."""
    missing, folder = tmp_path / "missing", tmp_path / "folder"
    folder.mkdir()
    exact = profile(tmp_path, "t" * (64 * 1024))
    assert len(read_secret_file(exact)) == 64 * 1024
    big = tmp_path / "big"
    big.write_text("t" * (64 * 1024 + 1))
    big.chmod(0o600)
    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff\xfe token")
    binary.chmod(0o600)
    expected = {
        missing: f"{missing}: no such file",
        tmp_path / "folder" / "x": f"{tmp_path / 'folder' / 'x'}: no such file",
        folder: f"{folder}: is a directory, not a regular file",
        big: f"{big}: larger than 64 KB, the limit for a file of secrets",
        binary: f"{binary}: not UTF-8 text",
    }
    for path, message in expected.items():
        with pytest.raises(CredentialsError) as info:
            read_secret_file(path)
        assert str(info.value) == message


def test_a_token_file_or_variable_is_named_in_what_is_wrong_with_its_token(
    tmp_path: Path,
) -> None:
    """A short token from auth.token.file or .env: the error names that file or variable."""
    path = profile(tmp_path, "short\n")
    with pytest.raises(CredentialsError) as info:
        load_credentials(TokenAuth(file=path), issue=never_called())
    assert str(info.value) == (
        f"the token in {path} is 5 characters long; CodeArts tokens are 10 to 32768"
    )
    with pytest.raises(CredentialsError) as info:
        load_credentials(TokenAuth(env="MY_TOKEN"), issue=never_called(), environ={"MY_TOKEN": "x"})
    assert str(info.value) == (
        "the token in $MY_TOKEN is 1 characters long; CodeArts tokens are 10 to 32768"
    )


def test_iam_without_a_project_or_region_says_to_name_one() -> None:
    """IAM auth with neither auth.iam.project nor a job region: a message saying which to set."""
    config = IamAuth(domain="acme", user="bot", password_env="PW")
    with pytest.raises(CredentialsError) as info:
        load_credentials(config, issue=never_called(), environ={"PW": PASSWORD})
    assert str(info.value) == (
        "auth.iam.project: missing; name the IAM project (the region, e.g. cn-north-4), "
        "or set `region:` in the job"
    )


def test_iam_endpoints_default_to_the_global_one_and_lose_a_trailing_slash() -> None:
    """No endpoint or region: the SDK's global IAM endpoint; a given one loses its final "/"."""
    environ = {"PW": PASSWORD}
    plain = IamAuth(domain="acme", user="bot", password_env="PW", project="cn-north-4")
    creds = load_credentials(plain, issue=never_called(), environ=environ)
    assert isinstance(creds, IamPassword)
    assert creds.identity == IamIdentity(
        "https://iam.myhuaweicloud.com", "acme", "bot", "cn-north-4"
    )
    given = dataclasses.replace(plain, endpoint="https://iam.example.com/X//")
    creds = load_credentials(given, issue=never_called(), environ=environ)
    assert isinstance(creds, IamPassword)
    assert creds.identity.endpoint == "https://iam.example.com/X"  # only the slashes go


@pytest.mark.skipif(not Path("/proc/self/mem").exists(), reason="needs Linux's /proc")
def test_a_secret_file_that_fails_to_read_is_a_credentials_error() -> None:
    """A private regular file whose read fails (/proc/self/mem: EIO) says it cannot be read."""
    with pytest.raises(CredentialsError) as info:
        read_secret_file(Path("/proc/self/mem"))
    assert str(info.value) == "/proc/self/mem: cannot read: Input/output error"


def test_a_secret_inside_a_longer_one_never_leaves_the_longer_ones_tail() -> None:
    """Secrets are masked longest first: "abcdef" is masked whole even when "abc" is one too."""
    redact = Redactor(["b", "ab"])  # by name "b" sorts first; by length "ab" must
    assert redact("key ab, then b") == "key ***, then ***"
    assert Redactor(())("nothing to mask") == "nothing to mask"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "the ak is empty"),
        (
            "ab\x1bc",
            "the ak contains a control or non-ASCII character (U+001B at character 3); a token "
            "or key is one line of visible ASCII: check for a stray line break, space or escape code",
        ),
        ("ab\nc", "the ak contains a line break (U+000A at character 3)"),
    ],
)
def test_a_header_value_that_cannot_be_sent_is_described_without_quoting_it(
    value: str, message: str
) -> None:
    """An empty value, a control character or a line break: said where, never what."""
    with pytest.raises(CredentialsError) as info:
        check_header_value(value, "the ak")
    assert str(info.value).startswith(message)


@pytest.mark.parametrize(
    ("config", "described"),
    [
        (None, "token from $BATCHTHUMB_TOKEN"),
        (TokenAuth(file=Path("/run/token")), "token from /run/token"),
        (TokenAuth(env="MY_TOKEN"), "token from $MY_TOKEN"),
        (
            AkSkAuth(),
            "AK/SK from $HUAWEICLOUD_SDK_AK and $HUAWEICLOUD_SDK_SK, else "
            "$HUAWEICLOUD_SDK_CREDENTIALS_FILE or ~/.huaweicloud/credentials",
        ),
        (
            AkSkAuth(credentials_file=Path("/etc/creds")),
            "AK/SK from $HUAWEICLOUD_SDK_AK and $HUAWEICLOUD_SDK_SK, else /etc/creds",
        ),
    ],
)
def test_describe_auth_names_where_each_kind_of_secret_comes_from(
    config: TokenAuth | AkSkAuth | None, described: str
) -> None:
    """The dry run's "auth:" line names the file or variable each secret is read from."""
    assert describe_auth(config) == described


def test_default_sources_name_the_token_and_the_access_key() -> None:
    """Built without a source, a bad token or project id is called "the token" / "the access key"."""
    with pytest.raises(CredentialsError, match=r"^the token is 3 characters long"):
        StaticToken("abc")
    with pytest.raises(CredentialsError, match=r"^the access key: project_id contains a space"):
        AkSk(AK, SK, project_id="a b")


def test_no_token_says_every_way_to_give_one() -> None:
    """Without $BATCHTHUMB_TOKEN or an auth: section, the error lists the three ways out."""
    with pytest.raises(CredentialsError) as info:
        load_credentials(None, issue=never_called(), environ={"BATCHTHUMB_TOKEN": "  "})
    assert str(info.value) == (
        "no credentials: set BATCHTHUMB_TOKEN to an IAM token (the X-Subject-Token of "
        "POST /v3/auth/tokens), use an `auth:` section, or rehearse with --sandbox"
    )


async def test_a_token_renewed_mid_run_is_masked_even_where_the_client_does_not_mask(
    tmp_path: Path, guard: SecretGuard
) -> None:
    """The report masks with the secrets as they are at each line, not as they were when the
    run started: a server echoing the renewed token in X-Request-Id (which the client keeps
    verbatim) does not get it into the report or the logs."""
    from aiohttp import web

    guard.watch(RENEWED)

    async def put_img(request: web.Request) -> web.Response:
        body = {"result": {"id": request.match_info["plan"]}, "status": "success"}
        echo = request.headers.get("X-Auth-Token", "")
        return web.json_response(body, headers={"X-Request-Id": f"req-{echo}"})

    app = web.Application()
    app.router.add_put("/v3/plan/{project}/management/{plan}/img", put_img)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    items = tuple(Item(P, plan_id(n), URL) for n in range(6))
    settings = RunSettings(concurrency=1, progress=False, backoff=0.0, snapshot=False)
    job = Job(path=tmp_path / "job.yaml", settings=settings, items=items)
    report = tmp_path / "report.jsonl"
    log, stderr = io.StringIO(), io.StringIO()
    try:
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        url = f"http://127.0.0.1:{port}"
        with anyio.fail_after(60):
            summary = await run_plan(
                plan_run(job, settings, report),
                settings=settings,
                report=report,
                connection=Connection(url, RenewedMidRun(), make_transport()),
                stop=Stop(),
                console=StderrConsole(stderr),
                log=log,
            )
    finally:
        await runner.cleanup()
    guard.output("log", log.getvalue())
    guard.output("stderr", stderr.getvalue())
    assert summary.tally.succeeded == 6
    text = report.read_text()
    assert RENEWED not in text and RENEWED not in log.getvalue()
    assert text.count('"request_id": "req-***"') == 6


def test_credentials_show_no_secret_in_their_repr_and_keys_are_not_renewed() -> None:
    """repr() of a token or key pair names what it is, never the secret; AK/SK never renews."""
    assert repr(StaticToken("t" * 20)) == "StaticToken(<redacted>)"
    aksk = AkSk(AK, SK, project_id="proj")
    assert repr(aksk) == f"AkSk(ak={AK!r}, <redacted>)"
    assert anyio.run(aksk.renew, {}) is False
