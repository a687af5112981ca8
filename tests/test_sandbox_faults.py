"""Tests for the sandbox's faults, rate limit, gate and wait_until, over real loopback HTTP."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import anyio
import pytest
from yarl import URL

from batchthumb.sandbox import (
    Fault,
    FaultKind,
    Faults,
    RateLimit,
    RetryAfter,
    Sandbox,
    SandboxConfig,
)
from batchthumb.sandbox.server import SHUTDOWN_TIMEOUT
from tests.imagedata import png

P = "919bb351ef424e2daaf3dd80c179fae9"
PLAN = "bf56512ab4e544c29d03d068711ca56a"
OTHER_PLAN = "0579f0388ed84b00884a09c49862a229"
TOKEN = "a-static-token-0123"
IMG = f"/v1/upload/{P}/202506/1749730526922581391.png"
PNG = png()


def put_path(plan_id: str = PLAN) -> str:
    """The thumbnail PUT path of a plan in project P."""
    return f"/v3/plan/{P}/management/{plan_id}/img"


class FakeClock:
    """A monotonic clock that only moves when told to."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@asynccontextmanager
async def running(sandbox: Sandbox) -> AsyncIterator[aiohttp.ClientSession]:
    """Serve ``sandbox`` on port 0 and yield a client session bound to its URL."""
    with anyio.fail_after(20):
        async with (
            sandbox.serve() as url,
            aiohttp.ClientSession(url, headers={"X-Auth-Token": TOKEN}) as http,
        ):
            yield http


def new_sandbox(
    faults: Faults | None = None, rate_limit: RateLimit | None = None, **kwargs: Any
) -> Sandbox:
    """A sandbox accepting TOKEN, with plans PLAN and OTHER_PLAN in project P."""
    config = SandboxConfig(tokens=frozenset({TOKEN}), rate_limit=rate_limit)
    sandbox = Sandbox(config, faults=faults, **kwargs)
    sandbox.add_plan(P, "Roadmap", "gantt", plan_id=PLAN)
    sandbox.add_plan(P, "Other", "mind", plan_id=OTHER_PLAN)
    return sandbox


async def put(
    http: aiohttp.ClientSession, plan_id: str = PLAN
) -> tuple[int, dict[str, Any], aiohttp.ClientResponse]:
    """PUT IMG as the thumbnail of ``plan_id``; return (status, JSON body, response)."""
    async with http.put(put_path(plan_id), json={"img_url": IMG}) as response:
        return response.status, await response.json(), response


