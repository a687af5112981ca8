"""The API client against the sandbox over loopback: every answer becomes the right verdict."""

from __future__ import annotations

import email.utils
import time

import pytest

from batchthumb.auth import StaticToken
from batchthumb.client import open_api
from batchthumb.model import Attempt, Verdict
from batchthumb.sandbox import Fault, Sandbox, SandboxConfig
from tests.conftest import P1, TOKEN, img_url, plan_id

pytestmark = pytest.mark.anyio


async def put(url: str, *, token: str = TOKEN, limit: float = 5.0, plan: int = 1) -> Attempt:
    async with open_api(url, StaticToken(token), concurrency=2, timeout=limit) as api:
        return await api.set_thumbnail(P1, plan_id(plan), img_url())


async def test_success_is_ok_and_the_plan_changes(sandbox: tuple[Sandbox, str]) -> None:
    """HTTP 200 with status success is OK, carries the request id, and the sandbox applied it."""
    box, url = sandbox
    attempt = await put(url)
    assert attempt.verdict is Verdict.OK
    assert attempt.http_status == 200
    assert attempt.request_id
    stored = box.plan(P1, plan_id(1))
    assert stored is not None
    assert stored.img_url == img_url()


async def test_status_error_on_http_200_is_a_permanent_failure(
    sandbox: tuple[Sandbox, str],
) -> None:
    """A 200 whose body says status error is not a success."""
    box, url = sandbox
    box.faults.script(Fault.status_error())
    attempt = await put(url)
    assert attempt.verdict is Verdict.PERMANENT
    assert attempt.http_status == 200


async def test_a_bad_request_is_permanent_with_the_servers_code(
    sandbox: tuple[Sandbox, str],
) -> None:
    """A 400 that is not throttling keeps the server's error_code and error_msg."""
    _, url = sandbox
    async with open_api(url, StaticToken(TOKEN), concurrency=1, timeout=5) as api:
        attempt = await api.set_thumbnail("x" * 31, plan_id(1), img_url())
    assert (attempt.verdict, attempt.http_status, attempt.error_code) == (
        Verdict.PERMANENT,
        400,
        "PM.02175006",
    )
    assert attempt.error


async def test_a_wrong_token_is_rejected(sandbox: tuple[Sandbox, str]) -> None:
    """An unknown token is a 401 the run must stop on."""
    _, url = sandbox
    attempt = await put(url, token="wrong-token-0123456789")
    assert (attempt.verdict, attempt.http_status, attempt.error_code) == (
        Verdict.REJECTED,
        401,
        "APIGW.0301",
    )


@pytest.mark.parametrize("status", [500, 503, 408])
async def test_server_errors_are_retryable(sandbox: tuple[Sandbox, str], status: int) -> None:
    """5xx answers, and 408 Request Timeout, are retried."""
    box, url = sandbox
    box.faults.script(Fault.status(status))
    attempt = await put(url)
    assert (attempt.verdict, attempt.http_status) == (Verdict.RETRY, status)


async def test_429_with_retry_after_seconds_is_throttling(sandbox: tuple[Sandbox, str]) -> None:
    """A 429 is throttling, and a delta-seconds Retry-After is read."""
    box, url = sandbox
    box.faults.script(Fault.status(429, retry_after="7"))
    attempt = await put(url)
    assert (attempt.verdict, attempt.http_status, attempt.retry_after) == (
        Verdict.THROTTLED,
        429,
        7.0,
    )
    assert attempt.error_code == "APIGW.0308"


async def test_429_with_retry_after_http_date_is_read_as_seconds(
    sandbox: tuple[Sandbox, str],
) -> None:
    """A Retry-After HTTP date becomes the seconds until that date."""
    box, url = sandbox
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    box.faults.script(Fault.status(429, retry_after=when))
    attempt = await put(url)
    assert attempt.verdict is Verdict.THROTTLED
    assert attempt.retry_after is not None
    assert 20 <= attempt.retry_after <= 31


