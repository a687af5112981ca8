"""The sandbox's HTTP routes: the CodeArts Req plan API, image upload/download and IAM tokens.

Strict where the real API is strict (ids, ``img_url`` pattern, token length, signatures),
with the documented error bodies ``{"error_code", "error_msg"}``. The PUT thumbnail path is
kept lean because benchmarks drive it hard: no logging, one JSON parse, one JSON dump.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import random
import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, NoReturn, Protocol

from aiohttp import web
from aiohttp.multipart import parse_content_disposition

from batchthumb import signing
from batchthumb.images import image_type
from batchthumb.sandbox.config import SandboxConfig
from batchthumb.sandbox.faults import THROTTLE_CODE, Fault, FaultKind, Faults, default_error
from batchthumb.sandbox.limits import Limits, retry_after_value
from batchthumb.sandbox.state import (
    IMG_URL_PATTERN,
    PLAN_TYPES,
    Gate,
    GrantedToken,
    Plan,
    Stats,
    Store,
    is_id,
)
from batchthumb.sandbox.undocumented import (
    MISSING_PROJECT_ID,
    NO_PERMISSION,
    NOT_A_MEMBER,
    UNKNOWN_PLAN,
)

JSON_CONTENT_TYPE = "application/json;charset=UTF-8"
TOKEN_MIN_LENGTH = 10
TOKEN_MAX_LENGTH = 32768
# The gateway's cap on request bodies (facts §4.2: 12 MB for signed bodies); above: 413.
GATEWAY_MAX_BODY = 12 * 1024 * 1024

_IAM_AUTH = "Incorrect IAM authentication information: "
_APP_AUTH = "Incorrect app authentication information: "
_NOT_FOUND = default_error(404)
_request_ids = random.Random()

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Sandbox(Protocol):
    """What the handlers need of the sandbox they serve (:class:`~.server.Sandbox` is one).

    A protocol, so that this module does not import ``server``, which imports it.
    """

    config: SandboxConfig
    faults: Faults
    stats: Stats
    gate: Gate
    list_gates: dict[str, Gate]
    store: Store
    limits: Limits | None
    clock: Callable[[], float]
    wall_clock: Callable[[], float]

    def notify(self) -> None:
        """Wake the waiters whose predicate now holds."""
        ...


class ApiError(Exception):
    """An error answer: HTTP status plus the documented ``{error_code, error_msg}`` body."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    @classmethod
    def from_fault(cls, fault: Fault, throttle_code: str = THROTTLE_CODE) -> ApiError:
        """The error answer a status fault asks for, a throttling code spelled as configured."""
        headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else None
        code = throttle_code if fault.error_code == THROTTLE_CODE else fault.error_code
        return cls(fault.http_status, code, fault.error_msg, headers)

    def response(self) -> web.Response:
        """Render the error as a JSON response."""
        body = {"error_code": self.code, "error_msg": self.message}
        return json_response(body, self.status, self.headers)


class _Dropped(Exception):
    """The handler closed the connection on purpose; nothing is to be sent."""


def json_response(
    body: object, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """Render ``body`` as a JSON response (UTF-8, Chinese text kept as is)."""
    all_headers = {"Content-Type": JSON_CONTENT_TYPE}
    if headers:
        all_headers.update(headers)
    data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    return web.Response(status=status, body=data, headers=all_headers)


def invalid(name: str, why: str = "") -> ApiError:
    """400 ``PM.02175006`` invalid parameter ``name``."""
    return ApiError(400, "PM.02175006", f"Invalid parameter {name}" + (f": {why}" if why else ""))


def parameter_error(why: str) -> ApiError:
    """400 ``PM.02152001`` parameter error."""
    return ApiError(400, "PM.02152001", f"Parameter error: {why}")


def _drop(request: web.Request) -> NoReturn:
    # Closing the transport before returning makes aiohttp's write fail quietly, so the
    # client sees the connection end with no response at all (ServerDisconnectedError).
    transport = request.transport
    if transport is not None:
        transport.close()
    raise _Dropped


def _iso(epoch: float) -> str:
    # IAM's own format: microsecond field holding milliseconds, e.g. 2020-01-04T09:05:22.701000Z
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}000Z"


