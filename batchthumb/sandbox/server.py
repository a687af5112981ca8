"""The :class:`Sandbox`: state, faults and stats of the local API stand-in, and serving it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from aiohttp import web

from batchthumb.images import image_type
from batchthumb.sandbox.app import build_app
from batchthumb.sandbox.config import SandboxConfig
from batchthumb.sandbox.faults import Faults
from batchthumb.sandbox.limits import Limits
from batchthumb.sandbox.state import (
    SANDBOX_CREATOR,
    Creator,
    Gate,
    Plan,
    Stats,
    Store,
    is_id,
)

# In-flight handlers get this long to finish when the server stops; then they are cancelled.
SHUTDOWN_TIMEOUT = 2.0
# aiohttp's default 8190-byte header cap would refuse valid X-Auth-Tokens (up to 32768).
MAX_HEADER_FIELD = 40 * 1024

Predicate = Callable[[Stats], bool]


class Sandbox:
    """A local, in-memory stand-in for the CodeArts Req plan API.

    Seed it with :meth:`add_plan` and :meth:`upload`, serve it with :meth:`serve`, observe
    it through :attr:`stats` and :meth:`wait_until`, hold PUTs with :attr:`gate` and a
    project's list calls with :attr:`list_gates`, inject faults through :attr:`faults`.
    ``clock`` (monotonic) drives the rate limit and the PUT timestamps; ``wall_clock`` (epoch
    seconds) drives token expiry, ``X-Sdk-Date`` checks and upload URLs.
    """

    def __init__(
        self,
        config: SandboxConfig | None = None,
        *,
        faults: Faults | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config if config is not None else SandboxConfig()
        self.faults = faults if faults is not None else Faults()
        self.clock = clock
        self.wall_clock = wall_clock
        self.stats = Stats()
        self.gate = Gate()
        self.list_gates: dict[str, Gate] = {}  # project_id -> a gate its list calls wait at
        self.store = Store(wall_clock)
        limit = self.config.rate_limit
        self.limits = None if limit is None else Limits(limit)
        self._waiters: list[tuple[Predicate, asyncio.Future[None]]] = []

    # -- seeding and inspection ---------------------------------------------------------

    def add_project(self, project_id: str) -> None:
        """Make ``project_id`` known (with no plans) so strict mode accepts it."""
        if not is_id(project_id):
            raise ValueError(f"project_id must be 32 letters or digits, got {project_id!r}")
        self.store.ensure_project(project_id)

    def add_plan(
        self,
        project_id: str,
        name: str = "Plan",
        type: str = "mind",
        img_url: str | None = None,
        plan_id: str | None = None,
        *,
        creator: Creator = SANDBOX_CREATOR,
    ) -> Plan:
        """Create a plan (and its project); ``plan_id`` is 32 random hex digits when None."""
        return self.store.add_plan(
            project_id, name, type, img_url=img_url, plan_id=plan_id, creator=creator
        )

    def plans(self, project_id: str) -> list[Plan]:
        """The plans of a project in creation order (empty for an unknown project)."""
        return list(self.store.projects.get(project_id, {}).values())

    def plan(self, project_id: str, plan_id: str) -> Plan | None:
        """One plan, or None."""
        return self.store.projects.get(project_id, {}).get(plan_id)

    def upload(self, project_id: str, data: bytes, ext: str | None = None) -> str:
        """Store image bytes as the upload route would and return their ``img_url``.

        The extension is ``ext`` when given, else the detected image type (``png`` for
        bytes that are not a recognised image, so tests can seed arbitrary data).
        """
        if not is_id(project_id):
            raise ValueError(f"project_id must be 32 letters or digits, got {project_id!r}")
        if ext is None:
            ext = image_type(data) or "png"
        return self.store.store_upload(project_id, data, ext)[1].img_url

    def image_bytes(self, img_url: str) -> bytes | None:
        """The bytes stored under ``img_url``, or None."""
        upload = self.store.uploads.get(img_url)
        return None if upload is None else upload.data

    # -- observation --------------------------------------------------------------------

    def notify(self) -> None:
        """Wake the :meth:`wait_until` callers whose predicate now holds (the server calls it)."""
        if not self._waiters:
            return
        for entry in list(self._waiters):
            predicate, future = entry
            if future.done():
                continue
            try:
                if predicate(self.stats):
                    future.set_result(None)
            except Exception as exc:  # a broken predicate fails its own waiter, not the server
                future.set_exception(exc)

    async def wait_until(self, predicate: Predicate) -> Stats:
        """Wait until ``predicate(stats)`` holds, re-checked at each request event; no polling.

        Returns the stats. Wrap it in a timeout (``anyio.fail_after``) in tests.
        """
        if predicate(self.stats):
            return self.stats
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (predicate, future)
        self._waiters.append(entry)
        try:
            await future
        finally:
            self._waiters.remove(entry)
        return self.stats

    # -- serving ------------------------------------------------------------------------

    def build_app(self) -> web.Application:
        """The aiohttp application serving this sandbox (for custom runners)."""
        return build_app(self)

    @asynccontextmanager
    async def serve(self, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
        """Serve on ``host:port`` (0: any free port); yield the base URL ``http://host:port``.

        On exit the listener closes, PUTs held at a closed gate are dropped, and in-flight
        requests get :data:`SHUTDOWN_TIMEOUT` seconds before being cancelled.
        """
        self.gate.rearm()
        runner = web.AppRunner(
            self.build_app(),
            handle_signals=False,
            access_log=None,
            shutdown_timeout=SHUTDOWN_TIMEOUT,
            max_field_size=MAX_HEADER_FIELD,
            max_line_size=MAX_HEADER_FIELD,
        )
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
            bound_port = runner.addresses[0][1]
            shown = f"[{host}]" if ":" in host else host
            yield f"http://{shown}:{bound_port}"
        finally:
            # Stop listening first, so nothing new arrives while held PUTs are released.
            await site.stop()
            was_open = self.gate.is_open
            self.gate.abort()
            for gate in self.list_gates.values():
                gate.abort()
            await runner.cleanup()
            for gate in self.list_gates.values():
                gate.rearm()
            self.gate.rearm()
            if not was_open:
                self.gate.close()
