"""Tests for the sandbox's routes and authentication, over real loopback HTTP."""

from __future__ import annotations

import io
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import aiohttp
import anyio
import pytest

from batchthumb.sandbox import IamUser, Sandbox, SandboxConfig
from batchthumb.sandbox.state import Creator
from batchthumb.sandbox.undocumented import IAM_PROJECT_ID
from batchthumb.signing import sign_request
from tests.imagedata import bmp, gif, jpeg, png, webp

P = "919bb351ef424e2daaf3dd80c179fae9"
Q = "0792b7d26cb74bd799cbae80063dc74a"
PLAN = "bf56512ab4e544c29d03d068711ca56a"
TOKEN = "a-static-token-0123"
IMG = f"/v1/upload/{P}/202506/1749730526922581391.png"
PUT_PATH = f"/v3/plan/{P}/management/{PLAN}/img"
PNG = png() + bytes(range(256)) * 4
AK = "AKSANDBOXTEST000001"
SK = "sk-sandbox-test-secret-0123456789"
WALL_START = 1_750_000_000.0


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@asynccontextmanager
async def running(
    sandbox: Sandbox | None = None, token: str | None = TOKEN
) -> AsyncIterator[tuple[Sandbox, aiohttp.ClientSession]]:
    """Serve a sandbox on port 0 and yield it with a client session bound to its URL."""
    if sandbox is None:
        # Autocreation asked for: these tests are about shapes, not about which ids exist.
        sandbox = Sandbox(SandboxConfig(tokens=frozenset({TOKEN}), autocreate=True))
    headers = {"X-Auth-Token": token} if token is not None else {}
    with anyio.fail_after(20):
        async with (
            sandbox.serve() as url,
            aiohttp.ClientSession(url, headers=headers) as http,
        ):
            yield sandbox, http


async def call(
    http: aiohttp.ClientSession, method: str, path: str, **kwargs: Any
) -> tuple[int, Any, aiohttp.ClientResponse]:
    """Send one request; return (status, parsed JSON body or None, response)."""
    async with http.request(method, path, **kwargs) as response:
        raw = await response.read()
        body = None
        if response.content_type == "application/json":
            body = await response.json()
        else:
            body = raw
        return response.status, body, response


def unwrapped(page: dict[str, Any]) -> list[dict[str, Any]]:
    """The plans of a list answer, whose elements are documented as {result, status}."""
    assert all(set(element) == {"result", "status"} for element in page["plans"])
    return [element["result"] for element in page["plans"]]


def form(data: bytes, field: str = "file", filename: str = "x.png") -> aiohttp.FormData:
    """A multipart body with one file field."""
    body = aiohttp.FormData()
    # A file object, as large raw bytes make aiohttp warn about blocking the event loop.
    body.add_field(field, io.BytesIO(data), filename=filename, content_type="image/png")
    return body


# -- PUT thumbnail ----------------------------------------------------------------------


@pytest.mark.anyio
async def test_put_success_shape_and_state() -> None:
    """A valid PUT answers the documented body, changes the plan and counts exactly once."""
    sandbox = Sandbox(SandboxConfig(tokens=frozenset({TOKEN})))
    sandbox.add_plan(P, name="Roadmap", type="gantt", plan_id=PLAN)
    async with running(sandbox) as (sb, http):
        status, body, response = await call(http, "PUT", PUT_PATH, json={"img_url": IMG})
        _, _, second = await call(http, "PUT", PUT_PATH, json={"img_url": IMG, "extra": 1})
    assert status == 200
    assert body == {
        "result": {
            "id": PLAN,
            "name": "Roadmap",
            "type": "gantt",
            "project_id": P,
            "img_url": IMG,
            "creator": {
                "user_id": sb.plans(P)[0].creator.user_id,
                "domain_id": sb.plans(P)[0].creator.domain_id,
                "nick_name": "sandbox",
                "first_name": "sandbox",
            },
        },
        "status": "success",
    }
    assert response.headers["Content-Type"].startswith("application/json")
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-Id"])
    assert response.headers["X-Request-Id"] != second.headers["X-Request-Id"]
    plan = sb.plan(P, PLAN)
    assert plan is not None
    assert plan.img_url == IMG
    assert sb.stats.puts == 2
    assert sb.stats.applied == {(P, PLAN): 2}
    assert sb.stats.status_counts == {200: 2}
    assert sb.stats.requests == 2
    assert sb.stats.first_put_at is not None
    assert sb.stats.last_put_at is not None