def _json_body(body: bytes, *, allow_empty: bool = False) -> dict[str, Any]:
    if allow_empty and not body.strip():
        return {}
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise parameter_error("the request body is not valid JSON") from None
    if not isinstance(doc, dict):
        raise parameter_error("the request body must be a JSON object")
    return doc


def _int_param(params: dict[str, Any], name: str, default: int, high: int) -> int:
    value = params.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
        raise invalid(name, f"must be an integer from 1 to {high}")
    return value


def _multipart_file(content_type: str, body: bytes) -> tuple[bytes, str | None]:
    """The bytes of the ``file`` field of a multipart/form-data body, and its file name."""
    mime, _, params = content_type.partition(";")
    if mime.strip().lower() != "multipart/form-data":
        raise parameter_error("the body must be multipart/form-data with a file field")
    boundary = ""
    for param in params.split(";"):
        key, _, value = param.strip().partition("=")
        if key.lower() == "boundary":
            boundary = value.strip().strip('"')
    if not boundary:
        raise parameter_error("the multipart Content-Type has no boundary")
    delimiter = b"\r\n--" + boundary.encode("latin-1")
    for part in (b"\r\n" + body).split(delimiter)[1:]:
        if part.startswith(b"--"):
            break
        head, sep, content = part.partition(b"\r\n\r\n")
        if not sep:
            continue
        for line in head.split(b"\r\n"):
            name, _, value = line.decode("latin-1").partition(":")
            if name.strip().lower() == "content-disposition":
                _, disposition = parse_content_disposition(value.strip())
                if disposition.get("name") == "file":
                    return content, disposition.get("filename")
    raise parameter_error("the multipart body has no file field")


