"""The API client against the sandbox over loopback: every answer becomes the right verdict."""

from __future__ import annotations

import contextlib
import dataclasses
import email.utils
import gzip
import json
import ssl
import struct
import time
import tracemalloc
import zlib
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest
import trustme
from aiohttp import web

from batchthumb.auth import AkSk, IamIdentity, IamPassword, IssuedToken, StaticToken
from batchthumb.client import (
    JSON,
    USER_AGENT,
    IamProjects,
    IamTokens,
    PlanApi,
    check_url,
    make_transport,
    open_api,
    stated_limit,
)
from batchthumb.errors import CredentialsError, RunAborted, UsageError
from batchthumb.model import (
    MAX_IMAGE_ANSWER_BYTES,
    MAX_PLAN_FIELD_CHARS,
    MIB,
    Attempt,
    PlanPage,
    StatedLimit,
    Verdict,
)
from batchthumb.sandbox import Fault, RateLimit, Sandbox, SandboxConfig
from tests.conftest import P1, TOKEN, img_url, plan_id
from tests.hostile import (
    Handler,
    Server,
    gzip_bomb,
    json_answer,
    nothing_expected,
    redirect,
    refusing_proxy,
    serve,
    streamed,
    tiny_png,
)

pytestmark = pytest.mark.anyio


async def put(url: str, *, token: str = TOKEN, limit: float = 5.0, plan: int = 1) -> Attempt:
    """One thumbnail PUT, under a deadline of its own."""
    async with open_api(url, StaticToken(token), concurrency=2, timeout=limit) as api:
        with anyio.fail_after(20):
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
        with anyio.fail_after(20):
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


@pytest.mark.parametrize("code", ["APIGW.0308", "APIG.0308"])
async def test_both_spellings_of_the_throttling_code_are_throttling(
    sandbox: tuple[Sandbox, str], code: str
) -> None:
    """The gateway's code, spelled either way, is throttling even on a status other than 429."""
    box, url = sandbox
    box.faults.script(Fault.status(400, code, "The throttling threshold has been reached"))
    attempt = await put(url)
    assert (attempt.verdict, attempt.http_status, attempt.error_code) == (
        Verdict.THROTTLED,
        400,
        code,
    )


async def test_a_sandbox_spelling_apig_is_throttling_end_to_end() -> None:
    """A sandbox whose limiter says APIG.0308 is answered as throttling by the client."""
    limit = RateLimit.per_second(1, burst=1)
    config = SandboxConfig(
        tokens=frozenset({TOKEN}), rate_limit=limit, throttle_code="APIG.0308", autocreate=True
    )
    box = Sandbox(config, clock=lambda: 0.0)
    async with box.serve() as url:
        first = await put(url)
        second = await put(url)
    assert first.verdict is Verdict.OK
    assert (second.verdict, second.error_code) == (Verdict.THROTTLED, "APIG.0308")


async def test_a_sandbox_429_names_its_limit_to_the_client() -> None:
    """The limit a real limiter's 429 names (limit:XX,time:1 second) reaches the Attempt."""
    config = SandboxConfig(
        tokens=frozenset({TOKEN}), rate_limit=RateLimit.per_second(3, burst=1), autocreate=True
    )
    box = Sandbox(config, clock=lambda: 0.0)
    async with box.serve() as url:
        first = await put(url)
        second = await put(url)
    assert (first.verdict, first.limit) == (Verdict.OK, None)
    assert (second.verdict, second.limit) == (Verdict.THROTTLED, StatedLimit(3.0, 1.0))


@pytest.mark.parametrize(
    ("message", "stated"),
    [
        (
            "The throttling threshold has been reached: policy user over ratelimit,limit:200,"
            "time:1 second",
            StatedLimit(200.0, 1.0),
        ),
        ("...ratelimit,limit:600,time:1 minute", StatedLimit(600.0, 60.0)),
        ("limit: 12 , time: 2 Seconds", StatedLimit(12.0, 2.0)),
        ("limit:7.5,time:1 hour", StatedLimit(7.5, 3600.0)),
        ("limit:100,time:1 day", StatedLimit(100.0, 86400.0)),
        ("limit:1,time:1 second", StatedLimit(1.0, 1.0)),
        ("limit:0,time:1 second", None),
        ("limit:5,time:0 second", None),
        ("limit:5,time:1 fortnight", None),
        ("limit:5,time:1 secondary", None),
        ("limit:1234567890,time:1 second", None),
        ("The throttling threshold has been reached", None),
        (None, None),
    ],
)
def test_the_limit_a_throttling_message_names_is_read_or_nothing(
    message: str | None, stated: StatedLimit | None
) -> None:
    """The documented message, a minute, spaces and case, other units: read. Zero, an unknown
    unit, more than nine digits or no limit at all: nothing stated."""
    assert stated_limit(message) == stated


def test_a_limit_past_the_first_500_characters_is_not_looked_for() -> None:
    """The search is bounded: a message padded past the error cap states nothing."""
    assert stated_limit(" " * 500 + "limit:5,time:1 second") is None
    assert stated_limit(" " * 479 + "limit:5,time:1 second") == StatedLimit(5.0, 1.0)


async def test_a_limit_is_read_only_from_a_throttling_answer() -> None:
    """A 400 whose message happens to say limit:XX is a failure that states no limit."""
    body = b'{"error_code": "PM.1", "error_msg": "limit:5,time:1 second"}'
    attempt = await put_to(answering(400, body))
    assert (attempt.verdict, attempt.limit) == (Verdict.PERMANENT, None)
    throttled = await put_to(answering(429, body.replace(b"PM.1", b"APIGW.0308")))
    assert (throttled.verdict, throttled.limit) == (Verdict.THROTTLED, StatedLimit(5.0, 1.0))


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
    assert attempt.error == (
        "connection lost: ServerDisconnectedError; the request was sent, so the server may have "
        "applied it"
    )
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
        with anyio.fail_after(20):
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
        with anyio.fail_after(20):
            attempt, data = await api.download_image(P1, source)
    assert data is None
    assert (attempt.verdict, attempt.error_code) == (Verdict.FORBIDDEN, "PM.02150010")
    assert attempt.error is not None
    assert (
        "the IAM user needs codeartsreq:attachment:download (an identity policy) to download "
        "images;" in attempt.error
    )
    assert f"the v3 download was refused too: the user is not a member of project {P1}" in (
        attempt.error
    )
    assert box.stats.downloads == 2


# -- hostile servers: redirects, sizes, echoed secrets (issue 10) -----------------------------


async def call(api: PlanApi, name: str) -> Attempt:
    """One call of the API by its name, as the run makes it."""
    if name == "put":
        return await api.set_thumbnail(P1, plan_id(1), img_url())
    if name == "list":
        return (await api.list_plans(P1, page_no=1, page_size=200))[0]
    if name == "upload":
        return (await api.upload_image(P1, tiny_png(), "a.png"))[0]
    return (await api.download_image(P1, img_url()))[0]


CALLS = ["put", "list", "upload", "download"]


@pytest.mark.parametrize("name", CALLS)
async def test_no_call_follows_a_redirect(name: str) -> None:
    """PUT, list, upload and download each fail on a 307 naming its Location, and the other
    server receives nothing."""
    async with (
        serve(nothing_expected) as elsewhere,
        serve(redirect(307, lambda request: elsewhere.url + "/moved")) as endpoint,
        open_api(endpoint.url, StaticToken(TOKEN), concurrency=1, timeout=5) as api,
    ):
        with anyio.fail_after(20):
            attempt = await call(api, name)
    assert attempt.verdict is Verdict.PERMANENT
    assert attempt.http_status == 307
    assert attempt.error is not None
    assert attempt.error.startswith(f"the server redirected to {elsewhere.url}/moved;")
    assert len(endpoint.seen) == 1
    assert elsewhere.seen == []