async def raw_put(base_url: str) -> bytes:
    """Send one PUT on a fresh TCP connection and return every byte the server sends back."""
    url = URL(base_url)
    assert url.host is not None
    assert url.port is not None
    body = b'{"img_url": "%s"}' % IMG.encode()
    request = (
        f"PUT {put_path()} HTTP/1.1\r\nHost: {url.host}:{url.port}\r\n"
        f"X-Auth-Token: {TOKEN}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    received = b""
    async with await anyio.connect_tcp(url.host, url.port) as stream:
        await stream.send(request)
        try:
            while True:
                received += await stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            pass
    return received


# -- scripted faults ------------------------------------------------------------------------


@pytest.mark.anyio
async def test_scripted_503_twice_then_200() -> None:
    """A script of two 503s answers the next two PUTs 503, then the sandbox behaves normally."""
    sandbox = new_sandbox()
    sandbox.faults.script(Fault.status(503), times=2)
    async with running(sandbox) as http:
        results = [await put(http) for _ in range(3)]
    assert [status for status, _, _ in results] == [503, 503, 200]
    assert results[0][1] == {
        "error_code": "SANDBOX.0503",
        "error_msg": "Service unavailable (sandbox fault).",
    }
    assert sandbox.stats.applied == {(P, PLAN): 1}
    assert sandbox.stats.status_counts == {503: 2, 200: 1}
    assert sandbox.faults.scripted_remaining == 0


@pytest.mark.anyio
async def test_scripted_fault_for_one_plan_spares_the_others() -> None:
    """A fault scripted for one plan_id hits only PUTs to that plan."""
    sandbox = new_sandbox()
    sandbox.faults.script(Fault.status(500), plan_id=OTHER_PLAN)
    async with running(sandbox) as http:
        first = await put(http)
        other = await put(http, OTHER_PLAN)
        again = await put(http, OTHER_PLAN)
    assert (first[0], other[0], again[0]) == (200, 500, 200)
    assert other[1]["error_code"] == "SANDBOX.0500"


@pytest.mark.parametrize(
    ("fault", "status", "code", "retry_after"),
    [
        (Fault.status(401), 401, "APIGW.0301", None),
        (Fault.status(403), 403, "PM.02150010", None),
        (Fault.status(404), 404, "APIGW.0101", None),
        (Fault.status(429), 429, "APIGW.0308", None),
        (Fault.status(429, retry_after="3"), 429, "APIGW.0308", "3"),
        (
            Fault.status(503, retry_after="Wed, 21 Oct 2026 07:28:00 GMT"),
            503,
            "SANDBOX.0503",
            "Wed, 21 Oct 2026 07:28:00 GMT",
        ),
        (Fault.status(502, "X.1", "custom"), 502, "X.1", None),
        (Fault.pm_throttle(), 400, "PM.02153001", None),
        (Fault.expire_token(), 401, "APIGW.0301", None),
    ],
)
@pytest.mark.anyio
async def test_status_faults_answer_their_error(
    fault: Fault, status: int, code: str, retry_after: str | None
) -> None:
    """Each status fault answers its status, error_code and Retry-After, and changes nothing."""
    sandbox = new_sandbox()
    sandbox.faults.script(fault)
    async with running(sandbox) as http:
        got, body, response = await put(http)
    assert (got, body["error_code"]) == (status, code)
    assert response.headers.get("Retry-After") == retry_after
    assert sandbox.stats.applied_total == 0


def test_fault_messages() -> None:
    """PM throttling carries the service's Chinese text; token expiry says it must be updated."""
    assert Fault.pm_throttle().error_msg == "访问频率过高,请稍后再试"
    assert "The token must be updated" in Fault.expire_token().error_msg
    assert Fault.expire_token().kind is FaultKind.EXPIRE_TOKEN


@pytest.mark.anyio
async def test_status_error_fault_is_200_with_error_status() -> None:
    """A status_error fault answers HTTP 200 with "status": "error" and does not apply the PUT."""
    sandbox = new_sandbox()
    sandbox.faults.script(Fault.status_error())
    async with running(sandbox) as http:
        status, body, _ = await put(http)
    assert status == 200
    assert body["status"] == "error"
    assert "result" not in body
    assert sandbox.stats.applied_total == 0
    plan = sandbox.plan(P, PLAN)
    assert plan is not None
    assert plan.img_url is None


@pytest.mark.anyio
async def test_drop_closes_the_connection_without_an_answer() -> None:
    """A drop fault closes the TCP connection with no response byte and applies nothing."""
    sandbox = new_sandbox()
    sandbox.faults.script(Fault.drop())
    async with sandbox.serve() as url:
        received = await raw_put(url)
    assert received == b""
    assert sandbox.stats.drops == 1
    assert sandbox.stats.applied_total == 0
    assert sandbox.stats.status_counts == {}


@pytest.mark.anyio
async def test_drop_after_apply_applies_then_closes() -> None:
    """A drop_after_apply fault changes the plan, then closes the connection unanswered."""
    sandbox = new_sandbox()
    sandbox.faults.script(Fault.drop_after_apply())
    async with sandbox.serve() as url:
        received = await raw_put(url)
    assert received == b""
    assert sandbox.stats.applied == {(P, PLAN): 1}
    plan = sandbox.plan(P, PLAN)
    assert plan is not None
    assert plan.img_url == IMG


@pytest.mark.anyio
async def test_aiohttp_client_sees_a_drop_as_server_disconnected() -> None:
    """aiohttp retries a dropped PUT once by itself, so two drops reach the caller as an error."""
    sandbox = new_sandbox()
    sandbox.faults.script(Fault.drop(), times=2)
    async with running(sandbox) as http:
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await put(http)
        status, _, _ = await put(http)
    assert sandbox.stats.drops == 2
    assert sandbox.stats.puts == 3
    assert status == 200


# -- random faults ----------------------------------------------------------------------------


def test_random_faults_repeat_with_the_same_seed() -> None:
    """Two Faults with the same seed and odds give out the same sequence of faults."""

    def kinds(faults: Faults) -> list[int | None]:
        taken = [faults.take(PLAN) for _ in range(50)]
        return [None if fault is None else fault.http_status for fault in taken]

    first = kinds(Faults(p500=0.2, p503=0.2, seed=7))
    assert first == kinds(Faults(p500=0.2, p503=0.2, seed=7))
    assert {None, 500, 503} <= set(first)


def test_scripted_faults_take_precedence_over_random() -> None:
    """With p500=1 a scripted fault is still given out first, then random ones resume."""
    faults = Faults(p500=1.0, seed=1)
    faults.script(Fault.drop())
    first, second = faults.take(PLAN), faults.take(PLAN)
    assert first is not None
    assert first.kind is FaultKind.DROP
    assert second is not None
    assert second.http_status == 500


@pytest.mark.anyio
async def test_random_429_carries_retry_after_over_http() -> None:
    """p429=1 answers every PUT 429 APIGW.0308 with the configured Retry-After."""
    sandbox = new_sandbox(Faults(p429=1.0, retry_after="2", seed=3))
    async with running(sandbox) as http:
        status, body, response = await put(http)
    assert (status, body["error_code"]) == (429, "APIGW.0308")
    assert response.headers["Retry-After"] == "2"


def test_invalid_fault_arguments() -> None:
    """A status fault needs a 4xx/5xx code and a script at least one use."""
    with pytest.raises(ValueError, match="4xx or 5xx"):
        Fault.status(200)
    with pytest.raises(ValueError, match="at least 1"):
        Faults().script(Fault.drop(), times=0)


# -- rate limit and latency ----------------------------------------------------------------


@pytest.mark.anyio
async def test_rate_limit_answers_429_above_the_rate() -> None:
    """A bucket of 5 at 5/s on a frozen clock: 5 PUTs pass, the 6th is 429; 0.2 s later one more."""
    clock = FakeClock()
    limit = RateLimit.per_second(5, burst=5)
    sandbox = new_sandbox(clock=clock, rate_limit=limit)
    async with running(sandbox) as http:
        burst = [await put(http) for _ in range(6)]
        clock.now += 0.2
        refilled = [await put(http) for _ in range(2)]
    assert [status for status, _, _ in burst] == [200] * 5 + [429]
    assert burst[5][1] == {
        "error_code": "APIGW.0308",
        "error_msg": "The throttling threshold has been reached: "
        "policy user over ratelimit,limit:5,time:1 second",
    }
    assert "Retry-After" not in burst[5][2].headers
    assert [status for status, _, _ in refilled] == [200, 429]
    assert sandbox.stats.applied_total == 6


@pytest.mark.anyio
async def test_limits_per_api_count_apart_and_a_shared_one_together() -> None:
    """Per API, an upload does not use the PUTs' budget; shared, it does; both say Retry-After."""
    statuses = {}
    for per_api in (True, False):
        limit = RateLimit.per_second(1, burst=1, per_api=per_api, retry_after=RetryAfter.SECONDS)
        sandbox = new_sandbox(clock=FakeClock(), rate_limit=limit)
        form = aiohttp.FormData()
        form.add_field("file", PNG, filename="a.png", content_type="image/png")
        async with running(sandbox) as http:
            async with http.post(f"/v2/{P}/img", data=form) as upload:
                upload_status = upload.status
            statuses[per_api] = (upload_status, *(await put(http)))
    assert statuses[True][:2] == (200, 200)
    upload_status, status, body, response = statuses[False]
    assert (upload_status, status, body["error_code"]) == (200, 429, "APIGW.0308")
    assert response.headers["Retry-After"] == "1"


@pytest.mark.anyio
async def test_throttle_code_is_spelled_as_configured() -> None:
    """throttle_code APIG.0308 spells the rate limit's 429s and random 429s that way."""
    limit = RateLimit.per_second(1, burst=1)
    config = SandboxConfig(
        tokens=frozenset({TOKEN}), rate_limit=limit, throttle_code="APIG.0308", autocreate=True
    )
    sandbox = Sandbox(config, clock=FakeClock())
    async with running(sandbox) as http:
        first = await put(http)
        limited = await put(http)
    unlimited = Sandbox(
        SandboxConfig(tokens=frozenset({TOKEN}), throttle_code="APIG.0308", autocreate=True)
    )
    unlimited.faults.script(Fault.status(429))
    async with running(unlimited) as http:
        scripted = await put(http)
    assert first[0] == 200
    assert (limited[0], limited[1]["error_code"]) == (429, "APIG.0308")
    assert (scripted[0], scripted[1]["error_code"]) == (429, "APIG.0308")


def test_throttle_code_must_be_a_known_spelling() -> None:
    """A throttle_code other than the two spellings is refused."""
    with pytest.raises(ValueError, match=r"APIGW\.0308, APIG\.0308"):
        SandboxConfig(throttle_code="APIGW.308")


@pytest.mark.anyio
async def test_latency_delays_every_route() -> None:
    """latency adds at least that many seconds to a PUT, a list, an upload and a download."""
    sandbox = new_sandbox(Faults(latency=0.05))
    img = sandbox.upload(P, PNG)
    form = aiohttp.FormData()
    form.add_field("file", PNG, filename="a.png", content_type="image/png")
    calls = {
        "put": lambda http: http.put(put_path(), json={"img_url": IMG}),
        "list": lambda http: http.post(f"/v3/plan/{P}/managements", json={}),
        "upload": lambda http: http.post(f"/v2/{P}/img", data=form),
        "download": lambda http: http.get(
            f"/v4/projects/{P}/image-file", params={"image_uri": img}
        ),
    }
    elapsed = {}
    async with running(sandbox) as http:
        for name, call in calls.items():
            started = time.monotonic()
            async with call(http) as response:
                assert response.status == 200, name
            elapsed[name] = time.monotonic() - started
    assert all(seconds >= 0.05 for seconds in elapsed.values()), elapsed


def test_jitter_is_seeded_and_bounded() -> None:
    """Jitter adds 0 to ``jitter`` seconds to the latency, the same draws for the same seed."""
    first = Faults(latency=0.1, jitter=0.05, seed=3)
    again = Faults(latency=0.1, jitter=0.05, seed=3)
    delays = [first.delay() for _ in range(50)]
    assert delays == [again.delay() for _ in range(50)]
    assert all(0.1 <= d <= 0.15 for d in delays) and len(set(delays)) > 1
    assert Faults(latency=0.1).delay() == 0.1


# -- gate and wait_until ---------------------------------------------------------------------


@pytest.mark.anyio
async def test_gate_holds_puts_until_opened() -> None:
    """With the gate closed PUTs are counted and held; opening it lets all of them apply."""
    sandbox = new_sandbox()
    sandbox.gate.close()
    statuses: list[int] = []

    async def one(http: aiohttp.ClientSession) -> None:
        statuses.append((await put(http))[0])

    async with running(sandbox) as http, anyio.create_task_group() as group:
        for _ in range(3):
            group.start_soon(one, http)
        stats = await sandbox.wait_until(lambda s: s.waiting_at_gate >= 3)
        assert (stats.puts, stats.applied_total, statuses) == (3, 0, [])
        sandbox.gate.open()
    assert statuses == [200, 200, 200]
    assert sandbox.stats.applied == {(P, PLAN): 3}
    assert sandbox.stats.waiting_at_gate == 0


@pytest.mark.anyio
async def test_stopping_the_server_drops_puts_held_at_the_gate() -> None:
    """Leaving serve() promptly drops PUTs held at a closed gate, and the gate stays closed."""
    sandbox = new_sandbox()
    sandbox.gate.close()
    errors: list[BaseException] = []

    async def one(http: aiohttp.ClientSession, url: str) -> None:
        try:
            async with http.put(url + put_path(), json={"img_url": IMG}):
                pass
        except aiohttp.ClientError as exc:
            errors.append(exc)

    async with (
        aiohttp.ClientSession(headers={"X-Auth-Token": TOKEN}) as http,
        anyio.create_task_group() as group,
    ):
        # Well under SHUTDOWN_TIMEOUT: the held PUT must be released, not waited for.
        with anyio.fail_after(SHUTDOWN_TIMEOUT * 0.9):
            async with sandbox.serve() as url:
                group.start_soon(one, http, url)
                await sandbox.wait_until(lambda s: s.waiting_at_gate >= 1)
    assert len(errors) == 1
    assert sandbox.stats.drops == 1
    assert sandbox.stats.applied_total == 0
    assert not sandbox.gate.is_open


@pytest.mark.anyio
async def test_wait_until_returns_at_once_and_reports_predicate_errors() -> None:
    """wait_until returns at once when the predicate holds; a predicate error fails its waiter."""
    sandbox = new_sandbox()
    assert (await sandbox.wait_until(lambda s: s.puts == 0)).puts == 0

    def broken(stats: Any) -> bool:
        if stats.puts:
            raise RuntimeError("broken predicate")
        return False

    async with running(sandbox) as http, anyio.create_task_group() as group:
        group.start_soon(put, http)
        with pytest.raises(RuntimeError, match="broken predicate"):
            await sandbox.wait_until(broken)
    assert sandbox.stats.applied_total == 1