@pytest.mark.anyio
async def test_put_autocreates_unknown_project_and_plan() -> None:
    """With autocreate (asked for; off by default) a PUT to an unknown project and plan
    creates both."""
    async with running() as (sb, http):
        status, _, _ = await call(http, "PUT", PUT_PATH, json={"img_url": IMG})
    assert status == 200
    assert [plan.id for plan in sb.plans(P)] == [PLAN]
    assert sb.stats.applied[(P, PLAN)] == 1


@pytest.mark.anyio
async def test_put_without_autocreate_rejects_unknown_project_and_plan() -> None:
    """By default, as the API: an unknown project is PM.02152005, an unknown plan PM.02175006."""
    sandbox = Sandbox(SandboxConfig(tokens=frozenset({TOKEN})))
    async with running(sandbox) as (sb, http):
        no_project = await call(http, "PUT", PUT_PATH, json={"img_url": IMG})
        sb.add_project(P)
        no_plan = await call(http, "PUT", PUT_PATH, json={"img_url": IMG})
    assert no_project[:2] == (
        400,
        {
            "error_code": "PM.02152005",
            "error_msg": "The project does not exist or has been deleted.",
        },
    )
    assert no_plan[0] == 400
    assert no_plan[1]["error_code"] == "PM.02175006"
    assert "does not exist" in no_plan[1]["error_msg"]
    assert sb.plans(P) == []
    assert sb.stats.applied_total == 0


@pytest.mark.parametrize(
    ("path", "body", "headers", "status", "code"),
    [
        pytest.param(
            PUT_PATH,
            {"img_url": IMG},
            {"X-Auth-Token": "x" * 9},
            401,
            "APIGW.0301",
            id="token-short",
        ),
        pytest.param(
            PUT_PATH,
            {"img_url": IMG},
            {"X-Auth-Token": "x" * 32769},
            401,
            "APIGW.0301",
            id="token-long",
        ),
        pytest.param(
            PUT_PATH,
            {"img_url": IMG},
            {"X-Auth-Token": "not-the-token"},
            401,
            "APIGW.0301",
            id="token-unknown",
        ),
        pytest.param(
            PUT_PATH.replace(P, P[:31]), {"img_url": IMG}, {}, 400, "PM.02175006", id="project-31"
        ),
        pytest.param(
            PUT_PATH.replace(P, P[:31] + "-"),
            {"img_url": IMG},
            {},
            400,
            "PM.02175006",
            id="project-dash",
        ),
        pytest.param(
            PUT_PATH.replace(PLAN, PLAN + "0"),
            {"img_url": IMG},
            {},
            400,
            "PM.02175006",
            id="plan-33",
        ),
        pytest.param(
            PUT_PATH,
            {"img_url": f"/v1/upload/{'x' * 33}/202506/1.png"},
            {},
            400,
            "PM.02175006",
            id="img-project",
        ),
        pytest.param(
            PUT_PATH,
            {"img_url": f"/v1/upload/{P}/2025/1.png"},
            {},
            400,
            "PM.02175006",
            id="img-month",
        ),
        pytest.param(
            PUT_PATH,
            {"img_url": f"/v1/upload/{P}/202506/1png"},
            {},
            400,
            "PM.02175006",
            id="img-dot",
        ),
        pytest.param(
            PUT_PATH, {"img_url": f"https://x{IMG}"}, {}, 400, "PM.02175006", id="img-absolute"
        ),
        pytest.param(PUT_PATH, {"img_url": 7}, {}, 400, "PM.02152001", id="img-not-string"),
        pytest.param(PUT_PATH, {"url": IMG}, {}, 400, "PM.02152001", id="img-missing"),
        pytest.param(PUT_PATH, [IMG], {}, 400, "PM.02152001", id="body-array"),
        pytest.param(PUT_PATH, b"{img_url:", {}, 400, "PM.02152001", id="body-not-json"),
        pytest.param(
            f"/v3/plan/{P}/management/{PLAN}/image",
            {"img_url": IMG},
            {},
            404,
            "APIGW.0101",
            id="no-route",
        ),
    ],
)
@pytest.mark.anyio
async def test_put_validation_errors(
    path: str, body: object, headers: dict[str, str], status: int, code: str
) -> None:
    """Each invalid PUT gets its documented status and error_code and changes nothing."""
    async with running() as (sb, http):
        kwargs: dict[str, Any] = {"data": body} if isinstance(body, bytes) else {"json": body}
        got, payload, response = await call(http, "PUT", path, headers=headers, **kwargs)
    assert (got, payload["error_code"]) == (status, code)
    assert set(payload) == {"error_code", "error_msg"}
    assert "X-Request-Id" in response.headers
    assert sb.stats.applied_total == 0
    assert sb.stats.status_counts == {status: 1}