@pytest.mark.parametrize("name", CALLS)
async def test_an_answer_declaring_a_huge_length_is_refused_unread(name: str) -> None:
    """A 200 declaring 60 MB (past both the JSON and the image limit) fails without being read."""

    async def huge(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": str(60 * MIB)})
        await response.prepare(request)
        with contextlib.suppress(ConnectionError):
            await response.write(b"{" * 65536)  # the rest never comes: the client must not wait
        return response

    async with (
        serve(huge) as endpoint,
        open_api(endpoint.url, StaticToken(TOKEN), concurrency=1, timeout=30) as api,
    ):
        with anyio.fail_after(20):
            attempt = await call(api, name)
    assert attempt.verdict is Verdict.PERMANENT
    assert attempt.error is not None
    assert "is larger than" in attempt.error


async def test_a_gzip_bomb_never_inflates_in_memory() -> None:
    """A 256 MiB gzip bomb is refused at the 4 MiB limit: the traced peak stays under 16 MiB."""
    bomb = gzip_bomb(256)

    async def send_bomb(request: web.Request) -> web.StreamResponse:
        return web.Response(body=bomb, headers={"Content-Encoding": "gzip"})

    async with (
        serve(send_bomb) as endpoint,
        open_api(endpoint.url, StaticToken(TOKEN), concurrency=1, timeout=30) as api,
    ):
        tracemalloc.start()
        try:
            with anyio.fail_after(60):
                attempt = await call(api, "put")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert attempt.error is not None
    assert attempt.error.startswith("the answer (HTTP 200) is larger than 4,194,304 bytes")
    assert peak < 16 * MIB


async def test_an_image_up_to_its_limit_downloads_and_one_past_it_fails() -> None:
    """A download of 6 MiB (the 5 MB upload limit plus margin) is read; one byte more is not."""
    size = {"bytes": MAX_IMAGE_ANSWER_BYTES}

    async def image(request: web.Request) -> web.StreamResponse:
        return web.Response(body=b"\x89PNG\r\n\x1a\n".ljust(size["bytes"], b"\0"))

    async with (
        serve(image) as endpoint,
        open_api(endpoint.url, StaticToken(TOKEN), concurrency=1, timeout=30) as api,
    ):
        with anyio.fail_after(20):
            attempt, data = await api.download_image(P1, img_url())
        size["bytes"] += 1
        with anyio.fail_after(20):
            too_big, none = await api.download_image(P1, img_url())
    assert attempt.verdict is Verdict.OK
    assert data is not None
    assert len(data) == MAX_IMAGE_ANSWER_BYTES
    assert too_big.verdict is Verdict.PERMANENT
    assert none is None


async def test_server_text_is_masked_before_it_is_cut() -> None:
    """A token echoed across the 500-character cut is masked whole, never left as a prefix."""

    async def echo(request: web.Request) -> web.StreamResponse:
        msg = "x" * 490 + request.headers["X-Auth-Token"] + "y" * 100
        return web.json_response({"error_code": "PM.1", "error_msg": msg}, status=400)

    async with (
        serve(echo) as endpoint,
        open_api(endpoint.url, StaticToken(TOKEN), concurrency=1, timeout=5) as api,
    ):
        with anyio.fail_after(20):
            attempt = await call(api, "put")
    assert attempt.error is not None
    assert attempt.error.startswith("x" * 490 + "***" + "y" * 7 + "...")
    assert TOKEN[:5] not in attempt.error


async def test_a_list_page_with_an_absurd_field_is_unexpected() -> None:
    """A listed plan whose name is 2,000 characters makes the page an unexpected answer."""
    body = {"plans": [{"id": plan_id(1), "name": "n" * 2000, "type": "gantt"}], "total": 1}
    async with (
        serve(json_answer(body)) as endpoint,
        open_api(endpoint.url, StaticToken(TOKEN), concurrency=1, timeout=5) as api,
    ):
        with anyio.fail_after(20):
            attempt, page = await api.list_plans(P1, page_no=1, page_size=200)
    assert page is None
    assert attempt.error == "unexpected answer: a plan's name is 2,000 characters long"


def test_an_endpoint_with_userinfo_is_refused_without_echoing_it() -> None:
    """check_url refuses user:password@ in a URL and does not quote the URL."""
    with pytest.raises(UsageError) as caught:
        check_url("https://bot:hunter2@example.com", insecure=True)
    assert "must not hold a user name or password" in str(caught.value)
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize("encoding", ["gzip", "chunked"])
async def test_an_honest_compressed_or_chunked_answer_is_still_read(encoding: str) -> None:
    """A success sent gzip-compressed, or chunked without Content-Length, is read in full."""
    body = json.dumps({"status": "success", "result": {"pad": "p" * 100_000}}).encode()

    async def answer(request: web.Request) -> web.StreamResponse:
        if encoding == "gzip":
            return web.Response(body=gzip.compress(body), headers={"Content-Encoding": "gzip"})
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for start in range(0, len(body), 4096):
            await response.write(body[start : start + 4096])
        return response

    async with (
        serve(answer) as endpoint,
        open_api(endpoint.url, StaticToken(TOKEN), concurrency=1, timeout=5) as api,
    ):
        with anyio.fail_after(20):
            attempt = await call(api, "put")
    assert attempt.verdict is Verdict.OK, attempt.error


async def test_an_endless_iam_answer_stops_the_run_at_the_limit() -> None:
    """IAM streaming an answer without end is refused at 4 MiB: RunAborted, not a hang."""
    async with serve(streamed(b"{" * 65536, most=64 * MIB)) as iam:
        issue = IamTokens(make_transport(), timeout=30)
        with anyio.fail_after(20), pytest.raises(RunAborted) as caught:
            await issue(IamIdentity(iam.url, "acme", "bot", "cn-north-4"), "pw-SENTINEL-x")
    assert "answered more than 4,194,304 bytes" in str(caught.value)


IAM_ID = IamIdentity("", "acme", "bot", "cn-north-4")
ISSUED = {"token": {"issued_at": "2026-12-01T00:00:00Z", "expires_at": "2026-12-02T00:00:00Z"}}


async def issue_from(handler: Handler, password: str = "pw-SENTINEL-x") -> tuple[Server, object]:
    """Ask a recording IAM stand-in for a token; the token issued, or the RunAborted raised."""
    async with serve(handler) as iam:
        issue = IamTokens(make_transport(), timeout=5)
        identity = dataclasses.replace(IAM_ID, endpoint=iam.url)
        try:
            with anyio.fail_after(20):
                return iam, await issue(identity, password)
        except RunAborted as exc:
            return iam, exc


async def test_a_token_request_is_the_documented_password_call() -> None:
    """POST /v3/auth/tokens?nocatalog=true with the password method, scoped to the project."""
    iam, issued = await issue_from(
        json_answer(ISSUED, 201, **{"X-Subject-Token": "tok-1234567890"})
    )
    assert issued == IssuedToken("tok-1234567890", 86400.0)
    [seen] = iam.seen
    assert (seen.method, seen.path) == ("POST", "/v3/auth/tokens?nocatalog=true")
    assert seen.headers["Content-Type"] == "application/json;charset=utf8"
    assert json.loads(seen.body) == {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {"name": "bot", "password": "pw-SENTINEL-x", "domain": {"name": "acme"}}
                },
            },
            "scope": {"project": {"name": "cn-north-4"}},
        }
    }


@pytest.mark.parametrize(
    ("handler", "message"),
    [
        (
            json_answer({"error": {"code": 401, "message": "pw-SENTINEL-x is wrong"}}, 401),
            "refused a token for IAM user bot of account acme, project cn-north-4 (HTTP 401: 401 "
            "*** is wrong); check the account, user name, project and the password in its "
            "environment variable",
        ),
        (
            json_answer(ISSUED, 200, **{"X-Subject-Token": "tok-1234567890"}),
            "refused a token for IAM user bot of account acme, project cn-north-4 (HTTP 200); check",
        ),
        (
            json_answer(ISSUED, 201),
            "refused a token for IAM user bot of account acme, project cn-north-4 (HTTP 201); check",
        ),
        (
            redirect(307, lambda request: "https://elsewhere.example/pw-SENTINEL-x"),
            "redirected to https://elsewhere.example/***; redirects are not followed, so the "
            "password never leaves IAM's endpoint: check auth.iam.endpoint",
        ),
        (
            json_answer(
                {"token": {"issued_at": "2026-12-01T00:00:00Z"}},
                201,
                **{"X-Subject-Token": "tok-1234567890"},
            ),
            "answered without token.expires_at",
        ),
        (
            json_answer(
                {
                    "token": {
                        "issued_at": "2026-12-02T00:00:00Z",
                        "expires_at": "2026-12-01T00:00:00Z",
                    }
                },
                201,
                **{"X-Subject-Token": "tok-1234567890"},
            ),
            "issued a token that has already expired",
        ),
    ],
)
async def test_each_way_iam_can_refuse_a_token_stops_the_run_saying_so(
    handler: Handler, message: str
) -> None:
    """A refusal, a 200 instead of 201, no X-Subject-Token, a redirect, a bad expiry: RunAborted
    naming IAM, with the password masked wherever the answer echoed it."""
    iam, issued = await issue_from(handler)
    assert isinstance(issued, RunAborted)
    assert str(issued).startswith(f"IAM at {iam.url} ") or str(issued).startswith("no token")
    assert message in str(issued)
    assert "SENTINEL" not in str(issued)