class Routes:
    """The request handlers of one sandbox."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.stats = sandbox.stats
        self.store = sandbox.store

    # -- shared steps -------------------------------------------------------------------

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Count the request, render errors, stamp ``X-Request-Id``, count the status."""
        stats = self.stats
        stats.requests += 1
        if self.sandbox.config.record_headers:
            stats.headers.append(dict(request.headers))
        try:
            response = await handler(request)
        except ApiError as exc:
            response = exc.response()
        except _Dropped:
            stats.drops += 1
            self.sandbox.notify()
            return web.Response(status=599)  # never sent: the transport is closed
        except web.HTTPException as exc:
            if exc.status in (404, 405):
                code, message = _NOT_FOUND
                response = ApiError(404, code, message).response()
            else:
                code, message = default_error(exc.status)
                response = ApiError(exc.status, code, message).response()
        response.headers["X-Request-Id"] = f"{_request_ids.getrandbits(128):032x}"
        stats.status_counts[response.status] += 1
        self.sandbox.notify()
        return response

    def authenticate(self, request: web.Request, body: bytes | None, *, iam: bool = False) -> None:
        """Accept an ``X-Auth-Token`` or an ``SDK-HMAC-SHA256`` signature, else raise 401.

        A signed API call (``iam`` False) must also carry a known ``X-Project-Id`` unless
        the config says otherwise, as the SDK always sends it (facts §4.3).
        """
        headers = request.headers
        authorization = headers.get("Authorization")
        if authorization is not None and authorization.startswith(signing.ALGORITHM):
            self._verify_signature(request, body)
            config = self.sandbox.config
            if (
                not iam
                and config.require_project_id
                and headers.get("X-Project-Id") not in config.iam_project_ids
            ):
                raise ApiError(401, "APIGW.0301", MISSING_PROJECT_ID)
            return
        token = headers.get("X-Auth-Token")
        if token is None:
            raise ApiError(401, "APIGW.0301", _IAM_AUTH + "x-auth-token not found")
        if not TOKEN_MIN_LENGTH <= len(token) <= TOKEN_MAX_LENGTH:
            raise ApiError(
                401,
                "APIGW.0301",
                _IAM_AUTH + f"X-Auth-Token must be {TOKEN_MIN_LENGTH} to {TOKEN_MAX_LENGTH} "
                f"characters long, got {len(token)}",
            )
        config = self.sandbox.config
        if token in config.tokens:
            return
        issued = self.store.tokens.get(token)
        if issued is not None:
            if self.sandbox.wall_clock() >= issued.expires_at:
                raise ApiError(401, "APIGW.0301", _IAM_AUTH + "The token must be updated.")
            return
        if config.accepts_any_token:
            return
        raise ApiError(401, "APIGW.0301", _IAM_AUTH + "decrypt token fail")

    def _verify_signature(self, request: web.Request, body: bytes | None) -> None:
        url = request.rel_url
        result = signing.verify_request(
            method=request.method,
            path=url.raw_path,
            query=url.raw_query_string,
            headers=request.headers,
            body=body,
            secret_for=self.sandbox.config.aksk,
            now=datetime.fromtimestamp(self.sandbox.wall_clock(), UTC),
        )
        if result.failure is not None:
            message = f"{_APP_AUTH}{result.failure.value}: {result.detail}"
            if result.canonical_request is not None:
                # The real gateway echoes the canonical request it computed, to help debugging.
                message += f"; canonical request: {result.canonical_request!r}"
            raise ApiError(401, "APIGW.0303", message)

    def project(self, request: web.Request) -> str:
        """The validated ``project_id`` path parameter."""
        project_id = request.match_info["project_id"]
        if not is_id(project_id):
            raise invalid("project_id", "must be 32 letters or digits")
        if project_id in self.sandbox.config.non_member_projects:
            raise ApiError(*NOT_A_MEMBER)
        return project_id

    def plans_of(self, project_id: str, *, create: bool) -> dict[str, Plan]:
        """The plans of a known project; unknown: created, empty, or 400 ``PM.02152005``."""
        plans = self.store.projects.get(project_id)
        if plans is not None:
            return plans
        if not self.sandbox.config.autocreate:
            raise ApiError(400, "PM.02152005", "The project does not exist or has been deleted.")
        return self.store.ensure_project(project_id) if create else {}

    async def admit(self, api: str, request: web.Request, body: bytes | None) -> None:
        """Hold the request for the latency, authenticate it, then apply ``api``'s rate limit.

        The latency stands for the round trip, so every route sleeps it whatever the answer;
        the limit is per user, so it counts only authenticated requests (429 above it).
        """
        sandbox = self.sandbox
        delay = sandbox.faults.delay()
        if delay > 0:
            await asyncio.sleep(delay)
        self.authenticate(request, body)
        limits = sandbox.limits
        if limits is None:
            return
        now = sandbox.clock()
        refused = limits.admit(api, now)
        if refused is None:
            return
        wait, limiter = refused
        retry_after = retry_after_value(limits.limit.retry_after, wait, sandbox.wall_clock())
        headers = {"Retry-After": retry_after} if retry_after is not None else None
        raise ApiError(429, sandbox.config.throttle_code, limiter.message(now), headers)

    # -- CodeArts Req -------------------------------------------------------------------

    async def put_img(self, request: web.Request) -> web.StreamResponse:
        """``PUT /v3/plan/{project_id}/management/{plan_id}/img``: set a plan's thumbnail."""
        sandbox = self.sandbox
        stats = self.stats
        stats.puts += 1
        now = sandbox.clock()
        if stats.first_put_at is None:
            stats.first_put_at = now
        stats.last_put_at = now
        sandbox.notify()
        # Read the whole request first: a request held at the gate has been sent, and is
        # applied when the gate opens even if its client is gone by then (the ambiguous case).
        body = await request.read()
        gate = sandbox.gate
        if not gate.is_open:
            stats.waiting_at_gate += 1
            sandbox.notify()
            try:
                await gate.wait()
            finally:
                stats.waiting_at_gate -= 1
                sandbox.notify()
        if gate.aborted:  # the server is stopping
            _drop(request)
        await self.admit("put", request, body)
        faults = sandbox.faults
        plan_id = request.match_info["plan_id"]
        fault = faults.take(plan_id)
        drop_after_apply = False
        if fault is not None:
            kind = fault.kind
            if kind is FaultKind.DROP:
                _drop(request)
            elif kind is FaultKind.DROP_AFTER_APPLY:
                drop_after_apply = True
            elif kind is FaultKind.STATUS_ERROR:
                return json_response(
                    {
                        "status": "error",
                        "error_code": fault.error_code,
                        "error_msg": fault.error_msg,
                    }
                )
            else:
                raise ApiError.from_fault(fault, sandbox.config.throttle_code)

        project_id = self.project(request)
        if not is_id(plan_id):
            raise invalid("plan_id", "must be 32 letters or digits")
        img_url = _json_body(body).get("img_url")
        if not isinstance(img_url, str):
            raise parameter_error("img_url is required and must be a string")
        if IMG_URL_PATTERN.fullmatch(img_url) is None:
            raise invalid("img_url", "must look like /v1/upload/<project_id>/<yyyymm>/<name>.<ext>")
        plans = self.plans_of(project_id, create=True)
        plan = plans.get(plan_id)
        if plan is None:
            if not sandbox.config.autocreate:
                raise _unknown_plan(plan_id)
            plan = self.store.add_plan(project_id, f"Plan {plan_id[:8]}", "mind", plan_id=plan_id)
        if sandbox.config.strict_urls:
            upload = self.store.uploads.get(img_url)
            if upload is None or upload.project_id != project_id:
                raise invalid("img_url", "not an image uploaded to this project")
        plan = self.store.set_img(plan, img_url)
        stats.applied[(project_id, plan_id)] += 1
        sandbox.notify()
        if drop_after_apply:
            _drop(request)
        return json_response({"result": plan.to_json(), "status": "success"})

    async def list_plans(self, request: web.Request) -> web.StreamResponse:
        """``POST /v3/plan/{project_id}/managements``: one page of a project's plans."""
        self.stats.lists += 1
        body = await request.read()
        sandbox = self.sandbox
        gate = sandbox.list_gates.get(request.match_info["project_id"])
        if gate is not None and not gate.is_open:
            sandbox.notify()  # counted in stats.lists: a test can wait for it to be held
            await gate.wait()
            if gate.aborted:  # the server is stopping
                _drop(request)
        await self.admit("list", request, body)
        project_id = self.project(request)
        params = _json_body(body, allow_empty=True)
        page_no = _int_param(params, "page_no", 1, 9999)
        page_size = _int_param(params, "page_size", 1, 200)
        plan_type = params.get("type")
        if plan_type is not None and plan_type not in PLAN_TYPES:
            raise invalid("type", "must be gantt or mind")
        search = params.get("search")
        if search is not None and not isinstance(search, str):
            raise invalid("search", "must be a string")
        user_ids = params.get("user_ids")
        if user_ids is not None and (
            not isinstance(user_ids, list) or not all(isinstance(u, str) for u in user_ids)
        ):
            raise invalid("user_ids", "must be a list of strings")
        plans: list[Plan] = list(self.plans_of(project_id, create=False).values())
        if search:
            needle = search.casefold()
            plans = [p for p in plans if needle in p.name.casefold()]
        if user_ids:
            wanted = set(user_ids)
            plans = [p for p in plans if p.creator.user_id in wanted]
        # minds/gantts count the plans matching every filter but type, as tab counters would.
        minds = sum(1 for p in plans if p.type == "mind")
        gantts = len(plans) - minds
        if plan_type:
            plans = [p for p in plans if p.type == plan_type]
        start = (page_no - 1) * page_size
        with_img = self.sandbox.config.list_img
        items: list[dict[str, Any]] = [
            p.to_json(with_img=with_img) for p in plans[start : start + page_size]
        ]
        if self.sandbox.config.list_wrapped:
            items = [{"result": item, "status": "success"} for item in items]
        return json_response(
            {"plans": items, "total": len(plans), "minds": minds, "gantts": gantts}
        )

    async def create_plan(self, request: web.Request) -> web.StreamResponse:
        """``POST /v3/plan/{project_id}/management``: create a plan."""
        self.stats.creates += 1
        body = await request.read()
        await self.admit("create", request, body)
        project_id = self.project(request)
        params = _json_body(body)
        name = params.get("name")
        if not isinstance(name, str) or not name.strip():
            raise parameter_error("name is required and must be a non-empty string")
        plan_type = params.get("type", "mind")
        if plan_type not in PLAN_TYPES:
            raise invalid("type", "must be gantt or mind")
        self.plans_of(project_id, create=True)
        plan = self.store.add_plan(project_id, name, plan_type)
        return json_response({"result": plan.to_json(), "status": "success"})

    async def plan_info(self, request: web.Request) -> web.StreamResponse:
        """``GET /v3/plan/{project_id}/{plan_id}/info``: one plan, without its img_url."""
        self.stats.infos += 1
        body = await request.read()
        await self.admit("info", request, body)
        project_id = self.project(request)
        plan_id = request.match_info["plan_id"]
        if not is_id(plan_id):
            raise invalid("plan_id", "must be 32 letters or digits")
        plan = self.plans_of(project_id, create=False).get(plan_id)
        if plan is None:
            raise _unknown_plan(plan_id)
        result = plan.to_json(with_img=False)
        result["updater"] = plan.creator.to_json()
        result["created_on"] = str(plan.created_on)
        result["updated_on"] = str(plan.updated_on)
        return json_response({"result": result, "status": "success"})

    # -- images -------------------------------------------------------------------------

    async def upload_img(self, request: web.Request) -> web.StreamResponse:
        """``POST /v2/{project_id}/img``: store a multipart ``file`` image, return its URL."""
        sandbox = self.sandbox
        self.stats.uploads += 1
        body = await request.read()
        await self.admit("upload", request, body)
        project_id = self.project(request)
        self.plans_of(project_id, create=True)
        data, filename = _multipart_file(request.headers.get("Content-Type", ""), body)
        limit = sandbox.config.max_upload_bytes
        if len(data) > limit:
            # The 5 MB cap is the service's (doc of UploadIssueImg), not the gateway's 12 MB
            # body cap (APIGW.0201, 413), so the service's invalid-parameter code answers it.
            raise invalid("file", f"the image is larger than {limit} bytes")
        ext = image_type(data)
        if ext is None:
            raise invalid("file", "not a png, jpg, gif, bmp or webp image")
        img_id, upload = self.store.store_upload(project_id, data, ext, filename)
        return json_response({"img_id": img_id, "img_url": upload.img_url})

    async def download_img(self, request: web.Request) -> web.StreamResponse:
        """``GET /v4/projects/{project_id}/image-file?image_uri=...``: the stored image."""
        self.stats.downloads += 1
        body = await request.read()
        await self.admit("download", request, body)
        if not self.sandbox.config.download_permission:
            # The identity policy codeartsreq:attachment:download, checked before any role.
            raise ApiError(*NO_PERMISSION)
        self.project(request)
        upload = self.store.uploads.get(request.query.get("image_uri", ""))
        if upload is None:
            raise invalid("image_uri", "no such image")
        return web.Response(body=upload.data, headers={"Content-Type": upload.content_type})

    async def download_v3(self, request: web.Request) -> web.StreamResponse:
        """``GET /v3/upload/{project_id}/{yyyymm}/{name}``: the img_url with v1 swapped for v3.

        Documented on the UploadIssuesImg page; it needs no identity policy (facts §0).
        """
        self.stats.downloads += 1
        body = await request.read()
        await self.admit("download", request, body)
        if request.match_info["project_id"] in self.sandbox.config.non_member_projects:
            raise ApiError(*NOT_A_MEMBER)
        img_url = "/v1/" + request.path.removeprefix("/v3/")
        upload = self.store.uploads.get(img_url)
        if upload is None:
            raise invalid("img_url", "no such image")
        return web.Response(body=upload.data, headers={"Content-Type": upload.content_type})

    # -- IAM ----------------------------------------------------------------------------

    async def list_iam_projects(self, request: web.Request) -> web.StreamResponse:
        """``GET /v3/projects?name=``: Keystone's project list, as the SDK's lookup reads it."""
        self.stats.project_lookups += 1
        self.authenticate(request, await request.read(), iam=True)
        name = request.query.get("name", "")
        config = self.sandbox.config
        names = [name] if "name" in request.query else list(config.iam_projects)
        projects = [
            {
                "id": project_id,
                "name": region,
                "domain_id": _stable_id("domain", "sandbox"),
                "parent_id": _stable_id("domain", "sandbox"),
                "is_domain": False,
                "enabled": True,
                "description": "",
                "links": {"self": f"{request.url.origin()}/v3/projects/{project_id}"},
            }
            for region in names
            for project_id in config.iam_projects.get(region, ())
        ]
        links = {"self": str(request.url), "previous": None, "next": None}
        return json_response({"projects": projects, "links": links})

    async def issue_token(self, request: web.Request) -> web.StreamResponse:
        """``POST /v3/auth/tokens``: a password-scoped token in ``X-Subject-Token``."""
        raw = await request.read()
        delay = self.sandbox.faults.delay()  # IAM is another service: latency, no API limit
        if delay > 0:
            await asyncio.sleep(delay)
        try:
            doc = json.loads(raw)
            auth = doc["auth"]
            identity = auth["identity"]
            if "password" not in identity["methods"]:
                raise ValueError("password method required")
            user = identity["password"]["user"]
            name, password = user["name"], user["password"]
            domain = user["domain"]["name"]
            scope = auth["scope"]["project"]["name"]
            if not all(isinstance(v, str) for v in (name, password, domain, scope)):
                raise TypeError("strings required")
        except (ValueError, TypeError, KeyError, UnicodeDecodeError):
            # IAM.0011 "Request body is invalid." per the IAM error-code page.
            return json_response(
                {"error_msg": "Request body is invalid.", "error_code": "IAM.0011"}, 400
            )
        match = next(
            (u for u in self.sandbox.config.iam_users if (u.domain, u.name) == (domain, name)),
            None,
        )
        if match is None or not hmac.compare_digest(match.password.encode(), password.encode()):
            # Shape inferred (facts §4.1 has no error example for this call).
            return json_response(
                {"error_msg": "The username or password is wrong.", "error_code": "IAM.0004"}, 401
            )
        if scope != match.project:
            # [I] IAM.0007 "Request parameter %(key)s is invalid." from the IAM error codes.
            return json_response(
                {
                    "error_msg": "Request parameter scope.project.name is invalid.",
                    "error_code": "IAM.0007",
                },
                400,
            )
        issued_at = self.sandbox.wall_clock()
        token = "MIIsandbox" + secrets.token_urlsafe(144)
        self.store.tokens[token] = GrantedToken(name, scope, issued_at + match.token_ttl)
        self.stats.tokens_issued += 1
        body = {
            "token": {
                "expires_at": _iso(issued_at + match.token_ttl),
                "issued_at": _iso(issued_at),
                "methods": ["password"],
                "catalog": [],
                "roles": [],
                "project": {"name": scope, "id": _stable_id("project", domain, scope)},
                "user": {
                    "name": name,
                    "id": _stable_id("user", domain, name),
                    "domain": {"name": domain, "id": _stable_id("domain", domain)},
                },
            }
        }
        return json_response(body, 201, {"X-Subject-Token": token})


