"""The sandbox's in-memory model: plans, uploaded images, issued tokens, stats and the gate.

Plain Python, no aiohttp: the routes in :mod:`batchthumb.sandbox.app` read and change it.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from batchthumb.images import CONTENT_TYPES
from batchthumb.sandbox.undocumented import IMG_EXT_MAX, IMG_NAME_MAX, IMG_URL_ID

# The documented project_id constraint; plan ids share it (facts §1.2: 32 alphanumerics).
ID_PATTERN = re.compile(r"[A-Za-z0-9]{32}")
# The documented '/v1/upload/%s/\d{6}/[a-zA-Z0-9]+.[a-zA-Z]', anchored and bounded, with the
# download page's 1 to 32 characters in the %s slot (see undocumented.py).
IMG_URL_PATTERN = re.compile(
    rf"/v1/upload/({IMG_URL_ID})/\d{{6}}/[A-Za-z0-9]{{1,{IMG_NAME_MAX}}}\.[A-Za-z]{{1,{IMG_EXT_MAX}}}"
)

PLAN_TYPES = ("gantt", "mind")


def is_id(value: str) -> bool:
    """True when ``value`` is a 32-character alphanumeric project or plan id."""
    return ID_PATTERN.fullmatch(value) is not None


@dataclass(frozen=True, slots=True)
class Creator:
    """Who created a plan, as the API reports it."""

    user_id: str
    domain_id: str
    nick_name: str
    first_name: str

    def to_json(self) -> dict[str, str]:
        """Return the API's ``creator`` object."""
        return {
            "user_id": self.user_id,
            "domain_id": self.domain_id,
            "nick_name": self.nick_name,
            "first_name": self.first_name,
        }


SANDBOX_CREATOR = Creator(
    user_id="5a4b3c2d1e0f4a5b8c7d6e5f4a3b2c1d",
    domain_id="0f1e2d3c4b5a49687766554433221100",
    nick_name="sandbox",
    first_name="sandbox",
)


@dataclass(frozen=True, slots=True)
class Plan:
    """One plan (规划) of a project, a snapshot: changes replace the record."""

    id: str
    project_id: str
    name: str
    type: str
    img_url: str | None
    creator: Creator
    created_on: int
    updated_on: int

    def to_json(self, *, with_img: bool = True) -> dict[str, Any]:
        """Return the API's plan object (``img_url`` left out for the info route)."""
        body: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "type": self.type,
            "project_id": self.project_id,
        }
        if with_img:
            body["img_url"] = self.img_url
        body["creator"] = self.creator.to_json()
        return body


@dataclass(frozen=True, slots=True)
class Upload:
    """An image stored by the upload route (or by ``Sandbox.upload``), with the file name sent."""

    project_id: str
    img_url: str
    data: bytes
    content_type: str
    filename: str | None = None


@dataclass(frozen=True, slots=True)
class GrantedToken:
    """A token the sandbox's IAM issued, valid until ``expires_at`` (wall clock seconds)."""

    user: str
    project: str
    expires_at: float


@dataclass(slots=True)
class Stats:
    """Exact counters of what the sandbox saw, updated before each response is sent.

    ``requests``, ``puts``, ``uploads``, ``downloads``, ``lists``, ``creates`` and ``infos``
    count requests that reached their handler, whatever the answer; ``applied`` counts
    thumbnail changes per (project_id, plan_id); ``drops`` counts connections closed
    without an answer; ``first_put_at``/``last_put_at`` are monotonic clock values at the
    arrival of the first and last PUT. ``headers`` holds each request's headers, in arrival
    order, when the config's ``record_headers`` is on.
    """

    requests: int = 0
    puts: int = 0
    applied: Counter[tuple[str, str]] = field(default_factory=Counter)
    status_counts: Counter[int] = field(default_factory=Counter)
    uploads: int = 0
    downloads: int = 0
    lists: int = 0
    creates: int = 0
    infos: int = 0
    tokens_issued: int = 0
    project_lookups: int = 0
    drops: int = 0
    waiting_at_gate: int = 0
    first_put_at: float | None = None
    last_put_at: float | None = None
    headers: list[dict[str, str]] = field(default_factory=list)

    @property
    def applied_total(self) -> int:
        """How many PUTs were applied in all."""
        return sum(self.applied.values())