async def test_an_unreachable_iam_is_named_with_the_error_kind() -> None:
    """Nothing listening at IAM's address: RunAborted naming the user, the endpoint and why."""
    issue = IamTokens(make_transport(), timeout=5)
    identity = dataclasses.replace(IAM_ID, endpoint="http://127.0.0.1:9")
    with anyio.fail_after(20), pytest.raises(RunAborted) as caught:
        await issue(identity, "pw")
    assert str(caught.value) == (
        "no token for IAM user bot of account acme: cannot reach IAM at http://127.0.0.1:9 "
        "(ClientConnectorError)"
    )


PROJECT = "0" * 31 + "a"


async def look_up(handler: Handler) -> tuple[Server, object]:
    """Ask a recording IAM stand-in for the project id of cn-north-4, signed with an AK/SK."""
    async with serve(handler) as iam:
        lookup = IamProjects(make_transport(), timeout=5)
        signer = AkSk("AKSENTINEL0000000001", "sk-SENTINEL-1", project_id="p" * 32)
        try:
            with anyio.fail_after(20):
                return iam, await lookup(iam.url, "cn-north-4", signer)
        except (RunAborted, CredentialsError) as exc:
            return iam, exc


async def test_a_project_lookup_is_the_signed_keystone_listing_by_name() -> None:
    """GET /v3/projects?name=REGION, signed; the one project's id is the answer."""
    iam, found = await look_up(json_answer({"projects": [{"id": PROJECT, "name": "cn-north-4"}]}))
    assert found == PROJECT
    [seen] = iam.seen
    assert (seen.method, seen.path) == ("GET", "/v3/projects?name=cn-north-4")
    assert seen.headers["Authorization"].startswith("SDK-HMAC-SHA256 Access=AKSENTINEL0000000001")


@pytest.mark.parametrize(
    ("handler", "message"),
    [
        (
            json_answer({"error": {"code": "IAM.0001", "message": "bad sig"}}, 401),
            "refused (HTTP 401: IAM.0001 bad sig); check the access key pair, or set "
            "HUAWEICLOUD_SDK_PROJECT_ID",
        ),
        (
            json_answer({}, 500),
            "refused (HTTP 500); try again later, or set HUAWEICLOUD_SDK_PROJECT_ID",
        ),
        (
            redirect(302, lambda request: "https://elsewhere.example/"),
            "redirected, and redirects are not followed (HTTP 302)",
        ),
        (json_answer({"projects": {}}), "answered without a `projects` list"),
        (
            json_answer({"projects": []}),
            "has no project named cn-north-4; check the region, or set "
            "HUAWEICLOUD_SDK_PROJECT_ID to the project to use",
        ),
        (
            json_answer({"projects": [{"id": "a"}, {"id": "b"}, "junk"]}),
            "has 2 projects named cn-north-4 (a, b); check the region",
        ),
        (json_answer({"projects": [{"id": "not an id"}]}), "answered an unusable project id"),
        (json_answer({"projects": [{"id": 5}]}), "answered an unusable project id"),
    ],
)
async def test_each_failed_project_lookup_says_why(handler: Handler, message: str) -> None:
    """Refused (with the advice that fits the status), redirected, no list, none, several or a
    bad id: each stops with a message naming the region and IAM's endpoint."""
    iam, found = await look_up(handler)
    assert isinstance(found, RunAborted | CredentialsError)
    prefix = f"cannot look up the IAM project id of cn-north-4 for X-Project-Id: IAM at {iam.url} "
    assert str(found).startswith(prefix)
    assert message in str(found)
    assert isinstance(found, CredentialsError) == ("named" in message)


@pytest.mark.parametrize(
    ("status", "code", "said", "hint"),
    [
        (
            400,
            "PM.02150010",
            "denied",
            f"the user is not a member of project {P1} (denied); add the IAM user to that "
            "CodeArts Req project with a role that may edit plans",
        ),
        (
            400,
            "PM.02174103",
            "无操作权限",
            f"no permission in project {P1} (无操作权限): the user's role there does not allow this",
        ),
        (
            403,
            "PM.00000403",
            "go away",
            f"forbidden in project {P1} (go away): the identity lacks a role in the project or an IAM permission",
        ),
    ],
)
async def test_a_permission_refusal_says_what_to_grant_in_which_project(
    sandbox: tuple[Sandbox, str], status: int, code: str, said: str, hint: str
) -> None:
    """Not a member, no permission, or a bare 403: the error names the project and the fix."""
    box, url = sandbox
    box.faults.script(Fault.status(status, code, said))
    attempt = await put(url)
    assert attempt.error is not None
    assert attempt.error.endswith(hint), attempt.error


# -- what mutation testing found unguarded: list shapes, uploads, downloads, renewal ----------


async def listed(body: object, **kwargs: str) -> tuple[Server, Attempt, PlanPage | None]:
    """One list_plans call against a server that answers ``body``, and what it received."""
    async with (
        serve(json_answer(body, **kwargs)) as endpoint,
        open_api(endpoint.url, StaticToken(TOKEN), concurrency=1, timeout=5) as api,
    ):
        with anyio.fail_after(20):
            attempt, page = await api.list_plans(P1, page_no=2, page_size=50)
    return endpoint, attempt, page


async def test_a_list_call_sends_its_filters_only_when_given() -> None:
    """list_plans posts page_no and page_size, and type and search only when they are given."""
    async with (
        serve(json_answer({"plans": [], "total": 0})) as endpoint,
        open_api(endpoint.url, StaticToken(TOKEN), concurrency=1, timeout=5) as api,
    ):
        with anyio.fail_after(20):
            await api.list_plans(P1, page_no=1, page_size=200)
            await api.list_plans(P1, page_no=3, page_size=10, plan_type="gantt", search="q")
    bare, filtered = (json.loads(seen.body) for seen in endpoint.seen)
    assert bare == {"page_no": 1, "page_size": 200}
    assert filtered == {"page_no": 3, "page_size": 10, "type": "gantt", "search": "q"}
    assert {seen.path for seen in endpoint.seen} == {f"/v3/plan/{P1}/managements"}


async def test_a_list_page_skips_what_is_not_a_plan_and_fills_in_missing_fields() -> None:
    """Junk elements and plans without a string id are skipped (the rest still read); a plan
    without name or type gets empty ones; an empty or non-string img_url is no thumbnail."""
    plans = [
        "junk",
        {"id": 5},
        {"result": {"id": plan_id(1), "name": "wrapped", "type": "gantt", "img_url": ""}},
        {"id": plan_id(2), "img_url": 7},
        {"id": plan_id(3), "img_url": img_url()},
    ]
    _, attempt, page = await listed({"plans": plans, "total": 0})
    assert attempt.verdict is Verdict.OK
    assert page is not None
    assert page.total == 0
    summary = {p.plan_id: (p.name, p.type, p.img_url, p.img_known) for p in page.plans}
    assert summary == {
        plan_id(1): ("wrapped", "gantt", None, True),
        plan_id(2): ("", "", None, True),
        plan_id(3): ("", "", img_url(), True),
    }


@pytest.mark.parametrize("total", [-1, True, "3", None])
async def test_a_list_total_that_is_not_a_count_is_unknown(total: object) -> None:
    """A negative, boolean or textual total (or none) is read as 'the answer did not say'."""
    _, _, page = await listed({"plans": [], "total": total})
    assert page is not None
    assert page.total is None


async def test_a_success_without_a_plans_array_is_unexpected() -> None:
    """A list answer saying success but holding no `plans` array is a permanent failure."""
    _, attempt, page = await listed({"status": "success", "result": {}})
    assert page is None
    assert (attempt.verdict, attempt.http_status) == (Verdict.PERMANENT, 200)
    assert attempt.error == "unexpected answer: the plan list has no `plans` array"