@pytest.mark.anyio
async def test_missing_token_and_longest_valid_token() -> None:
    """No token is 401 APIGW.0301; unconfigured, any token of 10 to 32768 characters passes."""
    async with running(Sandbox(SandboxConfig(autocreate=True)), token=None) as (sb, http):
        missing = await call(http, "PUT", PUT_PATH, json={"img_url": IMG})
        shortest = await call(
            http, "PUT", PUT_PATH, json={"img_url": IMG}, headers={"X-Auth-Token": "t" * 10}
        )
        longest = await call(
            http, "PUT", PUT_PATH, json={"img_url": IMG}, headers={"X-Auth-Token": "t" * 32768}
        )
    assert missing[0] == 401
    assert missing[1]["error_code"] == "APIGW.0301"
    assert (shortest[0], longest[0]) == (200, 200)
    assert sb.stats.applied_total == 2


# -- list, create, info -----------------------------------------------------------------


@pytest.mark.anyio
async def test_list_paginates_450_plans_in_creation_order() -> None:
    """450 plans come back as pages of 200, 200 and 50, in creation order, without repeats."""
    sandbox = Sandbox(SandboxConfig(tokens=frozenset({TOKEN})))
    created = [sandbox.add_plan(P, f"Plan {n}", "gantt").id for n in range(450)]
    async with running(sandbox) as (sb, http):
        pages = []
        for page_no in (1, 2, 3, 4):
            _, body, _ = await call(
                http,
                "POST",
                f"/v3/plan/{P}/managements",
                json={"page_no": page_no, "page_size": 200},
            )
            pages.append(body)
    assert [len(page["plans"]) for page in pages] == [200, 200, 50, 0]
    assert all(page["total"] == 450 for page in pages)
    assert [plan["id"] for page in pages for plan in unwrapped(page)] == created
    assert unwrapped(pages[0])[0]["img_url"] is None
    assert set(unwrapped(pages[0])[0]) == {"id", "name", "type", "project_id", "img_url", "creator"}
    assert (pages[0]["gantts"], pages[0]["minds"]) == (450, 0)
    assert sb.stats.lists == 4


@pytest.mark.anyio
async def test_list_defaults_to_page_size_one() -> None:
    """Without page_size (even without a body) the list returns one plan, as documented."""
    sandbox = Sandbox(SandboxConfig(tokens=frozenset({TOKEN})))
    first = sandbox.add_plan(P, "A", "mind")
    sandbox.add_plan(P, "B", "mind")
    async with running(sandbox) as (_, http):
        _, empty_body, _ = await call(http, "POST", f"/v3/plan/{P}/managements")
        _, page_two, _ = await call(http, "POST", f"/v3/plan/{P}/managements", json={"page_no": 2})
    assert [p["id"] for p in unwrapped(empty_body)] == [first.id]
    assert empty_body["total"] == 2
    assert [p["name"] for p in unwrapped(page_two)] == ["B"]


