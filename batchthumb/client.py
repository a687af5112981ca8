"""The CodeArts Req plan API over aiohttp: requests out, classified :class:`Attempt` values in.

This is the only module that speaks HTTP as a client. Every aiohttp error is translated here,
so the runner only ever sees verdicts: ok, retry, throttled, permanent, rejected.
"""

from __future__ import annotations

import email.utils
import ipaddress
import json
import re
import secrets
import ssl
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from json.encoder import encode_basestring_ascii
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
import anyio

from batchthumb import __version__
from batchthumb.auth import (
    URL_CREDENTIALS_ADVICE,
    Credentials,
    IamIdentity,
    IssuedToken,
    Redactor,
    url_has_credentials,
)
from batchthumb.errors import CredentialsError, RunAborted, UsageError
from batchthumb.images import CONTENT_TYPES, image_type
from batchthumb.model import (
    DEFAULT_MAX_ANSWER_BYTES,
    MAX_ERROR_CHARS,
    MAX_IMAGE_ANSWER_BYTES,
    MAX_PLAN_FIELD_CHARS,
    Attempt,
    PlanPage,
    PlanSummary,
    StatedLimit,
    Verdict,
)

USER_AGENT = f"batchthumb/{__version__}"
JSON = "application/json;charset=UTF-8"

# Throttling as the gateway (APIGW.0308) and CodeArts itself (PM.02153001, sent as HTTP 400)
# signal it (facts §5.2, §5.3).
THROTTLE_CODES = frozenset({"APIGW.0308", "APIG.0308", "PM.02153001"})
# A stale token (facts §4.1): worth one renewal before the run gives up.
STALE_TOKEN_CODES = frozenset({"APIGW.0301", "PM.10001002"})
# Permission refusals, documented as HTTP 400 (facts §0): not a member of the project, and
# "无操作权限" (no permission to operate). Like a 403 they stop the run: every later request
# made with the same identity would be refused the same way.
NOT_A_MEMBER = "PM.02150010"
NO_PERMISSION = "PM.02174103"
PERMISSION_CODES = frozenset({NOT_A_MEMBER, NO_PERMISSION})
# The identity-policy action DownloadImageFile needs (facts §2.2).
DOWNLOAD_ACTION = "codeartsreq:attachment:download"
# Error codes are short (PM.02175006); anything longer is cut like other server text.
MAX_CODE_CHARS = 64
# Bytes asked of the answer stream at a time; aiohttp decodes gzip in steps of this size too.
READ_CHUNK = 64 * 1024
MAX_TOKEN_HEADER = 40 * 1024


@dataclass(frozen=True, slots=True)
class Reply:
    """A classified answer plus the decoded JSON body, when there was one."""

    attempt: Attempt
    body: Any = None


@dataclass(frozen=True, slots=True)
class Transport:
    """How connections are made: TLS verification and proxies, settled once per run.

    Proxies are read from the environment once (``HTTPS_PROXY``, ``NO_PROXY``...) and passed to
    each request explicitly: aiohttp's ``trust_env`` looks them up again for every request, in
    a thread, which made a busy client several times slower.
    """

    # None: the system's trusted roots, through the verifying context aiohttp builds when it
    # is imported (building one more cost each run some 30 ms of CPU).
    ssl_context: ssl.SSLContext | None = None
    proxies: tuple[tuple[str, str], ...] = ()

    @property
    def ssl(self) -> ssl.SSLContext | bool:
        """What aiohttp's connector takes: our context, or True for its verifying default."""
        return self.ssl_context if self.ssl_context is not None else True

    def proxy_for(self, url: str) -> str | None:
        """The proxy for ``url``, honouring ``NO_PROXY``; loopback never goes through one."""
        parts = urlsplit(url)
        host = parts.hostname or ""
        if is_loopback(host) or urllib.request.proxy_bypass(host):
            return None
        return dict(self.proxies).get(parts.scheme)


