"""`batchthumb` against misbehaving servers, end to end: credentials stay with the endpoint,
every answer is bounded, and no secret a server echoes reaches any output.

Each test runs the real CLI in a subprocess against small servers in the test's event loop
(tests/hostile.py) that record everything they receive.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from aiohttp import web

from tests.clihelp import cli, environment, read_report, write_job
from tests.conftest import P1, TOKEN, img_url, plan_id
from tests.hostile import (
    gzip_bomb,
    json_answer,
    nothing_expected,
    redirect,
    refusing_proxy,
    serve,
    streamed,
    tiny_png,
)

if TYPE_CHECKING:
    from tests.conftest import SecretGuard

pytestmark = pytest.mark.anyio

SK = "sk-SENTINEL-hostile-5c1e0b"
SECURITY_TOKEN = "sectok-SENTINEL-hostile-77d2a4"
PASSWORD = "pw-SENTINEL-hostile-19fa"
RUN = ("--no-progress", "--backoff", "0")


def aksk_env() -> dict[str, str]:
    """Temporary AK/SK credentials (with a security token and the IAM project id, so that no
    IAM lookup comes first) from the SDK's variables."""
    return environment(
        HUAWEICLOUD_SDK_AK="AKSENTINELHOSTILE001",
        HUAWEICLOUD_SDK_SK=SK,
        HUAWEICLOUD_SDK_SECURITY_TOKEN=SECURITY_TOKEN,
        HUAWEICLOUD_SDK_PROJECT_ID="0a1b2c3d4e5f40718293a4b5c6d7e8f9",
    )


# -- row 1: redirects are never followed -------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_a_redirected_put_fails_naming_the_location_and_the_other_host_gets_nothing(
    tmp_path: Path, status: int
) -> None:
    """A PUT answered with a redirect (carrying the token back in its query) is failed once,
    naming the masked Location; the other server receives nothing and the run exits 1."""
    async with serve(nothing_expected) as elsewhere:

        def location(request: web.Request) -> str:
            return f"{elsewhere.url}{request.path}?leak={request.headers.get('X-Auth-Token')}"

        async with serve(redirect(status, location)) as endpoint:
            job = write_job(tmp_path / "job.yaml", endpoint=endpoint.url, plans=[1, 2])
            result = await cli("run", str(job), *RUN, "--no-snapshot")
    assert result.code == 1, result.err
    assert elsewhere.seen == []
    assert [s.method for s in endpoint.seen] == ["PUT", "PUT"]  # not retried either
    records = read_report(tmp_path / "job.results.jsonl")  # read_report: no token in it
    assert {r["outcome"] for r in records} == {"failed"}
    for record in records:
        assert record["http_status"] == status
        assert f"the server redirected to {elsewhere.url}/v3/plan/" in record["error"]
        assert "?leak=***" in record["error"]


async def test_a_redirected_plan_list_stops_the_run_before_any_change(tmp_path: Path) -> None:
    """A redirect on the snapshot's list call fails the project's items (exit 1) naming the
    Location, in the report too; no PUT."""
    async with serve(nothing_expected) as elsewhere:
        target = f"{elsewhere.url}/v3/plan/{P1}/managements"
        async with serve(redirect(302, lambda request: target)) as endpoint:
            job = write_job(tmp_path / "job.yaml", endpoint=endpoint.url, plans=[1])
            result = await cli("run", str(job), *RUN)
    assert result.code == 1
    assert f"HTTP 302: the server redirected to {target}" in result.err
    [failed] = read_report(tmp_path / "job.results.jsonl")
    assert failed["outcome"] == "failed" and target in failed["error"]
    assert elsewhere.seen == []
    assert [s.method for s in endpoint.seen] == ["POST"]


async def test_with_aksk_the_security_token_never_follows_a_redirect(
    tmp_path: Path, guard: SecretGuard
) -> None:
    """With AK/SK, a 307 to another server (plain http) leaves X-Security-Token with the
    endpoint alone, and neither the SK nor the security token appears in any output."""
    guard.watch(SK, SECURITY_TOKEN)
    async with (
        serve(nothing_expected) as elsewhere,
        serve(redirect(307, lambda request: elsewhere.url + "/x")) as endpoint,
    ):
        job = write_job(
            tmp_path / "job.yaml", endpoint=endpoint.url, plans=[1], settings="auth:\n  aksk: {}"
        )
        result = await cli("run", str(job), *RUN, "--no-snapshot", env=aksk_env())
    guard.output("stderr", result.err)
    assert result.code == 1
    assert endpoint.headers_named("X-Security-Token") == [SECURITY_TOKEN]
    assert elsewhere.seen == []