async def test_pm_throttling_sent_as_400_is_throttling(sandbox: tuple[Sandbox, str]) -> None:
    """PM.02153001 comes with HTTP 400 but means 'too fast', not 'bad request'."""
    box, url = sandbox
    box.faults.script(Fault.pm_throttle())
    attempt = await put(url)
    assert (attempt.verdict, attempt.http_status, attempt.error_code) == (
        Verdict.THROTTLED,
        400,
        "PM.02153001",
    )


async def test_a_dropped_connection_is_retryable_and_ambiguous(
    sandbox: tuple[Sandbox, str],
) -> None:
    """A connection closed without an answer may have been applied: retry, and say so."""
    box, url = sandbox
    box.faults.script(Fault.drop_after_apply())
    attempt = await put(url)
    assert attempt.verdict is Verdict.RETRY
    assert attempt.ambiguous
    assert attempt.error is not None and "may have applied" in attempt.error
    assert box.stats.applied[(P1, plan_id(1))] == 1


async def test_no_answer_within_the_timeout_is_ambiguous(sandbox: tuple[Sandbox, str]) -> None:
    """A request held past the timeout is reported as possibly applied, not as refused."""
    box, url = sandbox
    box.gate.close()
    try:
        attempt = await put(url, limit=0.2)
    finally:
        box.gate.open()
    assert attempt.verdict is Verdict.RETRY
    assert attempt.ambiguous
    assert attempt.error is not None and "no answer within 0.2 s" in attempt.error


async def test_nothing_listening_is_a_clean_retryable_failure() -> None:
    """A refused connection was never sent: retryable and not ambiguous."""
    async with open_api("http://127.0.0.1:9", StaticToken(TOKEN), concurrency=1, timeout=5) as api:
        attempt = await api.set_thumbnail(P1, plan_id(1), img_url())
    assert attempt.verdict is Verdict.RETRY
    assert not attempt.ambiguous
    assert attempt.error is not None and attempt.error.startswith("cannot connect")


@pytest.mark.parametrize(
    ("status", "code"),
    [(403, "SANDBOX.0403"), (400, "PM.02150010"), (400, "PM.02174103")],
)
async def test_permission_answers_are_forbidden_not_per_item_failures(
    sandbox: tuple[Sandbox, str], status: int, code: str
) -> None:
    """403, and the documented 400 permission codes, are FORBIDDEN: they stop the run."""
    box, url = sandbox
    box.faults.script(Fault.status(status, code, "denied"))
    attempt = await put(url)
    assert (attempt.verdict, attempt.http_status, attempt.error_code) == (
        Verdict.FORBIDDEN,
        status,
        code,
    )
    assert attempt.error is not None and P1 in attempt.error


async def test_a_refused_download_says_which_policy_is_missing_when_the_v3_route_fails_too() -> (
    None
):
    """DownloadImageFile without codeartsreq:attachment:download, and a v3 route that refuses
    too (not a member): FORBIDDEN, naming the missing policy and the membership."""
    box = Sandbox(
        SandboxConfig(
            tokens=frozenset({TOKEN}), download_permission=False, non_member_projects={P1}
        )
    )
    source = box.upload(P1, b"\x89PNG\r\n\x1a\n" + bytes(32))
    async with (
        box.serve() as url,
        open_api(url, StaticToken(TOKEN), concurrency=1, timeout=5) as api,
    ):
        attempt, data = await api.download_image(P1, source)
    assert data is None
    assert (attempt.verdict, attempt.error_code) == (Verdict.FORBIDDEN, "PM.02150010")
    assert attempt.error is not None
    assert "the IAM user needs codeartsreq:attachment:download" in attempt.error
    assert f"the v3 download was refused too: the user is not a member of project {P1}" in (
        attempt.error
    )
    assert box.stats.downloads == 2