def make_transport(*, ca_bundle: Path | None = None) -> Transport:
    """Verified TLS (with ``ca_bundle`` as the trusted roots, if given) and the proxy settings."""
    proxies = tuple(sorted(urllib.request.getproxies().items()))
    if ca_bundle is None:
        return Transport(None, proxies)
    try:
        context = ssl.create_default_context(cafile=str(ca_bundle))
    except (OSError, ssl.SSLError) as exc:
        reason = exc.strerror or exc  # SSLError is an OSError: its strerror says why too
        raise UsageError(f"--ca-bundle {ca_bundle}: cannot load it: {reason}") from None
    return Transport(context, proxies)


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (where the sandbox listens)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback  # a hostname: IPv6 without brackets
    except ValueError:
        return False


def check_url(url: str, *, insecure: bool, what: str = "endpoint") -> str | None:
    """Refuse userinfo in ``url``, and plain ``http://`` to anything but loopback unless
    ``insecure`` (then return a warning)."""
    if url_has_credentials(url):
        # Never echo the URL: the password is in it.
        raise UsageError(f"the {what} URL {URL_CREDENTIALS_ADVICE}")
    parts = urlsplit(url)
    if parts.scheme != "http" or is_loopback(parts.hostname or ""):
        return None
    if not insecure:
        raise UsageError(
            f"the {what} {url} is plain http: credentials would cross the network unencrypted; "
            "use https, or pass --insecure if you really mean it"
        )
    return f"--insecure: the {what} {url} is plain http; credentials are sent unencrypted"


