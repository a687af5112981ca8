"""Shared fixtures: the anyio plugin on asyncio (aiohttp needs it)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from batchthumb.sandbox import Sandbox, SandboxConfig


@pytest.fixture
def anyio_backend() -> str:
    """Run async tests on asyncio only."""
    return "asyncio"


P1 = "919bb351ef424e2daaf3dd80c179fae9"
TOKEN = "test-token-0123456789"


def plan_id(n: int) -> str:
    """A valid, readable plan id for item ``n``."""
    return f"{n:032d}"


def img_url(n: int = 1, project: str = P1) -> str:
    """A valid thumbnail URL in ``project``."""
    return f"/v1/upload/{project}/202506/{1749730526922581391 + n}.png"


@pytest.fixture
async def sandbox() -> AsyncIterator[tuple[Sandbox, str]]:
    """A sandbox on a free loopback port that accepts TOKEN and creates plans on first use."""
    box = Sandbox(SandboxConfig(tokens=frozenset({TOKEN})))
    async with box.serve() as url:
        yield box, url
