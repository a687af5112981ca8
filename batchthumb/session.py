"""Where a command's requests go: the resolved connection, its pacing, and the embedded sandbox.

Nothing is sent when a :class:`Connection` is resolved; :func:`open_session` fetches the first
IAM token (if any) and opens the API.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from batchthumb.auth import AkSk, Credentials, IamPassword, StaticToken, load_credentials
from batchthumb.client import (
    IamProjects,
    IamTokens,
    PlanApi,
    Transport,
    check_url,
    make_transport,
    open_api,
)
from batchthumb.console import Console
from batchthumb.errors import UsageError
from batchthumb.model import AuthConfig, Job, RunSettings
from batchthumb.ratelimit import RateGovernor, ThrottlePolicy
from batchthumb.sandbox import Sandbox, SandboxConfig
from batchthumb.sending import Events, NoEvents, RetryPolicy, Sender, Stop


@dataclass(frozen=True, slots=True)
class Connection:
    """A resolved target: endpoint, credentials (not yet prepared) and transport."""

    endpoint: str
    credentials: Credentials
    transport: Transport


def connect(settings: RunSettings, auth: AuthConfig | None, console: Console) -> Connection:
    """Resolve the endpoint and credentials of ``settings``; nothing is sent yet.

    ``settings.auth`` wins over ``auth`` (the job's); neither means $BATCHTHUMB_TOKEN.
    """
    endpoint = settings.endpoint
    if endpoint is None:
        raise UsageError(
            "no endpoint: set `endpoint:` or `region:` in the job, pass --endpoint or --region, "
            "or rehearse with --sandbox"
        )
    _warn(console, check_url(endpoint, insecure=settings.insecure))
    transport = make_transport(ca_bundle=settings.ca_bundle)
    if settings.auth is not None:
        auth = settings.auth
    credentials = load_credentials(
        auth, issue=IamTokens(transport), lookup=IamProjects(transport), region=settings.region
    )
    if isinstance(credentials, IamPassword):
        iam = credentials.identity.endpoint
        _warn(console, check_url(iam, insecure=settings.insecure, what="IAM endpoint"))
    elif isinstance(credentials, AkSk) and credentials.project_source is not None:
        iam = credentials.project_source.endpoint
        _warn(console, check_url(iam, insecure=settings.insecure, what="IAM endpoint"))
    return Connection(endpoint.rstrip("/"), credentials, transport)


def _warn(console: Console, message: str | None) -> None:
    if message:
        console.warn(message)


def make_sender(
    settings: RunSettings, *, stop: Stop | None = None, events: Events | None = None
) -> Sender:
    """The one sender of a command: its rate governor, retry policy and breaker from settings."""
    governor = RateGovernor(
        rate=settings.rate,
        burst=settings.burst,
        policy=ThrottlePolicy(pause=settings.backoff / 2),
    )
    retry = RetryPolicy(
        retries=settings.retries, backoff=settings.backoff, breaker=settings.breaker
    )
    return Sender(governor=governor, retry=retry, stop=stop or Stop(), events=events or NoEvents())


@asynccontextmanager
async def open_session(
    connection: Connection, settings: RunSettings, sender: Sender | None = None
) -> AsyncIterator[tuple[PlanApi, Sender]]:
    """An API and a sender paced like a run, for the commands that list before they act.

    The credentials are prepared first (an IAM token fetched), outside any task group, so a
    refused password is one clear error.
    """
    await connection.credentials.prepare()
    async with open_api(
        connection.endpoint,
        connection.credentials,
        concurrency=settings.concurrency,
        timeout=settings.timeout,
        transport=connection.transport,
        max_answer_bytes=settings.max_answer_bytes,
    ) as api:
        yield api, sender or make_sender(settings)


@asynccontextmanager
async def embedded_sandbox(job: Job) -> AsyncIterator[Connection]:
    """A sandbox on a free loopback port that knows every plan the job names."""
    token = secrets.token_urlsafe(32)
    sandbox = Sandbox(SandboxConfig(tokens=frozenset({token}), autocreate=False))
    for number, item in enumerate(job.items, 1):
        if sandbox.plan(item.project_id, item.plan_id) is None:
            sandbox.add_plan(
                item.project_id, name=f"Plan {number}", type="gantt", plan_id=item.plan_id
            )
    async with sandbox.serve(host="127.0.0.1", port=0) as url:
        yield Connection(url, StaticToken(token), make_transport())