class PlanApi:
    """The plan endpoints of one CodeArts Req endpoint, through one shared session.

    Nothing a server sends is trusted further than needed: redirects are never followed (the
    credentials would go with them), answers are read up to a size limit, and the server's text
    is masked (it may echo a secret) and cut short before it goes into an :class:`Attempt`.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        endpoint: str,
        credentials: Credentials,
        *,
        timeout: float,
        proxy: str | None = None,
        wall_clock: Callable[[], float] = time.time,
        max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES,
    ) -> None:
        self._session = session
        self._endpoint = endpoint.rstrip("/")
        self._credentials = credentials
        self._timeout = timeout
        self._proxy = proxy
        # aiohttp's own timer, not a cancel scope per request: that was a tenth of the
        # client's CPU per item in the benchmark's profile. It runs until the body is read.
        self._request_timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=timeout)
        self._wall_clock = wall_clock
        self._max_answer = max_answer_bytes
        # Read at each use: tokens renewed during the run are masked too.
        self._redact = Redactor(lambda: credentials.secrets)
        # Why DownloadImageFile said no, once it did: from then on the v3 route is used.
        self._download_refused: str | None = None

    async def set_thumbnail(self, project_id: str, plan_id: str, img_url: str) -> Attempt:
        """``PUT /v3/plan/{project_id}/management/{plan_id}/img``: set one plan's thumbnail."""
        url = f"{self._endpoint}/v3/plan/{project_id}/management/{plan_id}/img"
        # The bytes json.dumps({"img_url": img_url}) gives, without its generic encoder.
        body = ('{"img_url": ' + encode_basestring_ascii(img_url) + "}").encode()
        # The hot path: straight to _send, one coroutine less than request().
        attempt, _, sent = await self._send("PUT", url, body, JSON, "result")
        if not _stale_token(attempt):
            return attempt
        return (await self._renewed(attempt, sent, "PUT", url, body, JSON, "result")).attempt

    async def list_plans(
        self,
        project_id: str,
        *,
        page_no: int,
        page_size: int,
        plan_type: str | None = None,
        search: str | None = None,
    ) -> tuple[Attempt, PlanPage | None]:
        """``POST /v3/plan/{project_id}/managements``: one page of a project's plans."""
        query: dict[str, object] = {"page_no": page_no, "page_size": page_size}
        if plan_type is not None:
            query["type"] = plan_type
        if search is not None:
            query["search"] = search
        reply = await self.request(
            "POST", f"/v3/plan/{project_id}/managements", json_body=query, expect="plans"
        )
        if reply.attempt.verdict is not Verdict.OK:
            return reply.attempt, None
        page = _plan_page(project_id, reply.body)
        if isinstance(page, str):
            return _unexpected(reply.attempt, page), None
        return reply.attempt, page

    async def upload_image(
        self, project_id: str, data: bytes, filename: str
    ) -> tuple[Attempt, str | None]:
        """``POST /v2/{project_id}/img``: upload an image (multipart field ``file``)."""
        boundary = secrets.token_hex(16)
        content_type = CONTENT_TYPES.get(image_type(data) or "", "application/octet-stream")
        head = (
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n"
        )
        body = head.encode() + data + f"\r\n--{boundary}--\r\n".encode()
        reply = await self.request(
            "POST",
            f"/v2/{project_id}/img",
            body=body,
            content_type=f"multipart/form-data; boundary={boundary}",
            expect="img_url",
        )
        if reply.attempt.verdict is not Verdict.OK:
            return reply.attempt, None
        img_url = reply.body.get("img_url")  # an OK answer's body is always a dict
        if not isinstance(img_url, str):
            return _unexpected(reply.attempt, "the upload answer has no img_url"), None
        return reply.attempt, img_url

    async def download_image(self, project_id: str, img_url: str) -> tuple[Attempt, bytes | None]:
        """An image's bytes: ``GET /v4/projects/{project_id}/image-file?image_uri=...``.

        DownloadImageFile needs the identity-policy action codeartsreq:attachment:download,
        which many IAM users lack. When it is refused for want of permission, the documented
        ``GET /v3/upload/...`` route (the img_url with ``v1`` swapped for ``v3``, no identity
        policy needed, facts §0) serves this download and every later one.
        """
        if self._download_refused is None:
            path = f"/v4/projects/{project_id}/image-file?image_uri={quote(img_url, safe='/')}"
            reply = await self.request("GET", path, expect=None)
            if reply.attempt.verdict is not Verdict.FORBIDDEN:
                body = bytes(reply.body) if reply.attempt.verdict is Verdict.OK else None
                return reply.attempt, body
            # One extra request, once a run, outside the rate governor's count. A refusal's
            # error is never empty: _send puts the permission hint in it.
            self._download_refused = reply.attempt.error
        reply = await self.request("GET", "/v3/" + img_url.removeprefix("/v1/"), expect=None)
        attempt = reply.attempt
        if attempt.verdict is Verdict.FORBIDDEN:
            error = f"{self._download_refused}; the v3 download was refused too: {attempt.error}"
            return replace(attempt, error=error), None
        if attempt.verdict is not Verdict.OK:
            return attempt, None
        return attempt, bytes(reply.body)

    async def request(
        self,
        method: str,
        path: str,
        *,
        json_body: object = None,
        body: bytes | None = None,
        content_type: str | None = None,
        expect: str | None,
    ) -> Reply:
        """Send one request, renewing stale credentials once; never raises for HTTP trouble.

        Give ``json_body``, or raw ``body`` bytes with their ``content_type`` (a multipart
        upload); either way the exact bytes sent are what gets signed. A 200 answer is JSON
        that says ``"status": "success"``, or has no ``status`` but the key ``expect``. With
        ``expect=None`` it is raw bytes instead (an image, up to its own size limit).
        """
        if json_body is not None:
            body, content_type = json.dumps(json_body).encode(), JSON
        url = self._endpoint + path
        attempt, data, sent = await self._send(method, url, body, content_type, expect)
        if not _stale_token(attempt):
            return Reply(attempt, data)
        return await self._renewed(attempt, sent, method, url, body, content_type, expect)

    async def _renewed(
        self,
        attempt: Attempt,
        sent: dict[str, str],
        method: str,
        url: str,
        body: bytes | None,
        content_type: str | None,
        expect: str | None,
    ) -> Reply:
        """Renew the credentials the server called stale, then send once more."""
        try:
            renewed = await self._credentials.renew(sent)
        except RunAborted as exc:
            error = self._server_text(f"{attempt.error}; renewing the token failed: {exc}")
            return Reply(replace(attempt, error=error))
        if not renewed:
            return Reply(attempt)
        attempt, data, _ = await self._send(method, url, body, content_type, expect)
        return Reply(attempt, data)

    async def _send(
        self,
        method: str,
        url: str,
        body: bytes | None,
        content_type: str | None,
        expect: str | None,
    ) -> tuple[Attempt, Any, dict[str, str]]:
        """One attempt: the classified answer, its decoded body, and the headers sent."""
        headers = {"Content-Type": content_type} if content_type is not None else {}
        try:
            await self._credentials.authorize(method, url, headers, body)
        except RunAborted as exc:  # a token due for renewal could not be renewed
            return _rejected(self._server_text(str(exc))), None, headers
        limit = self._max_answer if expect is not None else MAX_IMAGE_ANSWER_BYTES
        try:
            # Workers never outnumber pooled connections, so this clock starts once the
            # request holds a connection, not while it queues for one.
            async with self._session.request(
                method,
                url,
                data=body,
                headers=headers,
                proxy=self._proxy,
                timeout=self._request_timeout,
                # A redirect would take the credentials to another host, or to plain http.
                allow_redirects=False,
            ) as resp:
                data = await read_limited(resp, limit)
                if data is None:
                    return _too_large(resp, limit, json=expect is not None), None, headers
                if expect is None and resp.status == 200:
                    return Attempt(Verdict.OK, 200), data, headers
                attempt, decoded = self._classify(resp, data, expect or "result")
                if attempt.verdict is Verdict.FORBIDDEN:
                    attempt = replace(attempt, error=_permission_hint(attempt, url))
                return attempt, decoded, headers
        except TimeoutError:
            return _no_answer(f"no answer within {self._timeout:g} s"), None, headers
        except aiohttp.ClientConnectorError as exc:
            # Never connected, so never sent: a clean, retryable failure.
            return Attempt(Verdict.RETRY, error=f"cannot connect: {exc.os_error}"), None, headers
        except aiohttp.ClientHttpProxyError as exc:
            # The proxy refused the tunnel (CONNECT): nothing reached the server.
            reason = self._server_text(f"HTTP {exc.status} {exc.message}".strip())
            error = f"cannot connect: the proxy refused the tunnel ({reason})"
            return Attempt(Verdict.RETRY, error=error), None, headers
        except aiohttp.ClientError as exc:
            return _no_answer(f"connection lost: {type(exc).__name__}"), None, headers

    def _classify(
        self, resp: aiohttp.ClientResponse, raw: bytes, expect: str
    ) -> tuple[Attempt, Any]:
        """The verdict on one answer, and its decoded body (kept only for a success)."""
        status = resp.status
        headers = resp.headers
        request_id = headers.get("X-Request-Id")
        body = _decode(raw)
        code, message = _error_fields(body)
        retry_after = _retry_after(headers.get("Retry-After"), self._wall_clock)
        if status == 200:
            if isinstance(body, dict):
                said = body.get("status")
                if said == "success" or (said is None and expect in body):
                    return Attempt(Verdict.OK, 200, code, None, request_id, retry_after), body
                if said == "error":
                    message = message or "the API answered status error"
                    return self._attempt(
                        Verdict.PERMANENT, 200, code, message, request_id, retry_after
                    ), None
            message = f"unexpected answer (no `status` or `{expect}`): " + _quote(raw)
            verdict = Verdict.PERMANENT
        elif 300 <= status < 400:
            # Not followed (allow_redirects=False): name where it pointed, and fail for good.
            where = headers.get("Location", "nowhere")
            message = (
                f"the server redirected to {where}; redirects are not followed, so credentials "
                "never leave the endpoint: check the endpoint URL"
            )
            verdict = Verdict.PERMANENT
        elif status == 429 or code in THROTTLE_CODES:
            attempt = self._attempt(
                Verdict.THROTTLED, status, code, message, request_id, retry_after
            )
            return replace(attempt, limit=stated_limit(message)), None
        elif status == 401:
            verdict = Verdict.REJECTED
        elif status == 403 or code in PERMISSION_CODES:
            verdict = Verdict.FORBIDDEN
        elif status >= 500 or status == 408:
            verdict = Verdict.RETRY
        else:
            verdict = Verdict.PERMANENT
            message = message or resp.reason or f"HTTP {status}"
        return self._attempt(verdict, status, code, message, request_id, retry_after), None

    def _attempt(
        self,
        verdict: Verdict,
        status: int,
        code: str | None,
        message: str | None,
        request_id: str | None,
        retry_after: float | None,
    ) -> Attempt:
        """An answer that is not a success: the server's words masked and cut short."""
        if code is not None:
            code = self._server_text(code, MAX_CODE_CHARS)
        if message is not None:
            message = self._server_text(message)
        return Attempt(verdict, status, code, message, request_id, retry_after)

    def _server_text(self, text: str, limit: int = MAX_ERROR_CHARS) -> str:
        """Text a server chose, fit for the report and messages: secrets masked, then cut.

        Masked before it is cut, so that a cut never leaves part of a secret behind.
        """
        return shorten(self._redact(text), limit)