@pytest.mark.anyio
async def test_list_filters_by_type_search_and_creator() -> None:
    """type, search (case-insensitive substring) and user_ids filter; minds/gantts ignore type."""
    other = Creator("1" * 32, "2" * 32, "ann", "ann")
    sandbox = Sandbox(SandboxConfig(tokens=frozenset({TOKEN})))
    sandbox.add_plan(P, "Roadmap 2025", "gantt")
    sandbox.add_plan(P, "Sprint map", "mind")
    sandbox.add_plan(P, "road trip", "mind", creator=other)
    path = f"/v3/plan/{P}/managements"
    async with running(sandbox) as (_, http):
        _, mind, _ = await call(http, "POST", path, json={"page_size": 200, "type": "mind"})
        _, road, _ = await call(http, "POST", path, json={"page_size": 200, "search": "ROAD"})
        _, ann, _ = await call(http, "POST", path, json={"page_size": 200, "user_ids": ["1" * 32]})
    assert [p["name"] for p in unwrapped(mind)] == ["Sprint map", "road trip"]
    assert (mind["total"], mind["minds"], mind["gantts"]) == (2, 2, 1)
    assert [p["name"] for p in unwrapped(road)] == ["Roadmap 2025", "road trip"]
    assert [p["name"] for p in unwrapped(ann)] == ["road trip"]


@pytest.mark.parametrize(
    "body",
    [
        {"page_size": 201},
        {"page_size": 0},
        {"page_no": 0},
        {"page_no": 10000},
        {"page_size": True},
        {"page_size": "10"},
        {"type": "kanban"},
        {"user_ids": "x"},
    ],
)
@pytest.mark.anyio
async def test_list_rejects_out_of_range_parameters(body: dict[str, object]) -> None:
    """Out-of-range or mistyped list parameters are 400 PM.02175006."""
    async with running() as (_, http):
        status, payload, _ = await call(http, "POST", f"/v3/plan/{P}/managements", json=body)
    assert (status, payload["error_code"]) == (400, "PM.02175006")


@pytest.mark.anyio
async def test_list_elements_are_wrapped_by_default_and_bare_on_request() -> None:
    """As documented, each element is {"result": plan, "status": "success"}; list_wrapped=False
    gives bare plans (the shape is unverified, so both stay available)."""
    wrapped = Sandbox(SandboxConfig(tokens=frozenset({TOKEN})))
    plan = wrapped.add_plan(P, "A", "gantt")
    bare = Sandbox(SandboxConfig(tokens=frozenset({TOKEN}), list_wrapped=False))
    bare.add_plan(P, "A", "gantt", plan_id=plan.id)
    listed = []
    for sandbox in (wrapped, bare):
        async with running(sandbox) as (_, http):
            path = f"/v3/plan/{P}/managements"
            listed.append((await call(http, "POST", path, json={"page_size": 5}))[1]["plans"])
    assert listed[0] == [{"result": plan.to_json(), "status": "success"}]
    assert listed[1] == [wrapped.plans(P)[0].to_json()]


@pytest.mark.anyio
async def test_create_then_info() -> None:
    """Create returns the new plan (type defaults to mind); info returns it without img_url."""
    async with running() as (sb, http):
        status, created, _ = await call(
            http, "POST", f"/v3/plan/{P}/management", json={"name": "New plan"}
        )
        plan_id = created["result"]["id"]
        _, info, _ = await call(http, "GET", f"/v3/plan/{P}/{plan_id}/info")
        no_name = await call(http, "POST", f"/v3/plan/{P}/management", json={"type": "gantt"})
        bad_type = await call(
            http, "POST", f"/v3/plan/{P}/management", json={"name": "x", "type": "pie"}
        )
        unknown = await call(http, "GET", f"/v3/plan/{P}/{PLAN}/info")
    assert status == 200
    assert created["status"] == "success"
    assert (created["result"]["name"], created["result"]["type"]) == ("New plan", "mind")
    assert re.fullmatch(r"[0-9a-f]{32}", plan_id)
    assert [p.id for p in sb.plans(P)] == [plan_id]
    assert info["result"]["id"] == plan_id
    assert "img_url" not in info["result"]
    assert info["result"]["created_on"].isdigit()
    assert (no_name[0], no_name[1]["error_code"]) == (400, "PM.02152001")
    assert (bad_type[0], bad_type[1]["error_code"]) == (400, "PM.02175006")
    assert (unknown[0], unknown[1]["error_code"]) == (400, "PM.02175006")