async def test_a_plan_field_at_the_limit_is_kept_and_one_past_it_names_the_field() -> None:
    """A name of exactly 1,024 characters is read; an img_url of 1,025 makes the page
    unexpected, naming img_url, with the answer's status and request id kept."""
    at_limit = {"id": plan_id(1), "name": "n" * MAX_PLAN_FIELD_CHARS}
    _, _, page = await listed({"plans": [at_limit], "total": 1})
    assert page is not None
    assert page.plans[0].name == "n" * MAX_PLAN_FIELD_CHARS
    past = {"id": plan_id(1), "img_url": "u" * (MAX_PLAN_FIELD_CHARS + 1)}
    _, attempt, page = await listed({"plans": [past]}, **{"X-Request-Id": "req-list-1"})
    assert page is None
    assert attempt == Attempt(
        Verdict.PERMANENT,
        200,
        None,
        "unexpected answer: a plan's img_url is 1,025 characters long",
        "req-list-1",
    )


async def test_an_upload_sends_one_multipart_file_with_a_fresh_boundary_and_its_type() -> None:
    """Each upload is multipart with a boundary of its own; a PNG goes as image/png, bytes of
    no known image type as application/octet-stream, and the img_url answered comes back."""
    answer = {"img_id": "1", "img_url": img_url()}
    async with (
        serve(json_answer(answer)) as endpoint,
        open_api(endpoint.url, StaticToken(TOKEN), concurrency=1, timeout=5) as api,
    ):
        with anyio.fail_after(20):
            png = await api.upload_image(P1, tiny_png(), "a.png")
            other = await api.upload_image(P1, b"not an image", "b.bin")
    assert png == (Attempt(Verdict.OK, 200), img_url())
    assert other[1] == img_url()
    types = []
    for seen, data, name in zip(
        endpoint.seen, [tiny_png(), b"not an image"], ["a.png", "b.bin"], strict=True
    ):
        assert (seen.method, seen.path) == ("POST", f"/v2/{P1}/img")
        declared = seen.headers["Content-Type"]
        assert declared.startswith("multipart/form-data; boundary=")
        boundary = declared.split("boundary=", 1)[1]
        head, part_type = _multipart_part(seen.body, boundary, name, data)
        types.append(part_type)
        assert head == boundary
    assert types == ["image/png", "application/octet-stream"]
    assert len({s.headers["Content-Type"] for s in endpoint.seen}) == 2


def _multipart_part(body: bytes, boundary: str, name: str, data: bytes) -> tuple[str, str]:
    """The boundary a one-part multipart body opens with, and its part's Content-Type; asserts
    the part holds ``data`` under field ``file`` and filename ``name``."""
    first, rest = body.split(b"\r\n", 1)
    headers, content = rest.split(b"\r\n\r\n", 1)
    assert content == data + f"\r\n--{boundary}--\r\n".encode()
    disposition, content_type = headers.decode().split("\r\n")
    assert disposition == f'Content-Disposition: form-data; name="file"; filename="{name}"'
    return first.decode().removeprefix("--"), content_type.removeprefix("Content-Type: ")


async def test_an_upload_answer_without_img_url_is_unexpected() -> None:
    """A successful upload answer that holds no img_url is a permanent failure saying so."""
    async with (
        serve(json_answer({"status": "success", "img_id": "1"})) as endpoint,
        open_api(endpoint.url, StaticToken(TOKEN), concurrency=1, timeout=5) as api,
    ):
        with anyio.fail_after(20):
            attempt, url = await api.upload_image(P1, tiny_png(), "a.png")
    assert url is None
    assert (attempt.verdict, attempt.http_status) == (Verdict.PERMANENT, 200)
    assert attempt.error == "unexpected answer: the upload answer has no img_url"


async def test_a_download_refused_for_want_of_the_policy_comes_by_the_v3_route_from_then_on() -> (
    None
):
    """DownloadImageFile refused for lack of codeartsreq:attachment:download: the image comes
    by the v3 route, and the next download goes there straight away."""
    box = Sandbox(SandboxConfig(tokens=frozenset({TOKEN}), download_permission=False))
    image = b"\x89PNG\r\n\x1a\n" + bytes(32)
    first, second = box.upload(P1, image), box.upload(P1, image + b"2")
    async with (
        box.serve() as url,
        open_api(url, StaticToken(TOKEN), concurrency=1, timeout=5) as api,
    ):
        with anyio.fail_after(20):
            got_first = await api.download_image(P1, first)
            got_second = await api.download_image(P1, second)
    assert got_first == (Attempt(Verdict.OK, 200), image)
    assert got_second == (Attempt(Verdict.OK, 200), image + b"2")
    assert box.stats.downloads == 3


async def test_a_v3_download_that_fails_otherwise_is_that_failure() -> None:
    """After the policy refusal, a v3 route answering 500 gives its own retryable failure."""
    refused = {"error_code": "PM.02174103", "error_msg": "无操作权限"}

    async def answer(request: web.Request) -> web.StreamResponse:
        if request.path.startswith("/v4/"):
            return web.json_response(refused, status=400)
        return web.json_response({"error_code": "PM.500", "error_msg": "down"}, status=500)

    async with (
        serve(answer) as endpoint,
        open_api(endpoint.url, StaticToken(TOKEN), concurrency=1, timeout=5) as api,
    ):
        with anyio.fail_after(20):
            attempt, data = await api.download_image(P1, img_url())
    assert data is None
    assert (attempt.verdict, attempt.http_status, attempt.error) == (Verdict.RETRY, 500, "down")
    assert [seen.path for seen in endpoint.seen][1] == "/v3/" + img_url().removeprefix("/v1/")


def issuing(*tokens: str) -> IamPassword:
    """IAM password credentials whose issuer hands out ``tokens`` in turn, then refuses."""
    left = list(tokens)

    async def issue(identity: IamIdentity, password: str) -> IssuedToken:
        if not left:
            raise RunAborted("IAM refused a token: the account is frozen")
        return IssuedToken(left.pop(0), 86400.0)

    return IamPassword(IAM_ID, "pw-SENTINEL-x", issue=issue)


STALE = {"error_code": "APIGW.0301", "error_msg": "token expired"}


def stale_for(token: str, answer: object) -> Handler:
    """A server that calls ``token`` stale (401 APIGW.0301) and answers ``answer`` otherwise."""

    async def handle(request: web.Request) -> web.StreamResponse:
        if request.headers.get("X-Auth-Token") == token:
            return web.json_response(STALE, status=401)
        return web.json_response(answer)

    return handle


async def test_a_list_answered_stale_is_sent_again_whole_with_the_renewed_token() -> None:
    """A stale-token 401 renews the token; the list request is sent again with the same body
    and Content-Type, and the page it answers is read."""
    answer = {"plans": [{"id": plan_id(1), "name": "a", "type": "gantt"}], "total": 1}
    credentials = issuing("tok-first-000000", "tok-second-00000")
    async with (
        serve(stale_for("tok-first-000000", answer)) as endpoint,
        open_api(endpoint.url, credentials, concurrency=1, timeout=5) as api,
    ):
        with anyio.fail_after(20):
            attempt, page = await api.list_plans(P1, page_no=1, page_size=200, search="a")
    assert attempt.verdict is Verdict.OK
    assert page is not None
    assert [p.plan_id for p in page.plans] == [plan_id(1)]
    first, again = endpoint.seen
    assert (first.headers["X-Auth-Token"], again.headers["X-Auth-Token"]) == (
        "tok-first-000000",
        "tok-second-00000",
    )
    assert (again.method, again.path, again.body) == (first.method, first.path, first.body)
    assert again.headers["Content-Type"] == first.headers["Content-Type"] == JSON
    assert json.loads(again.body)["search"] == "a"


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ({"status": "success", "result": {}}, Attempt(Verdict.OK, 200)),
        ({"result": {}}, Attempt(Verdict.OK, 200)),
        ({"status": "error", "error_msg": "nope"}, Attempt(Verdict.PERMANENT, 200, None, "nope")),
    ],
)
async def test_a_put_answered_stale_is_sent_again_and_judged_like_the_first(
    answer: object, expected: Attempt
) -> None:
    """The thumbnail PUT goes as JSON and, renewed after a stale-token 401, again the same;
    the second answer is judged as a PUT's: a result without status is a success, status
    error a failure."""
    credentials = issuing("tok-first-000000", "tok-second-00000")
    async with (
        serve(stale_for("tok-first-000000", answer)) as endpoint,
        open_api(endpoint.url, credentials, concurrency=1, timeout=5) as api,
    ):
        with anyio.fail_after(20):
            attempt = await api.set_thumbnail(P1, plan_id(1), img_url())
    assert attempt == expected
    first, again = endpoint.seen
    assert first.headers["Content-Type"] == again.headers["Content-Type"] == JSON
    assert (again.method, again.path, again.body) == (first.method, first.path, first.body)