def _too_large(resp: aiohttp.ClientResponse, limit: int, *, json: bool) -> Attempt:
    """An answer past its size limit: a failure, not retried (it would be as large again)."""
    error = f"the answer (HTTP {resp.status}) is larger than {limit:,} bytes; it was not read"
    if json:
        error += " (--max-answer-mb raises this limit)"
    applied = resp.status < 300
    if applied:
        error += "; the server may have applied the request"
    return Attempt(
        Verdict.PERMANENT,
        resp.status,
        error=error,
        request_id=resp.headers.get("X-Request-Id"),
        ambiguous=applied,
    )


def shorten(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    """``text`` cut to at most ``limit`` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit:,} more characters)"


def _quote(raw: bytes) -> str:
    """An answer's bytes as text to quote in an error (cut later, after masking)."""
    return raw[: MAX_ERROR_CHARS * 8].decode(errors="replace") or "an empty body"


async def read_limited(resp: aiohttp.ClientResponse, limit: int) -> bytes | None:
    """The answer's body, or None once it passes ``limit`` bytes, compressed or decoded.

    A declared ``Content-Length`` is checked before anything is read. aiohttp decodes gzip
    in bounded steps as the body is read, so a small bomb never inflates past the limit.
    """
    length = resp.content_length
    if length is not None and length > limit:
        return None
    if length is not None and "Content-Encoding" not in resp.headers:
        return await resp.read()  # exactly ``length`` bytes: the common case, one call
    chunks: list[bytes] = []
    total = 0
    stream = resp.content
    while chunk := await stream.read(READ_CHUNK):
        total += len(chunk)
        # The wire bytes too: a stream that decodes to little must not run on unbounded.
        if total > limit or (getattr(stream, "total_compressed_bytes", None) or 0) > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _stale_token(attempt: Attempt) -> bool:
    """A 401 saying the token is invalid or expired (facts §4.1): worth one renewal."""
    if attempt.http_status != 401:
        return False
    message = (attempt.error or "").lower()
    return attempt.error_code in STALE_TOKEN_CODES or "token must be updated" in message


_PROJECT_IN_PATH = re.compile(r"/(?:v3/plan|v3/upload|v2|v4/projects)/([A-Za-z0-9]{1,32})/")


def _permission_hint(attempt: Attempt, url: str) -> str:
    """What a permission refusal means and what to grant, naming the project (facts §0)."""
    found = _PROJECT_IN_PATH.search(urlsplit(url).path)
    project = f"project {found[1]}" if found else "this project"
    said = f" ({attempt.error})" if attempt.error else ""
    if attempt.error_code == NOT_A_MEMBER:
        return (
            f"the user is not a member of {project}{said}; add the IAM user to that "
            "CodeArts Req project with a role that may edit plans"
        )
    if attempt.error_code == NO_PERMISSION and "/image-file" in url:
        return (
            f"no permission{said}: the IAM user needs {DOWNLOAD_ACTION} (an identity "
            "policy) to download images"
        )
    if attempt.error_code == NO_PERMISSION:
        return f"no permission in {project}{said}: the user's role there does not allow this"
    return (
        f"forbidden in {project}{said}: the identity lacks a role in the project or an "
        "IAM permission"
    )


def _rejected(reason: str) -> Attempt:
    return Attempt(Verdict.REJECTED, error=reason)


def _unexpected(attempt: Attempt, why: str) -> Attempt:
    return Attempt(
        Verdict.PERMANENT,
        attempt.http_status,
        None,
        f"unexpected answer: {why}",
        attempt.request_id,
    )


def _plan_page(project_id: str, body: Any) -> PlanPage | str:
    """A list answer's plans, bare or wrapped as ``{result, status}`` (facts §1.1: unknown),
    or why the answer is not a plan list."""
    if not isinstance(body, dict) or not isinstance(body.get("plans"), list):
        return "the plan list has no `plans` array"
    plans: list[PlanSummary] = []
    for element in body["plans"]:
        plan = element.get("result", element) if isinstance(element, dict) else None
        if not isinstance(plan, dict) or not isinstance(plan.get("id"), str):
            continue
        img_url = plan.get("img_url")
        fields = {
            "id": plan["id"],
            "name": str(plan.get("name", "")),
            "type": str(plan.get("type", "")),
        }
        if isinstance(img_url, str):
            fields["img_url"] = img_url
        for key, value in fields.items():
            if len(value) > MAX_PLAN_FIELD_CHARS:
                return f"a plan's {key} is {len(value):,} characters long"
        plans.append(
            PlanSummary(
                project_id=project_id,
                plan_id=fields["id"],
                name=fields["name"],
                type=fields["type"],
                img_url=img_url if isinstance(img_url, str) and img_url else None,
                img_known="img_url" in plan,
            )
        )
    total = body.get("total")
    valid = isinstance(total, int) and not isinstance(total, bool) and total >= 0
    return PlanPage(tuple(plans), total if valid else None)


def _no_answer(reason: str) -> Attempt:
    return Attempt(
        Verdict.RETRY,
        error=f"{reason}; the request was sent, so the server may have applied it",
        ambiguous=True,
    )


def _decode(raw: bytes) -> Any:
    """``json.loads(raw)``, or None for no body or no JSON."""
    try:
        if raw[:1] == b"{" and raw[1:2] != b"\0":
            # Plainly UTF-8 (json.loads would guess UTF-16 from a NUL byte): spare the guess.
            return _JSON_DECODER.decode(raw.decode("utf-8", "surrogatepass"))
        return json.loads(raw) if raw else None
    except ValueError:
        return None


_JSON_DECODER = json.JSONDecoder()


_ERROR_KEY_PAIRS = (("error_code", "error_msg"), ("errorCode", "errorMsg"), ("code", "message"))
_ERROR_KEYS = frozenset(key for pair in _ERROR_KEY_PAIRS for key in pair)


def _error_fields(body: Any) -> tuple[str | None, str | None]:
    """The error code and message, in any of the shapes Huawei services use (facts §5.1)."""
    if not isinstance(body, dict):
        return None, None
    if not body.keys().isdisjoint(_ERROR_KEYS):  # most answers have none of them: one probe
        for code_key, msg_key in _ERROR_KEY_PAIRS:
            if code_key in body or msg_key in body:
                code, msg = body.get(code_key), body.get(msg_key)
                return (
                    str(code) if code is not None else None,
                    str(msg) if msg is not None else None,
                )
    for nested in body.values():
        if isinstance(nested, dict):
            code, msg = _error_fields(nested)
            if code or msg:
                return code, msg
    return None, None


# APIG names the policy's limit in its 429 (facts §5.3): "...over ratelimit,limit:XX,time:1 second"
# (or "1 minute"). Only a hint: a message without it, or in another form, states nothing.
_STATED_LIMIT = re.compile(
    r"limit:\s*(\d{1,9}(?:\.\d{1,6})?)\s*,\s*time:\s*(\d{1,6})\s*(second|minute|hour|day)s?\b",
    re.IGNORECASE,
)
_UNIT_SECONDS = {"second": 1.0, "minute": 60.0, "hour": 3600.0, "day": 86400.0}


def stated_limit(message: str | None) -> StatedLimit | None:
    """The limit a throttling message names, or None when it names none (or 0)."""
    found = _STATED_LIMIT.search(message[:MAX_ERROR_CHARS]) if message else None
    if found is None:
        return None
    requests, count, unit = float(found[1]), int(found[2]), found[3].lower()
    if requests <= 0 or count <= 0:
        return None
    return StatedLimit(requests, count * _UNIT_SECONDS[unit])


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
    transport: Transport | None = None,
    max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES,
) -> AsyncIterator[PlanApi]:
    """A :class:`PlanApi` on a session whose pool has a connection for every worker."""
    transport = transport or make_transport()
    connector = aiohttp.TCPConnector(
        limit=concurrency + 2, limit_per_host=0, ttl_dns_cache=300, ssl=transport.ssl
    )
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
        yield PlanApi(
            session,
            endpoint,
            credentials,
            timeout=timeout,
            proxy=transport.proxy_for(endpoint),
            max_answer_bytes=max_answer_bytes,
        )


