"""Shared fixtures: the anyio plugin on asyncio (aiohttp needs it), a sandbox, a leak guard."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

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
    """A sandbox on a free loopback port that accepts TOKEN and creates plans on first use.

    Autocreation is asked for explicitly (the sandbox's default, like the API, answers 400
    for an unknown project or plan): these tests check ids through ``stats.applied``.
    """
    box = Sandbox(SandboxConfig(tokens=frozenset({TOKEN}), autocreate=True))
    async with box.serve() as url:
        yield box, url


class SecretGuard:
    """Collects every output a test produces and asserts no watched secret is in any of them.

    Files under the test's ``tmp_path`` are scanned at teardown, except those registered as
    holding secrets on purpose (a credentials file the test wrote).
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.secrets: set[str] = set()
        self.outputs: list[tuple[str, str]] = []
        self.exempt: set[Path] = set()

    def watch(self, *secrets: str) -> None:
        """Never let these values appear in an output."""
        self.secrets.update(s for s in secrets if s)

    def output(self, where: str, text: str | bytes) -> None:
        """An output to scan (stdout, stderr, an exception's text)."""
        if isinstance(text, bytes):
            text = text.decode(errors="replace")
        self.outputs.append((where, text))

    def holds_secrets(self, path: Path) -> Path:
        """A file that holds secrets by design: not an output."""
        self.exempt.add(path.resolve())
        return path

    def check(self) -> None:
        """Assert no secret appears in any collected output or file."""
        assert self.secrets, "a secret guard that watches nothing proves nothing"
        outputs = list(self.outputs)
        for path in sorted(self.root.rglob("*")):
            if path.is_file() and path.resolve() not in self.exempt:
                outputs.append((str(path), path.read_bytes().decode(errors="replace")))
        leaks = [(where, s) for where, text in outputs for s in self.secrets if s in text]
        assert not leaks, f"secrets leaked into: {sorted({where for where, _ in leaks})}"


@pytest.fixture
def guard(tmp_path: Path) -> Iterator[SecretGuard]:
    """A :class:`SecretGuard` over this test's outputs, checked when the test ends."""
    secret_guard = SecretGuard(tmp_path)
    yield secret_guard
    secret_guard.check()