def _unknown_plan(plan_id: str) -> ApiError:
    status, code = UNKNOWN_PLAN
    return ApiError(status, code, f"Invalid parameter plan_id: plan {plan_id} does not exist")


def _stable_id(*parts: str) -> str:
    return hashlib.md5("/".join(parts).encode(), usedforsecurity=False).hexdigest()


def build_app(sandbox: Sandbox) -> web.Application:
    """Return the aiohttp application serving ``sandbox``."""
    routes = Routes(sandbox)
    app = web.Application(middlewares=[routes.middleware], client_max_size=GATEWAY_MAX_BODY)
    add = app.router
    add.add_put("/v3/plan/{project_id}/management/{plan_id}/img", routes.put_img)
    add.add_post("/v3/plan/{project_id}/managements", routes.list_plans)
    add.add_post("/v3/plan/{project_id}/management", routes.create_plan)
    add.add_get("/v3/plan/{project_id}/{plan_id}/info", routes.plan_info)
    add.add_post("/v2/{project_id}/img", routes.upload_img)
    add.add_get("/v4/projects/{project_id}/image-file", routes.download_img)
    add.add_get("/v3/upload/{project_id}/{yyyymm}/{name}", routes.download_v3)
    add.add_post("/v3/auth/tokens", routes.issue_token)
    add.add_get("/v3/projects", routes.list_iam_projects)
    return app
