"""Shared pytest configuration: the anyio plugin runs async tests on asyncio (aiohttp needs it)."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    """Run every ``@pytest.mark.anyio`` test on the asyncio backend."""
    return "asyncio"