async def _iam_request(
    transport: Transport,
    timeout: float,  # noqa: ASYNC109 - the whole call, session included
    method: str,
    url: str,
    *,
    headers: dict[str, str],
    data: bytes | None = None,
) -> tuple[int, bytes | None, Mapping[str, str]]:
    """One IAM call in a short session of its own: it happens once a run or a day, and keeps
    the request pool, sized for the workers, out of it. Redirects are not followed; the answer
    is None when larger than the cap. Raises TimeoutError or ClientError."""
    connector = aiohttp.TCPConnector(ssl=transport.ssl)
    with anyio.fail_after(timeout):
        async with (
            aiohttp.ClientSession(
                connector=connector,
                headers={"User-Agent": USER_AGENT},
                trust_env=False,
                # X-Subject-Token may be as long as a token may be (32,768).
                max_field_size=MAX_TOKEN_HEADER,
            ) as session,
            session.request(
                method,
                url,
                data=data,
                headers=headers,
                proxy=transport.proxy_for(url),
                allow_redirects=False,  # credentials must not follow a redirect
            ) as resp,
        ):
            return resp.status, await read_limited(resp, DEFAULT_MAX_ANSWER_BYTES), resp.headers


class IamTokens:
    """Issues IAM tokens, ``POST {endpoint}/v3/auth/tokens`` with a password (facts §4.1).

    Each fetch opens its own short session: it happens once a day or so, and keeps the
    request pool, sized for the workers, out of it.
    """

    def __init__(self, transport: Transport, *, timeout: float = 30.0) -> None:
        self._transport = transport
        self._timeout = timeout

    async def __call__(self, identity: IamIdentity, password: str) -> IssuedToken:
        """Issue a token; raise :class:`RunAborted` saying why not (never with the password)."""
        url = f"{identity.endpoint}/v3/auth/tokens?nocatalog=true"
        user = {"name": identity.user, "password": password, "domain": {"name": identity.domain}}
        payload = {
            "auth": {
                "identity": {"methods": ["password"], "password": {"user": user}},
                "scope": {"project": {"name": identity.project}},
            }
        }
        who = f"IAM user {identity.user} of account {identity.domain}"
        redact = Redactor([password])
        try:
            status, raw, headers = await _iam_request(
                self._transport,
                self._timeout,
                "POST",
                url,
                headers={"Content-Type": "application/json;charset=utf8"},
                data=json.dumps(payload).encode(),
            )
            token = headers.get("X-Subject-Token")
            location = headers.get("Location", "nowhere")
        except TimeoutError:
            raise RunAborted(
                f"no token for {who}: IAM at {identity.endpoint} did not answer "
                f"within {self._timeout:g} s"
            ) from None
        except aiohttp.ClientError as exc:
            raise RunAborted(
                f"no token for {who}: cannot reach IAM at {identity.endpoint} "
                f"({type(exc).__name__})"
            ) from None
        where = f"IAM at {identity.endpoint}"
        if 300 <= status < 400:
            raise RunAborted(
                f"{where} redirected to {shorten(redact(location))}; redirects are not followed, "
                "so the password never leaves IAM's endpoint: check auth.iam.endpoint"
            )
        if raw is None:
            raise RunAborted(
                f"{where} answered more than {DEFAULT_MAX_ANSWER_BYTES:,} bytes (HTTP {status}); "
                "it was not read"
            )
        body = _decode(raw)
        if status != 201 or not token:
            code, message = _error_fields(body)
            said = " ".join(str(part) for part in (code, message) if part)
            said = shorten(redact(said))
            raise RunAborted(
                f"IAM at {identity.endpoint} refused a token for {who}, project "
                f"{identity.project} (HTTP {status}{': ' + said if said else ''}); check the "
                "account, user name, project and the password in its environment variable"
            )
        return IssuedToken(token, _token_lifetime(body, identity.endpoint))