async def test_an_endpoint_with_a_trailing_slash_makes_the_same_paths() -> None:
    """An endpoint given as https://host/ sends /v3/..., not //v3/...."""
    async with (
        serve(nothing_expected) as endpoint,
        open_api(endpoint.url + "/", StaticToken(TOKEN), concurrency=1, timeout=5) as api,
    ):
        with anyio.fail_after(20):
            attempt = await call(api, "put")
    assert attempt.verdict is Verdict.OK
    assert [seen.path for seen in endpoint.seen] == [f"/v3/plan/{P1}/management/{plan_id(1)}/img"]


async def test_a_renewal_that_fails_is_the_stale_answer_saying_why() -> None:
    """When IAM will not renew the stale token, the 401 stands, its message saying so."""
    credentials = issuing("tok-first-000000")
    async with (
        serve(stale_for("tok-first-000000", {})) as endpoint,
        open_api(endpoint.url, credentials, concurrency=1, timeout=5) as api,
    ):
        with anyio.fail_after(20):
            attempt, page = await api.list_plans(P1, page_no=1, page_size=200)
    assert page is None
    assert (attempt.verdict, attempt.http_status, attempt.error_code) == (
        Verdict.REJECTED,
        401,
        "APIGW.0301",
    )
    assert attempt.error == (
        "token expired; renewing the token failed: IAM refused a token: the account is frozen"
    )
    assert len(endpoint.seen) == 1


async def test_a_token_that_cannot_be_fetched_rejects_the_request_unsent() -> None:
    """No token to be had before the first request: REJECTED with IAM's reason, nothing sent."""
    credentials = issuing()
    async with (
        serve(nothing_expected) as endpoint,
        open_api(endpoint.url, credentials, concurrency=1, timeout=5) as api,
    ):
        with anyio.fail_after(20):
            attempt = await api.set_thumbnail(P1, plan_id(1), img_url())
    assert attempt == Attempt(Verdict.REJECTED, error="IAM refused a token: the account is frozen")
    assert endpoint.seen == []


# -- what a failure keeps of the answer: ids, cut codes, quoted bodies, size refusals ----------


async def test_a_failure_keeps_the_request_id_and_cuts_a_long_code_to_64_characters() -> None:
    """A 400 keeps its X-Request-Id; an error code past 64 characters is cut to 64."""
    body = {"error_code": "PM." + "9" * 100, "error_msg": "bad"}
    async with (
        serve(json_answer(body, 400, **{"X-Request-Id": "req-400"})) as endpoint,
        open_api(endpoint.url, StaticToken(TOKEN), concurrency=1, timeout=5) as api,
    ):
        with anyio.fail_after(20):
            attempt = await call(api, "put")
    assert attempt.request_id == "req-400"
    assert attempt.error_code == ("PM." + "9" * 100)[:64] + "... (39 more characters)"
    assert attempt.error == "bad"


async def test_a_message_of_exactly_500_characters_is_kept_whole() -> None:
    """Server text is cut only past 500 characters."""
    body = {"error_code": "PM.1", "error_msg": "m" * 500}
    async with (
        serve(json_answer(body, 400)) as endpoint,
        open_api(endpoint.url, StaticToken(TOKEN), concurrency=1, timeout=5) as api,
    ):
        with anyio.fail_after(20):
            attempt = await call(api, "put")
    assert attempt.error == "m" * 500


PREFIX = "unexpected answer (no `status` or `result`): "


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b"", PREFIX + "an empty body"),
        (b'{"answer": 42}', PREFIX + '{"answer": 42}'),
        (b"caf\xe9", PREFIX + "caf\ufffd"),
        # 4,000 bytes quoted, then cut to 500 characters: 45 + 4,000 - 500 left out.
        (b"q" * 5000, PREFIX + "q" * (500 - len(PREFIX)) + "... (3,545 more characters)"),
    ],
)
async def test_a_200_that_is_not_an_answer_quotes_what_came(raw: bytes, error: str) -> None:
    """An unexpected 200 quotes the body (invalid UTF-8 replaced, at most 4,000 bytes of it,
    then cut to 500 characters), or says it was empty."""

    async def answer(request: web.Request) -> web.StreamResponse:
        return web.Response(body=raw)

    async with (
        serve(answer) as endpoint,
        open_api(endpoint.url, StaticToken(TOKEN), concurrency=1, timeout=5) as api,
    ):
        with anyio.fail_after(20):
            attempt = await call(api, "put")
    assert (attempt.verdict, attempt.error) == (Verdict.PERMANENT, error)


def bare_redirect(status: int) -> Handler:
    """A redirect status without a Location header."""

    async def answer(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status)

    return answer


async def test_a_success_keeps_its_code_and_retry_after() -> None:
    """A 200 success keeps the error code it carries and the Retry-After it sends."""
    body = {"status": "success", "result": {}, "error_code": "PM.0"}
    async with (
        serve(json_answer(body, **{"Retry-After": "3", "X-Request-Id": "r-1"})) as endpoint,
        open_api(endpoint.url, StaticToken(TOKEN), concurrency=1, timeout=5) as api,
    ):
        with anyio.fail_after(20):
            attempt = await call(api, "put")
    assert attempt == Attempt(Verdict.OK, 200, "PM.0", None, "r-1", 3.0)


@pytest.mark.parametrize(
    ("body", "code", "error"),
    [
        ({"status": "error", "error_code": "PM.1", "error_msg": "nope"}, "PM.1", "nope"),
        ({"status": "error"}, None, "the API answered status error"),
    ],
)
async def test_a_200_saying_status_error_fails_with_its_message(
    body: object, code: str | None, error: str
) -> None:
    """A 200 whose body says status error fails for good with the server's code and message,
    or says that it answered status error."""
    headers = {"X-Request-Id": "r-2", "Retry-After": "4"}
    async with (
        serve(json_answer(body, **headers)) as endpoint,
        open_api(endpoint.url, StaticToken(TOKEN), concurrency=1, timeout=5) as api,
    ):
        with anyio.fail_after(20):
            attempt = await call(api, "put")
    assert attempt == Attempt(Verdict.PERMANENT, 200, code, error, "r-2", 4.0)


@pytest.mark.parametrize(
    ("handler", "where"),
    [
        (redirect(300, lambda request: "https://elsewhere.example/"), "https://elsewhere.example/"),
        (bare_redirect(302), "nowhere"),
    ],
)
async def test_a_300_or_a_redirect_without_location_is_not_followed_and_says_where(
    handler: Handler, where: str
) -> None:
    """A 300 is a redirect like the others; one without Location says it pointed nowhere."""
    async with (
        serve(handler) as endpoint,
        open_api(endpoint.url, StaticToken(TOKEN), concurrency=1, timeout=5) as api,
    ):
        with anyio.fail_after(20):
            attempt = await call(api, "put")
    assert attempt.verdict is Verdict.PERMANENT
    assert attempt.error == (
        f"the server redirected to {where}; redirects are not followed, so credentials never "
        "leave the endpoint: check the endpoint URL"
    )


def declaring(status: int, size: int) -> Handler:
    """A server answering ``status`` with a declared length of ``size`` bytes it never sends."""

    async def answer(request: web.Request) -> web.StreamResponse:
        headers = {"Content-Length": str(size), "X-Request-Id": "req-big"}
        response = web.StreamResponse(status=status, headers=headers)
        await response.prepare(request)
        with contextlib.suppress(ConnectionError):
            await response.write(b"{")
        return response

    return answer