class Gate:
    """A gate PUT handlers pass after being counted; tests close it to hold requests in flight."""

    def __init__(self) -> None:
        self._open = asyncio.Event()
        self._open.set()
        self._aborted = False

    @property
    def is_open(self) -> bool:
        """True when PUTs go straight through."""
        return self._open.is_set()

    @property
    def aborted(self) -> bool:
        """True once the server stopped: waiting handlers then drop their connection."""
        return self._aborted

    def open(self) -> None:
        """Let waiting and future PUTs through."""
        self._open.set()

    def close(self) -> None:
        """Hold every PUT that arrives from now on until :meth:`open`."""
        self._open.clear()

    async def wait(self) -> None:
        """Wait until the gate is open (or the server stops)."""
        await self._open.wait()

    def abort(self) -> None:
        """Release waiting handlers because the server is stopping."""
        self._aborted = True
        self._open.set()

    def rearm(self) -> None:
        """Undo :meth:`abort` so a new server can use the gate; open or closed is unchanged."""
        self._aborted = False


class Store:
    """Projects, plans, uploads and issued tokens, in memory; plans keep creation order."""

    def __init__(self, wall_clock: Callable[[], float]) -> None:
        self._wall_clock = wall_clock
        self.projects: dict[str, dict[str, Plan]] = {}
        self.uploads: dict[str, Upload] = {}
        self.tokens: dict[str, GrantedToken] = {}
        self._upload_seq = 0

    def now_ms(self) -> int:
        """Wall clock time in milliseconds, as the API's timestamps."""
        return int(self._wall_clock() * 1000)

    def ensure_project(self, project_id: str) -> dict[str, Plan]:
        """Return the plans of ``project_id``, creating the project if it is new."""
        plans = self.projects.get(project_id)
        if plans is None:
            plans = self.projects[project_id] = {}
        return plans

    def add_plan(
        self,
        project_id: str,
        name: str,
        type: str,
        *,
        img_url: str | None = None,
        plan_id: str | None = None,
        creator: Creator = SANDBOX_CREATOR,
    ) -> Plan:
        """Create a plan (and its project if needed); ``plan_id`` is generated when None."""
        if not is_id(project_id):
            raise ValueError(f"project_id must be 32 letters or digits, got {project_id!r}")
        if type not in PLAN_TYPES:
            raise ValueError(f"type must be gantt or mind, got {type!r}")
        plans = self.ensure_project(project_id)
        if plan_id is None:
            plan_id = uuid.uuid4().hex
        elif not is_id(plan_id):
            raise ValueError(f"plan_id must be 32 letters or digits, got {plan_id!r}")
        if plan_id in plans:
            raise ValueError(f"plan {plan_id} already exists in project {project_id}")
        now = self.now_ms()
        plan = Plan(plan_id, project_id, name, type, img_url, creator, now, now)
        plans[plan_id] = plan
        return plan

    def set_img(self, plan: Plan, img_url: str) -> Plan:
        """Set a plan's thumbnail and return the new record."""
        updated = replace(plan, img_url=img_url, updated_on=self.now_ms())
        self.projects[plan.project_id][plan.id] = updated
        return updated

    def store_upload(
        self, project_id: str, data: bytes, ext: str, filename: str | None = None
    ) -> tuple[str, Upload]:
        """Store image bytes under a fresh ``/v1/upload/...`` URL; return (img_id, upload)."""
        self.ensure_project(project_id)
        self._upload_seq += 1
        now = self._wall_clock()
        # Like the real ids: 13 digits of milliseconds then 6 of sequence, 19 in all.
        img_id = f"{(int(now * 1000) * 1_000_000 + self._upload_seq % 1_000_000):019d}"
        month = time.strftime("%Y%m", time.gmtime(now))
        img_url = f"/v1/upload/{project_id}/{month}/{img_id}.{ext}"
        content_type = CONTENT_TYPES.get(ext.lower(), "application/octet-stream")
        upload = Upload(project_id, img_url, data, content_type, filename)
        self.uploads[img_url] = upload
        return img_id, upload