def _token_lifetime(body: Any, endpoint: str) -> float:
    """Seconds the token is valid, from IAM's own ``issued_at`` and ``expires_at``.

    Measured between two server times, so a skewed local clock does not matter.
    """
    token = body.get("token") if isinstance(body, dict) else None
    fields = token if isinstance(token, dict) else {}
    expires, issued = _iso_time(fields.get("expires_at")), _iso_time(fields.get("issued_at"))
    if expires is None:
        raise RunAborted(f"IAM at {endpoint} answered without token.expires_at")
    lifetime = expires - (issued if issued is not None else time.time())
    if lifetime <= 0:
        raise RunAborted(f"IAM at {endpoint} issued a token that has already expired")
    return lifetime


def _iso_time(value: object) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value).timestamp()  # reads a trailing Z since 3.11
    except ValueError:
        return None


# An IAM project id as Keystone returns it (32 hex digits in practice); bounded either way.
_IAM_PROJECT_ID = re.compile(r"[A-Za-z0-9-]{1,64}")


class IamProjects:
    """Looks up the IAM project id of a region, as the SDK's ``BasicCredentials`` does.

    ``GET {endpoint}/v3/projects?name=<region>``, signed with the access key (facts §4.3);
    exactly one project must match. Asked once a run, in a short session of its own.
    """

    def __init__(self, transport: Transport, *, timeout: float = 30.0) -> None:
        self._transport = transport
        self._timeout = timeout

    async def __call__(self, endpoint: str, name: str, signer: Credentials) -> str:
        """The project id; RunAborted when IAM refuses or fails, CredentialsError otherwise."""
        url = f"{endpoint}/v3/projects?name={quote(name, safe='')}"
        headers: dict[str, str] = {}
        await signer.authorize("GET", url, headers, None)
        what = f"cannot look up the IAM project id of {name} for X-Project-Id"
        try:
            status, raw, _ = await _iam_request(
                self._transport, self._timeout, "GET", url, headers=headers
            )
        except TimeoutError:
            raise RunAborted(
                f"{what}: IAM at {endpoint} did not answer within {self._timeout:g} s"
            ) from None
        except aiohttp.ClientError as exc:
            raise RunAborted(
                f"{what}: cannot reach IAM at {endpoint} ({type(exc).__name__})"
            ) from None
        if 300 <= status < 400 or raw is None:
            why = (
                "redirected, and redirects are not followed"
                if raw is not None
                else (f"answered more than {DEFAULT_MAX_ANSWER_BYTES:,} bytes")
            )
            raise RunAborted(f"{what}: IAM at {endpoint} {why} (HTTP {status})")
        body = _decode(raw)
        if status != 200:
            code, message = _error_fields(body)
            said = " ".join(str(part) for part in (code, message) if part)
            advice = "check the access key pair" if status in (401, 403) else "try again later"
            raise RunAborted(
                f"{what}: IAM at {endpoint} refused (HTTP {status}{': ' + said if said else ''}); "
                f"{advice}, or set HUAWEICLOUD_SDK_PROJECT_ID"
            )
        projects = body.get("projects") if isinstance(body, dict) else None
        if not isinstance(projects, list):
            raise RunAborted(f"{what}: IAM at {endpoint} answered without a `projects` list")
        ids = [p.get("id") for p in projects if isinstance(p, dict)]
        if len(ids) != 1:
            found = "no project" if not ids else f"{len(ids)} projects"
            listed = f" ({', '.join(str(i) for i in ids[:10])})" if ids else ""
            raise CredentialsError(
                f"{what}: IAM at {endpoint} has {found} named {name}{listed}; check the "
                "region, or set HUAWEICLOUD_SDK_PROJECT_ID to the project to use"
            )
        project_id = ids[0]
        if not isinstance(project_id, str) or not _IAM_PROJECT_ID.fullmatch(project_id):
            raise RunAborted(f"{what}: IAM at {endpoint} answered an unusable project id")
        return project_id