@pytest.mark.parametrize(
    ("status", "name", "error"),
    [
        (
            200,
            "put",
            "the answer (HTTP 200) is larger than 4,194,304 bytes; it was not read (--max-answer-mb "
            "raises this limit); the server may have applied the request",
        ),
        (
            299,
            "download",
            "the answer (HTTP 299) is larger than 6,291,456 bytes; it was not read; the server may "
            "have applied the request",
        ),
        (
            300,
            "put",
            "the answer (HTTP 300) is larger than 4,194,304 bytes; it was not read (--max-answer-mb "
            "raises this limit)",
        ),
    ],
)
async def test_an_oversized_answer_says_which_limit_and_whether_it_may_have_applied(
    status: int, name: str, error: str
) -> None:
    """Past its limit, an answer fails for good with its status and request id; a 2xx may have
    been applied (ambiguous), a 300 not; only the JSON limit names --max-answer-mb."""
    async with (
        serve(declaring(status, 60 * MIB)) as endpoint,
        open_api(endpoint.url, StaticToken(TOKEN), concurrency=1, timeout=30) as api,
    ):
        with anyio.fail_after(20):
            attempt = await call(api, name)
    assert attempt == Attempt(
        Verdict.PERMANENT,
        status,
        error=error,
        request_id="req-big",
        ambiguous=status < 300,
    )


async def test_a_refusal_without_words_or_a_project_in_its_path_still_says_what_to_fix() -> None:
    """A bare 403 (no message) on a path naming no project id: 'forbidden in this project',
    with no empty parentheses."""
    async with (
        serve(json_answer({}, 403)) as endpoint,
        open_api(endpoint.url, StaticToken(TOKEN), concurrency=1, timeout=5) as api,
    ):
        with anyio.fail_after(20):
            attempt = await api.set_thumbnail("not-an-id", plan_id(1), img_url())
    assert attempt.verdict is Verdict.FORBIDDEN
    assert attempt.error == (
        "forbidden in this project: the identity lacks a role in the project or an IAM permission"
    )


# -- IAM: each answer and failure of a token request and a project lookup ---------------------


def held(release: anyio.Event) -> Handler:
    """A server that holds every request until ``release`` is set."""

    async def answer(request: web.Request) -> web.StreamResponse:
        await release.wait()
        return web.json_response({})

    return answer


async def test_an_iam_that_does_not_answer_in_time_stops_the_run_saying_so() -> None:
    """A token request and a project lookup held past their timeout: RunAborted naming it."""
    release = anyio.Event()
    async with serve(held(release)) as iam:
        identity = dataclasses.replace(IAM_ID, endpoint=iam.url)
        signer = AkSk("AKSENTINEL0000000001", "sk-SENTINEL-1", project_id="p" * 32)
        try:
            with anyio.fail_after(20), pytest.raises(RunAborted) as token:
                await IamTokens(make_transport(), timeout=0.2)(identity, "pw")
            with anyio.fail_after(20), pytest.raises(RunAborted) as lookup:
                await IamProjects(make_transport(), timeout=0.2)(iam.url, "cn-north-4", signer)
        finally:
            release.set()
    assert str(token.value) == (
        f"no token for IAM user bot of account acme: IAM at {iam.url} did not answer within 0.2 s"
    )
    assert str(lookup.value) == (
        "cannot look up the IAM project id of cn-north-4 for X-Project-Id: "
        f"IAM at {iam.url} did not answer within 0.2 s"
    )


async def test_an_unreachable_iam_stops_the_project_lookup_naming_the_error_kind() -> None:
    """Nothing listening at IAM's address: the lookup's RunAborted names the endpoint and why."""
    signer = AkSk("AKSENTINEL0000000001", "sk-SENTINEL-1", project_id="p" * 32)
    lookup = IamProjects(make_transport(), timeout=5)
    with anyio.fail_after(20), pytest.raises(RunAborted) as caught:
        await lookup("http://127.0.0.1:9", "cn-north-4", signer)
    assert str(caught.value) == (
        "cannot look up the IAM project id of cn-north-4 for X-Project-Id: cannot reach IAM at "
        "http://127.0.0.1:9 (ClientConnectorError)"
    )


async def test_iam_calls_say_who_is_asking_and_ignore_the_environments_proxy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Token and project requests carry batchthumb's User-Agent, and go to a loopback IAM
    directly even when HTTP_PROXY names a proxy (which refuses everything)."""
    async with refusing_proxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("http_proxy", proxy.url)
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        iam, issued = await issue_from(
            json_answer(ISSUED, 201, **{"X-Subject-Token": "tok-1234567890"})
        )
        projects, found = await look_up(json_answer({"projects": [{"id": PROJECT}]}))
    assert issued == IssuedToken("tok-1234567890", 86400.0)
    assert found == PROJECT
    assert proxy.requests == []
    assert iam.headers_named("User-Agent") == [USER_AGENT]
    assert projects.headers_named("User-Agent") == [USER_AGENT]


async def test_a_token_as_long_as_tokens_may_be_is_read() -> None:
    """An X-Subject-Token of 20,000 characters (past aiohttp's 8 KiB default) is issued."""
    token = "t" * 20_000
    _, issued = await issue_from(json_answer(ISSUED, 201, **{"X-Subject-Token": token}))
    assert issued == IssuedToken(token, 86400.0)


def issuing_body(body: bytes) -> Handler:
    """IAM answering 201 with a token header and ``body`` as it is."""

    async def answer(request: web.Request) -> web.StreamResponse:
        return web.Response(status=201, body=body, headers={"X-Subject-Token": "tok-1234567890"})

    return answer


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "answered without token.expires_at"),
        (b'["token"]', "answered without token.expires_at"),
        (b'{"token": "tok"}', "answered without token.expires_at"),
        (
            b'{"token": {"issued_at": "2026-12-01T00:00:00Z", "expires_at": '
            b'"2026-12-01T00:00:00Z"}}',
            "issued a token that has already expired",
        ),
    ],
)
async def test_a_token_answer_without_a_usable_expiry_stops_the_run(
    body: bytes, message: str
) -> None:
    """No JSON, no token object, or an expiry equal to the issue time: RunAborted saying so."""
    iam, issued = await issue_from(issuing_body(body))
    assert isinstance(issued, RunAborted)
    assert str(issued) == f"IAM at {iam.url} {message}"


async def test_a_token_lifetime_is_measured_in_iams_own_times_down_to_a_second() -> None:
    """A token valid for one second by IAM's issued_at and expires_at is issued for 1 s."""
    times = (
        b'{"token": {"issued_at": "2026-12-01T00:00:00Z", "expires_at": "2026-12-01T00:00:01Z"}}'
    )
    _, issued = await issue_from(issuing_body(times))
    assert issued == IssuedToken("tok-1234567890", 1.0)


async def test_a_token_without_issued_at_lives_until_its_expiry_from_now() -> None:
    """Without issued_at the lifetime is counted from the local clock to expires_at."""
    expires = datetime.fromtimestamp(time.time() + 3600, UTC).isoformat()
    _, issued = await issue_from(
        json_answer({"token": {"expires_at": expires}}, 201, **{"X-Subject-Token": "tok-123456"})
    )
    assert isinstance(issued, IssuedToken)
    assert 3000 < issued.lifetime <= 3600


@pytest.mark.parametrize(
    ("handler", "message"),
    [
        (
            redirect(300, lambda request: "https://elsewhere.example/"),
            "redirected to https://elsewhere.example/; redirects are not followed",
        ),
        (bare_redirect(302), "redirected to nowhere; redirects are not followed"),
        (
            json_answer({"error_code": "IAM.0002", "error_msg": "bad request"}, 400),
            "refused a token for IAM user bot of account acme, project cn-north-4 (HTTP 400: "
            "IAM.0002 bad request)",
        ),
    ],
)
async def test_a_token_refusal_or_redirect_at_the_status_bounds_is_named(
    handler: Handler, message: str
) -> None:
    """A 300 and a 302 without Location are redirects; a 400 is a refusal."""
    iam, issued = await issue_from(handler)
    assert isinstance(issued, RunAborted)
    assert str(issued).startswith(f"IAM at {iam.url} {message}")


async def test_an_endless_iam_token_answer_says_it_was_not_read() -> None:
    """IAM streaming without end: the message names the limit, the status, and that it was
    not read."""
    async with serve(streamed(b"{" * 65536, most=64 * MIB)) as iam:
        issue = IamTokens(make_transport(), timeout=30)
        with anyio.fail_after(20), pytest.raises(RunAborted) as caught:
            await issue(IamIdentity(iam.url, "acme", "bot", "cn-north-4"), "pw-SENTINEL-x")
    assert str(caught.value) == (
        f"IAM at {iam.url} answered more than 4,194,304 bytes (HTTP 200); it was not read"
    )