# -- upload and download ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "ext", "content_type"),
    [
        (PNG, "png", "image/png"),
        (jpeg(), "jpg", "image/jpeg"),
        (gif(), "gif", "image/gif"),
        (bmp(), "bmp", "image/bmp"),
        (webp(), "webp", "image/webp"),
    ],
)
@pytest.mark.anyio
async def test_upload_download_round_trip(data: bytes, ext: str, content_type: str) -> None:
    """An upload gets a /v1/upload/<project>/<yyyymm>/<19 digits>.<ext> URL and downloads intact."""
    wall = FakeClock(WALL_START)
    sandbox = Sandbox(wall_clock=wall)
    sandbox.add_project(P)
    async with running(sandbox) as (sb, http):
        status, body, _ = await call(http, "POST", f"/v2/{P}/img", data=form(data))
        got, raw, response = await call(
            http, "GET", f"/v4/projects/{P}/image-file", params={"image_uri": body["img_url"]}
        )
    assert status == 200
    assert set(body) == {"img_id", "img_url"}
    assert body["img_url"] == f"/v1/upload/{P}/202506/{body['img_id']}.{ext}"
    assert re.fullmatch(r"\d{19}", body["img_id"])
    assert (got, raw) == (200, data)
    assert response.headers["Content-Type"] == content_type
    assert sb.image_bytes(body["img_url"]) == data
    assert (sb.stats.uploads, sb.stats.downloads) == (1, 1)


@pytest.mark.anyio
async def test_upload_size_limit_is_5_mb() -> None:
    """An image of exactly 5 MiB is accepted; one byte more is 400 PM.02175006."""
    limit = 5 * 1024 * 1024
    exact = PNG + bytes(limit - len(PNG))
    async with running() as (sb, http):
        ok = await call(http, "POST", f"/v2/{P}/img", data=form(exact))
        too_big = await call(http, "POST", f"/v2/{P}/img", data=form(exact + b"\0"))
    assert ok[0] == 200
    assert (too_big[0], too_big[1]["error_code"]) == (400, "PM.02175006")
    assert "larger than 5242880 bytes" in too_big[1]["error_msg"]
    assert len(sb.store.uploads) == 1


@pytest.mark.anyio
async def test_upload_rejects_non_images_and_bad_forms() -> None:
    """Non-images are PM.02175006; a form without a file field, or no form, is PM.02152001."""
    async with running() as (sb, http):
        text = await call(http, "POST", f"/v2/{P}/img", data=form(b"hello, not an image"))
        no_file = await call(http, "POST", f"/v2/{P}/img", data=form(PNG, field="image"))
        not_form = await call(http, "POST", f"/v2/{P}/img", json={"file": "x"})
        unknown = await call(http, "GET", f"/v4/projects/{P}/image-file", params={"image_uri": IMG})
    assert (text[0], text[1]["error_code"]) == (400, "PM.02175006")
    assert (no_file[0], no_file[1]["error_code"]) == (400, "PM.02152001")
    assert (not_form[0], not_form[1]["error_code"]) == (400, "PM.02152001")
    assert (unknown[0], unknown[1]["error_code"]) == (400, "PM.02175006")
    assert sb.store.uploads == {}


@pytest.mark.anyio
async def test_strict_urls_only_accept_images_uploaded_to_the_same_project() -> None:
    """With strict_urls a PUT takes only an img_url uploaded to that project through the sandbox."""
    sandbox = Sandbox(SandboxConfig(tokens=frozenset({TOKEN}), autocreate=False, strict_urls=True))
    sandbox.add_plan(P, "A", "gantt", plan_id=PLAN)
    other_project_url = sandbox.upload(Q, PNG)
    async with running(sandbox) as (sb, http):
        _, uploaded, _ = await call(http, "POST", f"/v2/{P}/img", data=form(PNG))
        never = await call(http, "PUT", PUT_PATH, json={"img_url": IMG})
        other = await call(http, "PUT", PUT_PATH, json={"img_url": other_project_url})
        same = await call(http, "PUT", PUT_PATH, json={"img_url": uploaded["img_url"]})
    assert (never[0], never[1]["error_code"]) == (400, "PM.02175006")
    assert (other[0], other[1]["error_code"]) == (400, "PM.02175006")
    assert same[0] == 200
    plan = sb.plan(P, PLAN)
    assert plan is not None
    assert plan.img_url == uploaded["img_url"]