async def test_a_redirect_from_iam_stops_the_run_and_the_password_goes_nowhere_else(
    tmp_path: Path, guard: SecretGuard
) -> None:
    """IAM answering 308 to another server stops the run (exit 3) naming the Location; the
    other server never sees the password, and nothing reaches the API."""
    guard.watch(PASSWORD)
    async with (
        serve(nothing_expected) as elsewhere,
        serve(nothing_expected) as endpoint,
        serve(redirect(308, lambda request: elsewhere.url + "/v3/auth/tokens")) as iam,
    ):
        auth = (
            f"auth:\n  iam: {{endpoint: {iam.url}, domain: acme, user: bot, "
            "password_env: BT_PW, project: cn-north-4}"
        )
        job = write_job(tmp_path / "job.yaml", endpoint=endpoint.url, plans=[1], settings=auth)
        result = await cli("run", str(job), *RUN, env=environment(BT_PW=PASSWORD))
    guard.output("stderr", result.err)
    assert result.code == 3
    assert f"redirected to {elsewhere.url}/v3/auth/tokens" in result.err
    assert [s.method for s in iam.seen] == ["POST"]
    assert elsewhere.seen == []
    assert endpoint.seen == []


async def test_a_redirected_upload_fails_the_item_and_the_image_goes_nowhere_else(
    tmp_path: Path,
) -> None:
    """An image upload answered 301 fails its item naming the Location; nothing is re-sent."""
    (tmp_path / "logo.png").write_bytes(tiny_png())
    async with (
        serve(nothing_expected) as elsewhere,
        serve(redirect(301, lambda request: elsewhere.url + "/up")) as endpoint,
    ):
        job = tmp_path / "job.yaml"
        job.write_text(
            f"endpoint: {endpoint.url}\nitems:\n"
            f"  - {{project_id: {P1}, plan_id: {plan_id(1)}, image: logo.png}}\n"
        )
        result = await cli("run", str(job), *RUN, "--no-snapshot")
    assert result.code == 1
    (record,) = read_report(tmp_path / "job.results.jsonl")
    assert record["error"].startswith(f"upload failed: the server redirected to {elsewhere.url}")
    assert elsewhere.seen == []
    assert [s.path for s in endpoint.seen] == [f"/v2/{P1}/img"]


# -- row 2: every message masked by value; no credentials in a URL --------------------------


async def test_a_401_echoing_the_token_is_masked_on_stderr_in_the_report_and_the_log(
    tmp_path: Path, guard: SecretGuard
) -> None:
    """A 401 whose error_msg echoes the token aborts (exit 3) with the token masked as *** on
    stderr, in the report and in --log-json."""
    guard.watch(TOKEN)

    async def refuse(request: web.Request) -> web.StreamResponse:
        token = request.headers.get("X-Auth-Token", "")
        body = {"error_code": "APIGW.0302", "error_msg": f"token {token} is not accepted"}
        return web.json_response(body, status=401)

    async with serve(refuse) as endpoint:
        job = write_job(tmp_path / "job.yaml", endpoint=endpoint.url, plans=[1, 2])
        result = await cli(
            "run",
            str(job),
            *RUN,
            "--no-snapshot",
            "--log-json",
            "--log-file",
            "run.log",
            cwd=tmp_path,
        )
    guard.output("stderr", result.err)
    assert result.code == 3
    assert endpoint.headers_named("X-Auth-Token")[0] == TOKEN  # the echo held the real token
    assert "token *** is not accepted" in result.err
    assert "token *** is not accepted" in (tmp_path / "run.log").read_text()