@pytest.mark.parametrize(
    ("handler", "message"),
    [
        (
            redirect(300, lambda request: "https://elsewhere.example/"),
            "redirected, and redirects are not followed (HTTP 300)",
        ),
        (
            json_answer({"error_code": "IAM.0002", "error_msg": "bad"}, 400),
            "refused (HTTP 400: IAM.0002 bad); try again later",
        ),
        (json_answer({}, 403), "refused (HTTP 403); check the access key pair"),
        (streamed(b"{" * 65536, most=64 * MIB), "answered more than 4,194,304 bytes (HTTP 200)"),
        (json_answer(["projects"]), "answered without a `projects` list"),
        (
            json_answer({"projects": [{"id": f"id{n}"} for n in range(12)]}),
            "has 12 projects named cn-north-4 (id0, id1, id2, id3, id4, id5, id6, id7, id8, id9);",
        ),
    ],
)
async def test_each_failed_project_lookup_at_the_bounds_says_why(
    handler: Handler, message: str
) -> None:
    """A 300 is a redirect, a 400 a refusal to retry later, a 403 a key problem; an endless
    answer, a list that is not an object, and twelve matches (ten named) each say so."""
    iam, found = await look_up(handler)
    assert isinstance(found, RunAborted | CredentialsError)
    prefix = f"cannot look up the IAM project id of cn-north-4 for X-Project-Id: IAM at {iam.url} "
    assert str(found).startswith(prefix + message), str(found)


# -- TLS: --ca-bundle is what the endpoint and IAM are verified against ----------------------


@pytest.fixture
def tls(tmp_path: Path) -> tuple[ssl.SSLContext, Path]:
    """A server context with a certificate for 127.0.0.1 from a throwaway CA, and that CA's
    certificate as a PEM file (what --ca-bundle names)."""
    authority = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(server)
    bundle = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(bundle))
    return server, bundle


async def test_a_ca_bundle_is_trusted_for_the_endpoint_and_nothing_else_is(
    tls: tuple[ssl.SSLContext, Path],
) -> None:
    """Over https, a server signed by the --ca-bundle CA is answered; without the bundle its
    certificate is not trusted: a clean 'cannot connect', and nothing reaches it."""
    context, bundle = tls
    async with serve(nothing_expected, tls=context) as endpoint:
        for transport in (make_transport(ca_bundle=bundle), make_transport()):
            async with open_api(
                endpoint.url, StaticToken(TOKEN), concurrency=1, timeout=5, transport=transport
            ) as api:
                with anyio.fail_after(20):
                    attempt = await call(api, "put")
            if transport.ssl_context is not None:
                assert attempt.verdict is Verdict.OK
                assert len(endpoint.seen) == 1
            else:
                assert (attempt.verdict, attempt.ambiguous) == (Verdict.RETRY, False)
                assert attempt.error is not None
                assert "certificate verify failed" in attempt.error
    assert len(endpoint.seen) == 1


async def test_iam_is_verified_against_the_ca_bundle_too(
    tls: tuple[ssl.SSLContext, Path],
) -> None:
    """A token from an https IAM signed by the --ca-bundle CA is issued; without the bundle
    the certificate is refused and the password is never sent."""
    context, bundle = tls
    answer = json_answer(ISSUED, 201, **{"X-Subject-Token": "tok-1234567890"})
    async with serve(answer, tls=context) as iam:
        identity = dataclasses.replace(IAM_ID, endpoint=iam.url)
        with anyio.fail_after(20):
            issued = await IamTokens(make_transport(ca_bundle=bundle), timeout=5)(identity, "pw")
        with anyio.fail_after(20), pytest.raises(RunAborted) as refused:
            await IamTokens(make_transport(), timeout=5)(identity, "pw")
    assert issued == IssuedToken("tok-1234567890", 86400.0)
    assert str(refused.value) == (
        f"no token for IAM user bot of account acme: cannot reach IAM at {iam.url} "
        "(ClientConnectorCertificateError)"
    )
    assert len(iam.seen) == 1


@pytest.mark.parametrize(
    ("content", "reason"),
    [(None, "No such file or directory"), ("not a certificate\n", "[X509: NO_CERTIFICATE")],
)
def test_a_ca_bundle_that_cannot_be_loaded_says_why(
    tmp_path: Path, content: str | None, reason: str
) -> None:
    """--ca-bundle naming a missing file, or one holding no certificate, is a usage error
    naming the file and the reason."""
    bundle = tmp_path / "ca.pem"
    if content is not None:
        bundle.write_text(content)
    with pytest.raises(UsageError) as caught:
        make_transport(ca_bundle=bundle)
    assert str(caught.value).startswith(f"--ca-bundle {bundle}: cannot load it: {reason}")


# -- classification at its edges: bare statuses, error shapes, Retry-After forms ----------------


def answering(status: int, body: bytes = b"", **headers: str) -> Handler:
    """A server answering ``status`` with ``body`` as it is."""

    async def answer(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, body=body, headers=headers)

    return answer


async def put_to(handler: Handler) -> Attempt:
    """The thumbnail PUT against a server answering with ``handler``."""
    async with (
        serve(handler) as endpoint,
        open_api(endpoint.url, StaticToken(TOKEN), concurrency=1, timeout=5) as api,
    ):
        with anyio.fail_after(20):
            return await call(api, "put")


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (429, b"", Attempt(Verdict.THROTTLED, 429)),
        (404, b"", Attempt(Verdict.PERMANENT, 404, None, "Not Found")),
        (
            400,
            b'{"error_code": "PM.7"}',
            Attempt(Verdict.PERMANENT, 400, "PM.7", "Bad Request"),
        ),
        (
            400,
            b'{"errorCode": "PM.8", "errorMsg": "camel"}',
            Attempt(Verdict.PERMANENT, 400, "PM.8", "camel"),
        ),
        (
            400,
            b'{"error": {"code": 17}}',
            Attempt(Verdict.PERMANENT, 400, "17", "Bad Request"),
        ),
        (
            400,
            '{"error_code": "PM.9", "error_msg": "wide"}'.encode("utf-16-le"),
            Attempt(Verdict.PERMANENT, 400, "PM.9", "wide"),
        ),
        (
            400,
            '{"error_code": "PM.9", "error_msg": "marked"}'.encode("utf-16"),
            Attempt(Verdict.PERMANENT, 400, "PM.9", "marked"),
        ),
        (400, b'{"error_msg": "words only"}', Attempt(Verdict.PERMANENT, 400, None, "words only")),
        (
            400,
            '{"error_code": "PM.02153001", "error_msg": "x\ud800"}'.encode(
                "utf-8", "surrogatepass"
            ),
            Attempt(Verdict.THROTTLED, 400, "PM.02153001", "x\ud800"),
        ),
    ],
)
async def test_a_bare_or_oddly_shaped_failure_is_classified_by_status_and_code(
    status: int, body: bytes, expected: Attempt
) -> None:
    """A bare 429 is throttling; a failure without a message takes the status's reason; a code
    or a message alone, the camelCase shape, a nested numeric code, a UTF-16 body (with or
    without its byte-order mark) and one holding a stray surrogate (as json.loads reads it) are
    each read."""
    assert await put_to(answering(status, body)) == expected


@pytest.mark.parametrize(
    ("header", "seconds"),
    [(" 5 ", 5.0), ("soon", None), (email.utils.formatdate(0, usegmt=True), 0.0)],
)
async def test_a_retry_after_is_read_trimmed_and_never_negative(
    header: str, seconds: float | None
) -> None:
    """Retry-After is read with spaces around it; one that is not a number or a date is
    ignored; a date in the past means 'now'."""
    attempt = await put_to(answering(429, b"", **{"Retry-After": header}))
    assert (attempt.verdict, attempt.retry_after) == (Verdict.THROTTLED, seconds)


async def test_a_throttled_or_failed_answer_keeps_its_request_id_and_retry_after() -> None:
    """A 429 and a 503 each keep the X-Request-Id and Retry-After they came with."""
    headers = {"X-Request-Id": "req-7", "Retry-After": "4"}
    throttled = await put_to(answering(429, b"", **headers))
    failed = await put_to(answering(503, b"", **headers))
    assert (throttled.verdict, throttled.request_id, throttled.retry_after) == (
        Verdict.THROTTLED,
        "req-7",
        4.0,
    )
    assert (failed.verdict, failed.request_id, failed.retry_after) == (Verdict.RETRY, "req-7", 4.0)


