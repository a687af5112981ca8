"""The API client against the sandbox over loopback: every answer becomes the right verdict."""

from __future__ import annotations

import contextlib
import dataclasses
import email.utils
import gzip
import json
import time
import tracemalloc

import anyio
import pytest
from aiohttp import web

from batchthumb.auth import AkSk, IamIdentity, IssuedToken, StaticToken
from batchthumb.client import IamProjects, IamTokens, PlanApi, check_url, make_transport, open_api
from batchthumb.errors import CredentialsError, RunAborted, UsageError
from batchthumb.model import MAX_IMAGE_ANSWER_BYTES, MIB, Attempt, Verdict
from batchthumb.sandbox import Fault, RateLimit, Sandbox, SandboxConfig
from tests.conftest import P1, TOKEN, img_url, plan_id
from tests.hostile import (
    Handler,
    Server,
    gzip_bomb,
    json_answer,
    nothing_expected,
    redirect,
    serve,
    streamed,
    tiny_png,
)

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
        attempt, data = await api.download_image(P1, img_url())
        size["bytes"] += 1
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