# -- IAM tokens ---------------------------------------------------------------------------


def token_request(password: str = "pw", project: str = "cn-north-4") -> dict[str, Any]:
    """A password-scoped IAM token request body."""
    user = {"name": "bot", "password": password, "domain": {"name": "acme"}}
    return {
        "auth": {
            "identity": {"methods": ["password"], "password": {"user": user}},
            "scope": {"project": {"name": project}},
        }
    }


@pytest.mark.anyio
async def test_iam_token_issue_use_and_expiry() -> None:
    """An issued token is ~200 chars, works until its expires_at on the wall clock, then 401s."""
    wall = FakeClock(WALL_START)
    user = IamUser(domain="acme", name="bot", password="s3cret-pw", token_ttl=3600.0)
    sandbox = Sandbox(SandboxConfig(iam_users=(user,)), wall_clock=wall)
    sandbox.add_plan(P, plan_id=PLAN)
    async with running(sandbox, token=None) as (sb, http):
        status, body, response = await call(
            http, "POST", "/v3/auth/tokens", json=token_request("s3cret-pw")
        )
        token = response.headers["X-Subject-Token"]
        ok = await call(
            http, "PUT", PUT_PATH, json={"img_url": IMG}, headers={"X-Auth-Token": token}
        )
        wall.now += 3600.0
        expired = await call(
            http, "PUT", PUT_PATH, json={"img_url": IMG}, headers={"X-Auth-Token": token}
        )
        stranger = await call(
            http, "PUT", PUT_PATH, json={"img_url": IMG}, headers={"X-Auth-Token": "z" * 200}
        )
    assert status == 201
    assert 190 <= len(token) <= 256
    expected = datetime.fromtimestamp(WALL_START + 3600.0, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    assert re.fullmatch(re.escape(expected) + r"\.\d{3}(000)?Z", body["token"]["expires_at"])
    assert body["token"]["methods"] == ["password"]
    assert "s3cret-pw" not in str(body) + str(dict(response.headers))
    assert ok[0] == 200
    assert (expired[0], expired[1]["error_code"]) == (401, "APIGW.0301")
    assert "The token must be updated" in expired[1]["error_msg"]
    assert (stranger[0], stranger[1]["error_code"]) == (401, "APIGW.0301")
    assert sb.stats.tokens_issued == 1


@pytest.mark.anyio
async def test_iam_rejects_wrong_password_and_malformed_body() -> None:
    """A wrong password is 401 IAM.0004 (without echoing it); a malformed body is 400."""
    sandbox = Sandbox(SandboxConfig(iam_users=(IamUser("acme", "bot", "pw"),)))
    async with running(sandbox, token=None) as (sb, http):
        wrong = await call(http, "POST", "/v3/auth/tokens", json=token_request("guess-123"))
        malformed = await call(http, "POST", "/v3/auth/tokens", json={"auth": {}})
        not_json = await call(http, "POST", "/v3/auth/tokens", data=b"password=pw")
    assert wrong[:2] == (
        401,
        {"error_msg": "The username or password is wrong.", "error_code": "IAM.0004"},
    )
    assert "X-Subject-Token" not in wrong[2].headers
    assert (malformed[0], not_json[0]) == (400, 400)
    assert malformed[1]["error_code"] == "IAM.0011"
    assert sb.stats.tokens_issued == 0


def test_config_repr_hides_secrets() -> None:
    """Neither the secret keys nor IAM passwords appear in the config's repr."""
    config = SandboxConfig(aksk={AK: SK}, iam_users=(IamUser("acme", "bot", "pw-hidden-42"),))
    assert SK not in repr(config)
    assert "pw-hidden-42" not in repr(config)


# -- AK/SK --------------------------------------------------------------------------------


def signed(
    base_url: str,
    method: str,
    path: str,
    body: bytes,
    content_type: str,
    *,
    sk: str = SK,
    when: float,
) -> dict[str, str]:
    """Headers of a request signed as a client would sign it."""
    headers = {"Content-Type": content_type, "X-Project-Id": IAM_PROJECT_ID}
    return headers | sign_request(
        method=method,
        url=base_url + path,
        headers=headers,
        body=body,
        ak=AK,
        sk=sk,
        now=datetime.fromtimestamp(when, UTC),
    )


@pytest.mark.anyio
async def test_aksk_accepted_and_rejected_over_http() -> None:
    """A signed PUT passes; tampered body, wrong SK and a 16-minute-old date are 401 APIGW.0303."""
    wall = FakeClock(WALL_START)
    sandbox = Sandbox(SandboxConfig(aksk={AK: SK}), wall_clock=wall)
    sandbox.add_plan(P, plan_id=PLAN)
    body = b'{"img_url": "%s"}' % IMG.encode()
    async with sandbox.serve() as url, aiohttp.ClientSession() as http:

        async def put(headers: dict[str, str], data: bytes = body) -> tuple[int, Any]:
            status, payload, _ = await call(http, "PUT", url + PUT_PATH, data=data, headers=headers)
            return status, payload

        good = await put(signed(url, "PUT", PUT_PATH, body, "application/json", when=wall.now))
        tampered = await put(
            signed(url, "PUT", PUT_PATH, body, "application/json", when=wall.now),
            body.replace(b".png", b".gif"),
        )
        wrong_sk = await put(
            signed(url, "PUT", PUT_PATH, body, "application/json", sk="nope", when=wall.now)
        )
        stale = await put(
            signed(url, "PUT", PUT_PATH, body, "application/json", when=wall.now - 16 * 60)
        )
    assert good[0] == 200
    for status, payload in (tampered, wrong_sk, stale):
        assert (status, payload["error_code"]) == (401, "APIGW.0303")
        assert SK not in payload["error_msg"]
    assert "signature mismatch" in tampered[1]["error_msg"]
    assert "canonical request" in tampered[1]["error_msg"]
    assert "15 minutes" in stale[1]["error_msg"]
    assert sandbox.stats.applied_total == 1


@pytest.mark.anyio
async def test_aksk_unknown_access_key_and_signed_multipart_upload() -> None:
    """An unknown AK is 401 APIGW.0303; a multipart upload signed as UNSIGNED-PAYLOAD passes."""
    wall = FakeClock(WALL_START)
    sandbox = Sandbox(SandboxConfig(aksk={"OTHERAK": SK}), wall_clock=wall)
    writer = aiohttp.MultipartWriter("form-data")
    part = writer.append(PNG, {"Content-Type": "image/png"})
    part.set_content_disposition("form-data", name="file", filename="logo.png")
    path = f"/v2/{P}/img"
    async with sandbox.serve() as url, aiohttp.ClientSession() as http:
        headers = signed(url, "POST", path, b"multipart", writer.content_type, when=wall.now)
        unknown = await call(http, "POST", url + path, data=writer, headers=headers)
        sandbox.config = SandboxConfig(aksk={AK: SK}, autocreate=True)
        status, body, _ = await call(http, "POST", url + path, data=writer, headers=headers)
    assert (unknown[0], unknown[1]["error_code"]) == (401, "APIGW.0303")
    assert headers["X-Sdk-Content-Sha256"] == "UNSIGNED-PAYLOAD"
    assert status == 200
    assert sandbox.image_bytes(body["img_url"]) == PNG


# -- documented permission answers, the v3 download route, IAM's project list ---------------


@pytest.mark.anyio
async def test_a_non_member_project_answers_400_pm_02150010_on_every_route() -> None:
    """A project the caller is not a member of: 400 PM.02150010 (documented as 400, not 403)."""
    sandbox = Sandbox(SandboxConfig(tokens=frozenset({TOKEN}), non_member_projects={P}))
    sandbox.add_plan(P, plan_id=PLAN)
    sandbox.add_plan(Q, plan_id=PLAN)
    async with running(sandbox) as (sb, http):
        answers = [
            await call(http, "PUT", PUT_PATH, json={"img_url": IMG}),
            await call(http, "POST", f"/v3/plan/{P}/managements", json={"page_size": 5}),
            await call(http, "POST", f"/v2/{P}/img", data=form(PNG)),
        ]
        member = await call(
            http, "PUT", f"/v3/plan/{Q}/management/{PLAN}/img", json={"img_url": IMG}
        )
    for status, body, _ in answers:
        assert (status, body["error_code"]) == (400, "PM.02150010")
    assert member[0] == 200
    assert sb.stats.applied == {(Q, PLAN): 1}


@pytest.mark.anyio
async def test_without_the_download_policy_only_the_v3_route_serves_images() -> None:
    """download_permission=False: DownloadImageFile is 400 PM.02174103 无操作权限, while
    GET /v3/upload/... (the img_url with v1 swapped for v3) serves the same bytes."""
    sandbox = Sandbox(SandboxConfig(tokens=frozenset({TOKEN}), download_permission=False))
    url = sandbox.upload(Q, PNG)
    async with running(sandbox) as (_, http):
        refused = await call(http, "GET", f"/v4/projects/{Q}/image-file", params={"image_uri": url})
        served = await call(http, "GET", "/v3/" + url.removeprefix("/v1/"))
        missing = await call(http, "GET", f"/v3/upload/{Q}/202506/1.png")
    assert refused[:2] == (400, {"error_code": "PM.02174103", "error_msg": "无操作权限"})
    assert served[:2] == (200, PNG)
    assert (missing[0], missing[1]["error_code"]) == (400, "PM.02175006")


@pytest.mark.anyio
async def test_iam_lists_projects_by_name_for_a_signed_request() -> None:
    """GET /v3/projects?name=cn-north-4, signed, lists the one IAM project; another name none."""
    wall = FakeClock(WALL_START)
    sandbox = Sandbox(SandboxConfig(aksk={AK: SK}), wall_clock=wall)
    async with sandbox.serve() as url, aiohttp.ClientSession() as http:

        async def lookup(name: str) -> tuple[int, Any]:
            path = f"/v3/projects?name={name}"
            headers = sign_request(
                method="GET", url=url + path, headers={}, body=None, ak=AK, sk=SK,
                now=datetime.fromtimestamp(wall.now, UTC),
            )  # fmt: skip
            status, body, _ = await call(http, "GET", url + path, headers=headers)
            return status, body

        found = await lookup("cn-north-4")
        none = await lookup("eu-west-0")
        unsigned = await call(http, "GET", url + "/v3/projects?name=cn-north-4")
    assert found[0] == 200
    assert [(p["id"], p["name"]) for p in found[1]["projects"]] == [(IAM_PROJECT_ID, "cn-north-4")]
    assert none == (200, {"projects": [], "links": none[1]["links"]})
    assert unsigned[0] == 401
    assert sandbox.stats.project_lookups == 3


@pytest.mark.anyio
async def test_signed_calls_need_a_known_x_project_id_unless_relaxed() -> None:
    """AK/SK calls without X-Project-Id (or with an unknown one) are 401 APIGW.0301 by
    default; require_project_id=False accepts them."""
    wall = FakeClock(WALL_START)
    body = b'{"img_url": "%s"}' % IMG.encode()
    results = []
    for require in (True, False):
        sandbox = Sandbox(SandboxConfig(aksk={AK: SK}, require_project_id=require), wall_clock=wall)
        sandbox.add_plan(P, plan_id=PLAN)
        async with sandbox.serve() as url, aiohttp.ClientSession() as http:
            for project_id in (None, "f" * 32, IAM_PROJECT_ID):
                headers = {"Content-Type": "application/json"}
                if project_id:
                    headers["X-Project-Id"] = project_id
                headers |= sign_request(
                    method="PUT", url=url + PUT_PATH, headers=headers, body=body, ak=AK, sk=SK,
                    now=datetime.fromtimestamp(wall.now, UTC),
                )  # fmt: skip
                status, payload, _ = await call(
                    http, "PUT", url + PUT_PATH, data=body, headers=headers
                )
                results.append((status, payload["error_code"] if status != 200 else None))
    assert results[:3] == [(401, "APIGW.0301"), (401, "APIGW.0301"), (200, None)]
    assert results[3:] == [(200, None)] * 3