async def test_an_aksk_refusal_echoing_the_canonical_request_is_masked(
    tmp_path: Path, guard: SecretGuard
) -> None:
    """An AK/SK refusal that quotes the canonical request, x-security-token and all, reaches
    stderr and the report with the security token masked."""
    guard.watch(SK, SECURITY_TOKEN)

    async def refuse(request: web.Request) -> web.StreamResponse:
        canonical = "\n".join(
            [
                request.method,
                request.path + "/",
                "",
                f"content-type:{request.headers.get('Content-Type')}",
                f"x-sdk-date:{request.headers.get('X-Sdk-Date')}",
                f"x-security-token:{request.headers.get('X-Security-Token')}",
            ]
        )
        msg = f"The request signature we calculated does not match; canonical request: {canonical}"
        return web.json_response({"error_code": "APIGW.0101", "error_msg": msg}, status=401)

    async with serve(refuse) as endpoint:
        job = write_job(
            tmp_path / "job.yaml", endpoint=endpoint.url, plans=[1], settings="auth:\n  aksk: {}"
        )
        result = await cli("run", str(job), *RUN, "--no-snapshot", env=aksk_env())
    guard.output("stderr", result.err)
    assert result.code == 3
    assert "x-security-token:***" in result.err
    assert endpoint.headers_named("X-Security-Token") == [SECURITY_TOKEN]


@pytest.mark.parametrize("where", ["job", "flag", "iam"])
async def test_a_password_in_an_endpoint_url_is_refused_and_never_shown(
    tmp_path: Path, guard: SecretGuard, where: str
) -> None:
    """userinfo in the endpoint (job or --endpoint) or the IAM endpoint exits 2 saying where
    credentials belong; the password appears nowhere (not in a start event) and nothing is sent."""
    guard.watch(PASSWORD)
    async with serve(nothing_expected) as server:
        with_password = server.url.replace("http://", f"http://bot:{PASSWORD}@")
        endpoint = with_password if where == "job" else server.url
        settings = ""
        if where == "iam":
            settings = (
                f"auth:\n  iam: {{endpoint: '{with_password}', domain: acme, user: bot, "
                "password_env: BT_PW, project: cn-north-4}"
            )
        job = guard.holds_secrets(
            write_job(tmp_path / "job.yaml", endpoint=endpoint, plans=[1], settings=settings)
        )
        flags = ["--endpoint", with_password] if where == "flag" else []
        result = await cli(
            "run",
            str(job),
            *RUN,
            *flags,
            "--log-json",
            "--log-file",
            "run.log",
            env=environment(BT_PW=PASSWORD),
            cwd=tmp_path,
        )
    guard.output("stderr", result.err)
    assert result.code == 2
    assert "must not hold a user name or password" in result.err
    assert "credentials belong in an `auth:` section" in result.err
    assert server.seen == []


@pytest.mark.parametrize("region", ["evil.example/", "x@evil.example#", "cn-north-4.evil"])
async def test_a_region_that_is_not_one_is_refused_before_it_becomes_a_host(
    tmp_path: Path, region: str
) -> None:
    """--region must be a region name: anything else would turn the endpoint's host into
    another one (projectman-ext.evil.example), so it exits 2 before anything is sent."""
    job = write_job(tmp_path / "job.yaml", endpoint=None, plans=[1])
    result = await cli("run", str(job), *RUN, "--region", region)
    assert result.code == 2
    assert f"--region {region!r} is not a region name like cn-north-4" in result.err


async def test_a_token_with_a_line_break_is_refused_at_load_even_in_a_dry_run(
    tmp_path: Path, guard: SecretGuard
) -> None:
    """A token holding CR/LF exits 2 with a message saying where (run and --dry-run alike),
    never a ValueError traceback, and the token is not printed."""
    bad = "tokSENTINEL-1234\r\nX-Injected: yes"
    guard.watch("tokSENTINEL-1234")
    async with serve(nothing_expected) as endpoint:
        job = write_job(tmp_path / "job.yaml", endpoint=endpoint.url, plans=[1])
        env = environment(BATCHTHUMB_TOKEN=bad)
        ran = await cli("run", str(job), *RUN, env=env)
        dry = await cli("run", str(job), "--dry-run", env=env)
    for result in (ran, dry):
        guard.output("stderr", result.err)
        guard.output("stdout", result.out)
        assert result.code == 2
        assert "the token in $BATCHTHUMB_TOKEN contains a line break (U+000D at character 17)" in (
            result.err
        )
    assert endpoint.seen == []


