"""The CodeArts Req plan API over aiohttp: requests out, classified :class:`Attempt` values in.

This is the only module that speaks HTTP as a client. Every aiohttp error is translated here,
so the runner only ever sees verdicts: ok, retry, throttled, permanent, rejected.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp

from batchthumb import __version__
from batchthumb.auth import Credentials
from batchthumb.model import Attempt, Verdict

USER_AGENT = f"batchthumb/{__version__}"
JSON = "application/json;charset=UTF-8"

# Throttling as the gateway (APIGW.0308) and CodeArts itself (PM.02153001, sent as HTTP 400)
# signal it (facts §5.2, §5.3).
THROTTLE_CODES = frozenset({"APIGW.0308", "APIG.0308", "PM.02153001"})
# A stale token (facts §4.1): worth one renewal before the run gives up.
STALE_TOKEN_CODES = frozenset({"APIGW.0301", "PM.10001002"})


@dataclass(frozen=True, slots=True)
class Reply:
    """A classified answer plus the decoded JSON body, when there was one."""

    attempt: Attempt
    body: Any = None


class PlanApi:
    """The plan endpoints of one CodeArts Req endpoint, through one shared session."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        endpoint: str,
        credentials: Credentials,
        *,
        timeout: float,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._session = session
        self._endpoint = endpoint.rstrip("/")
        self._credentials = credentials
        self._timeout = timeout
        # aiohttp's own timer, not a cancel scope per request: that was a tenth of the
        # client's CPU per item in the benchmark's profile. It runs until the body is read.
        self._request_timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=timeout)
        self._wall_clock = wall_clock

    async def set_thumbnail(self, project_id: str, plan_id: str, img_url: str) -> Attempt:
        """``PUT /v3/plan/{project_id}/management/{plan_id}/img``: set one plan's thumbnail."""
        path = f"/v3/plan/{project_id}/management/{plan_id}/img"
        reply = await self.request("PUT", path, json_body={"img_url": img_url})
        return reply.attempt

    async def request(self, method: str, path: str, *, json_body: object = None) -> Reply:
        """Send one request, renewing stale credentials once; never raises for HTTP trouble."""
        body = None if json_body is None else json.dumps(json_body).encode()
        reply = await self._send(method, path, body)
        attempt = reply.attempt
        stale = attempt.http_status == 401 and attempt.error_code in STALE_TOKEN_CODES
        if stale and await self._credentials.renew():
            reply = await self._send(method, path, body)
        return reply

    async def _send(self, method: str, path: str, body: bytes | None) -> Reply:
        url = self._endpoint + path
        headers = {"Content-Type": JSON} if body is not None else {}
        await self._credentials.authorize(method, url, headers, body)
        try:
            # Workers never outnumber pooled connections, so this clock starts once the
            # request holds a connection, not while it queues for one.
            async with self._session.request(
                method, url, data=body, headers=headers, timeout=self._request_timeout
            ) as resp:
                raw = await resp.read()
                return self._classify(resp, raw)
        except TimeoutError:
            return Reply(_no_answer(f"no answer within {self._timeout:g} s"))
        except aiohttp.ClientConnectorError as exc:
            # Never connected, so never sent: a clean, retryable failure.
            return Reply(Attempt(Verdict.RETRY, error=f"cannot connect: {exc.os_error}"))
        except aiohttp.ClientError as exc:
            return Reply(_no_answer(f"connection lost: {type(exc).__name__}"))

    def _classify(self, resp: aiohttp.ClientResponse, raw: bytes) -> Reply:
        status = resp.status
        request_id = resp.headers.get("X-Request-Id")
        body = _decode(raw)
        code, message = _error_fields(body)
        retry_after = _retry_after(resp.headers.get("Retry-After"), self._wall_clock)

        def attempt(verdict: Verdict, error: str | None = message) -> Attempt:
            return Attempt(verdict, status, code, error, request_id, retry_after)

        if status == 200:
            if isinstance(body, dict) and body.get("status", "success") == "success":
                return Reply(attempt(Verdict.OK, None), body)
            if isinstance(body, dict) and body.get("status") == "error":
                return Reply(attempt(Verdict.PERMANENT, message or "the API answered status error"))
            return Reply(
                attempt(
                    Verdict.PERMANENT, "unexpected answer: " + raw[:200].decode(errors="replace")
                )
            )
        if status == 429 or code in THROTTLE_CODES:
            return Reply(attempt(Verdict.THROTTLED))
        if status in (401, 403):
            return Reply(attempt(Verdict.REJECTED))
        if status >= 500 or status == 408:
            return Reply(attempt(Verdict.RETRY))
        return Reply(attempt(Verdict.PERMANENT, message or resp.reason or f"HTTP {status}"))


def _no_answer(reason: str) -> Attempt:
    return Attempt(
        Verdict.RETRY,
        error=f"{reason}; the request was sent, so the server may have applied it",
        ambiguous=True,
    )


def _decode(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


def _error_fields(body: Any) -> tuple[str | None, str | None]:
    """The error code and message, in any of the shapes Huawei services use (facts §5.1)."""
    if not isinstance(body, dict):
        return None, None
    for code_key, msg_key in (
        ("error_code", "error_msg"),
        ("errorCode", "errorMsg"),
        ("code", "message"),
    ):
        if code_key in body or msg_key in body:
            code, msg = body.get(code_key), body.get(msg_key)
            return (str(code) if code is not None else None, str(msg) if msg is not None else None)
    for nested in body.values():
        if isinstance(nested, dict):
            code, msg = _error_fields(nested)
            if code or msg:
                return code, msg
    return None, None


def _retry_after(value: str | None, wall_clock: Callable[[], float]) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - wall_clock())


@asynccontextmanager
async def open_api(
    endpoint: str,
    credentials: Credentials,
    *,
    concurrency: int,
    timeout: float,  # noqa: ASYNC109 - per attempt, enforced inside PlanApi
) -> AsyncIterator[PlanApi]:
    """A :class:`PlanApi` on a session whose pool has a connection for every worker."""
    connector = aiohttp.TCPConnector(limit=concurrency + 2, limit_per_host=0, ttl_dns_cache=300)
    session_timeout = aiohttp.ClientTimeout(total=None, sock_connect=timeout)
    async with aiohttp.ClientSession(
        connector=connector,
        timeout=session_timeout,
        headers={"User-Agent": USER_AGENT},
        trust_env=False,
    ) as session:
        # aiohttp silently resends an idempotent request once when the connection drops
        # (aio-libs/aiohttp#10790: no public switch). That resend would bypass the rate
        # governor and hide the drop from the report, so retries stay ours alone.
        session._retry_connection = False
        yield PlanApi(session, endpoint, credentials, timeout=timeout)