async def test_a_stale_token_message_is_recognised_whatever_its_case() -> None:
    """A 401 without a stale-token code saying 'The Token Must Be Updated' renews the token."""
    stale = {"error_code": "APIGW.0101", "error_msg": "The Token Must Be Updated."}

    async def handle(request: web.Request) -> web.StreamResponse:
        if request.headers.get("X-Auth-Token") == "tok-first-000000":
            return web.json_response(stale, status=401)
        return web.json_response({"status": "success", "result": {}})

    credentials = issuing("tok-first-000000", "tok-second-00000")
    async with (
        serve(handle) as endpoint,
        open_api(endpoint.url, credentials, concurrency=1, timeout=5) as api,
    ):
        with anyio.fail_after(20):
            attempt = await call(api, "put")
    assert attempt.verdict is Verdict.OK
    assert len(endpoint.seen) == 2


async def test_a_stale_token_code_on_a_403_is_no_reason_to_renew() -> None:
    """Only a 401 is worth a renewal: a 403 carrying APIGW.0301 is sent once and refused."""
    body = json.dumps({"error_code": "APIGW.0301", "error_msg": "token must be updated"})
    credentials = issuing("tok-first-000000", "tok-second-00000")
    async with (
        serve(answering(403, body.encode())) as endpoint,
        open_api(endpoint.url, credentials, concurrency=1, timeout=5) as api,
    ):
        with anyio.fail_after(20):
            attempt = await call(api, "put")
    assert attempt.verdict is Verdict.FORBIDDEN
    assert len(endpoint.seen) == 1


def test_plain_http_messages_name_the_url_and_what_it_is_for() -> None:
    """The refusal and the --insecure warning name the URL and which URL it is; https and
    loopback (LOCALHOST and [::1] too) pass without a word."""
    with pytest.raises(UsageError) as caught:
        check_url("http://10.0.0.5:8080", insecure=False, what="IAM endpoint")
    assert str(caught.value) == (
        "the IAM endpoint http://10.0.0.5:8080 is plain http: credentials would cross the "
        "network unencrypted; use https, or pass --insecure if you really mean it"
    )
    assert check_url("http://10.0.0.5:8080", insecure=True) == (
        "--insecure: the endpoint http://10.0.0.5:8080 is plain http; credentials are sent "
        "unencrypted"
    )
    for url in ("http://LOCALHOST:8080", "http://[::1]:80", "https://10.0.0.5"):
        assert check_url(url, insecure=False) is None
    with pytest.raises(UsageError) as userinfo:
        check_url("https://bot:pw@example.com", insecure=False, what="IAM endpoint")
    assert str(userinfo.value).startswith("the IAM endpoint URL must not hold")


# -- reading an answer: the limits hold for chunked and compressed bodies too -------------------


def chunked(body: bytes, **headers: str) -> Handler:
    """A 200 sending ``body`` chunked (no Content-Length), in pieces of 64 KiB."""

    async def answer(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers=headers)
        response.enable_chunked_encoding()
        await response.prepare(request)
        for start in range(0, len(body), 65536):
            await response.write(body[start : start + 65536])
        return response

    return answer


async def test_a_chunked_image_of_exactly_the_limit_is_read_and_one_byte_more_is_not() -> None:
    """Without Content-Length the 6 MiB image limit still holds to the byte."""
    image = b"\x89PNG\r\n\x1a\n".ljust(MAX_IMAGE_ANSWER_BYTES, b"\0")
    got = []
    for body in (image, image + b"\0"):
        async with (
            serve(chunked(body)) as endpoint,
            open_api(endpoint.url, StaticToken(TOKEN), concurrency=1, timeout=30) as api,
        ):
            with anyio.fail_after(20):
                got.append(await api.download_image(P1, img_url()))
    (fits, data), (past, none) = got
    assert (fits.verdict, data) == (Verdict.OK, image)
    assert (past.verdict, none) == (Verdict.PERMANENT, None)
    assert past.error is not None
    assert past.error.startswith("the answer (HTTP 200) is larger than 6,291,456 bytes")


def stored_gzip(data: bytes) -> bytes:
    """``data`` as gzip made of stored (uncompressed) deflate blocks: 18 + 5 bytes a block of
    up to 65,535 bytes more than ``data``, so the wire size is exact."""
    blocks = [data[start : start + 65535] for start in range(0, len(data), 65535)]
    out = [b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"]
    for index, block in enumerate(blocks):
        final = index == len(blocks) - 1
        out.append(struct.pack("<BHH", final, len(block), len(block) ^ 0xFFFF) + block)
    out.append(struct.pack("<II", zlib.crc32(data) & 0xFFFFFFFF, len(data) & 0xFFFFFFFF))
    return b"".join(out)


def success_of(size: int) -> bytes:
    """A success answer of exactly ``size`` bytes."""
    head, tail = b'{"status": "success", "result": {"pad": "', b'"}}'
    return head + b"p" * (size - len(head) - len(tail)) + tail


async def test_a_compressed_answer_is_bounded_by_its_wire_size_too() -> None:
    """A chunked gzip success of 4 MiB on the wire (less decoded) is read; one byte more on
    the wire is refused, though it decodes to less than the limit."""
    limit = 4 * MIB
    # 64 stored blocks: 18 + 64 * 5 bytes of framing around the data.
    fits = stored_gzip(success_of(limit - 18 - 64 * 5))
    past = stored_gzip(success_of(limit - 18 - 64 * 5 + 1))
    assert (len(fits), len(past)) == (limit, limit + 1)
    attempts = []
    for wire in (fits, past):
        async with (
            serve(chunked(wire, **{"Content-Encoding": "gzip"})) as endpoint,
            open_api(endpoint.url, StaticToken(TOKEN), concurrency=1, timeout=30) as api,
        ):
            with anyio.fail_after(20):
                attempts.append(await call(api, "put"))
    assert attempts[0].verdict is Verdict.OK, attempts[0].error
    assert attempts[1].verdict is Verdict.PERMANENT
    assert attempts[1].error is not None
    assert attempts[1].error.startswith("the answer (HTTP 200) is larger than 4,194,304 bytes")


def test_loopback_never_goes_through_a_proxy_whatever_the_scheme(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With HTTP_PROXY and HTTPS_PROXY set and NO_PROXY empty, loopback URLs (by address or
    as localhost) get no proxy, and any other host gets the one for its scheme."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(name, f"http://{name.lower()}.corp:3128")
    for name in ("NO_PROXY", "no_proxy", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    transport = make_transport()
    for url in ("http://127.0.0.1:8080", "https://127.0.0.1", "https://LOCALHOST/x"):
        assert transport.proxy_for(url) is None, url
    assert transport.proxy_for("http://iam.example") == "http://http_proxy.corp:3128"
    assert transport.proxy_for("https://iam.example") == "http://https_proxy.corp:3128"


async def test_a_refused_tunnel_is_a_clean_retry_and_a_ca_bundle_keeps_the_proxy(
    tls: tuple[ssl.SSLContext, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A transport made with --ca-bundle still takes HTTPS_PROXY; a proxy refusing the CONNECT
    is a retryable 'cannot connect', never 'may have applied', and only the proxy is asked."""
    _, bundle = tls
    remote = "https://projectman-ext.cn-north-4.myhuaweicloud.com"
    async with refusing_proxy() as proxy:
        for name in ("HTTPS_PROXY", "https_proxy"):
            monkeypatch.setenv(name, proxy.url)
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        transport = make_transport(ca_bundle=bundle)
        assert transport.proxy_for(remote) == proxy.url
        async with open_api(
            remote, StaticToken(TOKEN), concurrency=1, timeout=5, transport=transport
        ) as api:
            with anyio.fail_after(20):
                attempt = await call(api, "put")
    assert attempt == Attempt(
        Verdict.RETRY, error="cannot connect: the proxy refused the tunnel (HTTP 403 Forbidden)"
    )
    assert proxy.requests == ["CONNECT projectman-ext.cn-north-4.myhuaweicloud.com:443 HTTP/1.1"]