# -- rows 3 and 4: every answer bounded --------------------------------------------------------


async def test_a_gzip_bomb_answer_fails_the_item_without_inflating(tmp_path: Path) -> None:
    """A 200 whose gzip body would inflate to 256 MiB fails its item at the 4 MiB limit."""
    bomb = gzip_bomb(256)

    async def send_bomb(request: web.Request) -> web.StreamResponse:
        return web.Response(
            body=bomb, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"}
        )

    async with serve(send_bomb) as endpoint:
        job = write_job(tmp_path / "job.yaml", endpoint=endpoint.url, plans=[1])
        result = await cli("run", str(job), *RUN, "--no-snapshot")
    assert result.code == 1
    (record,) = read_report(tmp_path / "job.results.jsonl")
    assert record["error"].startswith("the answer (HTTP 200) is larger than 4,194,304 bytes")
    assert "the server may have applied the request" in record["error"]


async def test_an_endless_answer_fails_at_the_limit_and_the_flag_raises_it(
    tmp_path: Path,
) -> None:
    """A 200 streamed without Content-Length fails at 4 MiB; --max-answer-mb 8 reads a 5 MiB
    answer that says success."""
    padding = " " * (5 * 1024 * 1024)

    async with serve(streamed(b"x" * 65536, most=64 * 1024 * 1024)) as endless:
        job = write_job(tmp_path / "a.yaml", endpoint=endless.url, plans=[1])
        refused = await cli("run", str(job), *RUN, "--no-snapshot")
    assert refused.code == 1
    (record,) = read_report(tmp_path / "a.results.jsonl")
    assert "is larger than 4,194,304 bytes" in record["error"]

    async with serve(json_answer({"status": "success", "pad": padding})) as big:
        job = write_job(tmp_path / "b.yaml", endpoint=big.url, plans=[1])
        default = await cli("run", str(job), *RUN, "--no-snapshot")
        raised = await cli("run", str(job), *RUN, "--no-snapshot", "--max-answer-mb", "8")
    assert default.code == 1
    assert raised.code == 0, raised.err


async def test_a_huge_error_message_is_cut_short_and_masked_in_the_report(
    tmp_path: Path, guard: SecretGuard
) -> None:
    """A 400 with a 1 MB error_msg that starts by echoing the token keeps 500 characters of it
    in the report, token masked, and says how much was left out."""
    guard.watch(TOKEN)

    async def verbose(request: web.Request) -> web.StreamResponse:
        msg = f"bad {request.headers.get('X-Auth-Token')} " + "x" * 1_000_000
        return web.json_response({"error_code": "PM.02175006", "error_msg": msg}, status=400)

    async with serve(verbose) as endpoint:
        job = write_job(tmp_path / "job.yaml", endpoint=endpoint.url, plans=[1, 2])
        result = await cli("run", str(job), *RUN, "--no-snapshot")
    guard.output("stderr", result.err)
    assert result.code == 1
    records = read_report(tmp_path / "job.results.jsonl")
    for record in records:
        assert record["error"].startswith("bad *** xxx")
        left_out = len("bad *** ") + 1_000_000 - 500
        assert record["error"].endswith(f"... ({left_out:,} more characters)")
        assert len(record["error"]) < 600
    assert (tmp_path / "job.results.jsonl").stat().st_size < 4000


def plan(n: int) -> dict[str, str]:
    return {"id": plan_id(n), "name": f"Plan {n}", "type": "gantt"}


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("same page forever", "page 2 repeats plans already listed"),
        ("total changes", "the total changed from 1000 to 1001 at page 2"),
        ("more than total", "400 plans listed by page 2, more than its total 300"),
        ("longer than asked", "page 1 has 201 plans, 200 were asked for"),
        ("pages without end", "the list goes on past 3 pages of 200 plans"),
    ],
)
async def test_a_plan_list_that_does_not_add_up_stops_the_run_clearly(
    tmp_path: Path, case: str, expected: str
) -> None:
    """A list that repeats a page with total 10^9, changes its total, holds more plans than its
    total, sends a page longer than asked, or never ends (past --max-list-pages) fails the
    project's items (exit 1) with what was wrong, after a bounded number of list calls and no
    PUT."""

    async def pages(request: web.Request) -> web.StreamResponse:
        number = json.loads(await request.read())["page_no"]
        if case == "same page forever":
            body: dict[str, object] = {"plans": [plan(n) for n in range(200)], "total": 10**9}
        elif case == "total changes":
            body = {"plans": [plan(number * 200 + n) for n in range(200)], "total": 999 + number}
        elif case == "more than total":
            body = {"plans": [plan(number * 200 + n) for n in range(200)], "total": 300}
        elif case == "longer than asked":
            body = {"plans": [plan(n) for n in range(201)], "total": 201}
        else:
            body = {"plans": [plan(number * 200 + n) for n in range(200)], "total": 10**9}
        return web.json_response(body)

    async with serve(pages) as endpoint:
        job = write_job(tmp_path / "job.yaml", endpoint=endpoint.url, plans=[1])
        result = await cli("run", str(job), *RUN, "--max-list-pages", "3")
    assert result.code == 1
    assert f"cannot list the plans of project {P1}: {expected}" in result.err
    assert {s.method for s in endpoint.seen} == {"POST"}
    assert len(endpoint.seen) <= 3
    [failed] = read_report(tmp_path / "job.results.jsonl")
    assert failed["outcome"] == "failed" and expected in failed["error"]


# -- row 12: answers that only look like success, proxies that refuse ---------------------------


@pytest.mark.parametrize("body", [{}, {"unrelated": 1}, {"status": "maybe"}, [1, 2]])
async def test_a_200_without_status_or_result_is_not_a_success(
    tmp_path: Path, body: object
) -> None:
    """HTTP 200 with `{}`, unrelated fields, an unknown status or a non-object fails the item."""
    async with serve(json_answer(body)) as endpoint:
        job = write_job(tmp_path / "job.yaml", endpoint=endpoint.url, plans=[1])
        result = await cli("run", str(job), *RUN, "--no-snapshot")
    assert result.code == 1
    (record,) = read_report(tmp_path / "job.results.jsonl")
    assert record["outcome"] == "failed"
    assert record["error"].startswith("unexpected answer (no `status` or `result`): ")


async def test_a_proxy_that_refuses_the_tunnel_is_cannot_connect_not_maybe_applied(
    tmp_path: Path,
) -> None:
    """A proxy answering CONNECT with 403 fails the item as "cannot connect" (retried, never
    "the server may have applied it"); the proxy sees only CONNECT requests."""
    async with refusing_proxy() as proxy:
        job = write_job(
            tmp_path / "job.yaml",
            endpoint="https://projectman-ext.cn-north-4.myhuaweicloud.com",
            plans=[1],
        )
        proxies = {"HTTPS_PROXY": proxy.url, "https_proxy": proxy.url, "no_proxy": ""}
        result = await cli(
            "run", str(job), *RUN, "--retries", "1", "--no-snapshot", env=environment(**proxies)
        )
    assert result.code == 1
    (record,) = read_report(tmp_path / "job.results.jsonl")
    assert record["error"] == "cannot connect: the proxy refused the tunnel (HTTP 403 Forbidden)"
    assert (
        proxy.requests
        == [
            "CONNECT projectman-ext.cn-north-4.myhuaweicloud.com:443 HTTP/1.1",
        ]
        * 2
    )  # the attempt and its one retry


async def test_a_list_without_total_is_read_to_its_first_short_page_each_plan_once(
    tmp_path: Path,
) -> None:
    """Without `total`, export follows pages until one is shorter than asked; a plan the list
    shifted onto two pages is listed once."""

    async def pages(request: web.Request) -> web.StreamResponse:
        number = json.loads(await request.read())["page_no"]
        first = (number - 1) * 200 - (
            number - 1
        )  # each page repeats the last plan of the one before
        count = 200 if number < 3 else 50
        listed = [{**plan(first + n), "img_url": img_url(first + n)} for n in range(count)]
        return web.json_response({"plans": listed})

    async with serve(pages) as endpoint:
        result = await cli(
            "export",
            "--project",
            P1,
            "-o",
            str(tmp_path / "out.yaml"),
            "--endpoint",
            endpoint.url,
            "--no-progress",
        )
    assert result.code == 0, result.err
    assert len(endpoint.seen) == 3
    assert "448 of 448 plans with a thumbnail" in result.out
