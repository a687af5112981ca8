"""Credentials: what authenticates a request, and which values must never be shown.

Every way of authenticating is a :class:`Credentials`; the API layer asks it to sign each
attempt (so a retry is re-signed) and to renew once when the server says it is stale.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Protocol

from batchthumb.errors import CredentialsError

TOKEN_ENV = "BATCHTHUMB_TOKEN"
# update-thumbnail.md: X-Auth-Token is 10 to 32,768 characters.
TOKEN_LENGTH = range(10, 32768 + 1)


class Credentials(Protocol):
    """Something that can authenticate requests to the API."""

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every secret value this holds, for redaction."""
        ...

    async def authorize(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None
    ) -> None:
        """Add the authentication headers to a request that is about to be sent."""
        ...

    async def renew(self) -> bool:
        """Replace credentials the server called stale; False when there is nothing to renew."""
        ...


class StaticToken:
    """An ``X-Auth-Token`` that the user obtained elsewhere (valid for 24 hours at most)."""

    def __init__(self, token: str) -> None:
        if len(token) not in TOKEN_LENGTH:
            raise CredentialsError(
                f"the token is {len(token)} characters long; CodeArts tokens are 10 to 32768"
            )
        self._token = token

    def __repr__(self) -> str:
        return "StaticToken(<redacted>)"

    @property
    def secrets(self) -> tuple[str, ...]:
        """The token itself."""
        return (self._token,)

    async def authorize(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None
    ) -> None:
        """Send the token as ``X-Auth-Token``."""
        headers["X-Auth-Token"] = self._token

    async def renew(self) -> bool:
        """A pasted token cannot be renewed."""
        return False


def token_from_env(environ: Mapping[str, str] = os.environ, name: str = TOKEN_ENV) -> StaticToken:
    """The token in environment variable ``name``, or a message saying how to provide one."""
    token = environ.get(name, "").strip()
    if not token:
        raise CredentialsError(
            f"no credentials: set {name} to an IAM token (the X-Subject-Token of "
            "POST /v3/auth/tokens), or rehearse with --sandbox"
        )
    return StaticToken(token)


class Redactor:
    """Replaces secret values in text, wherever they appear (not only in known headers)."""

    MASK = "***"

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret containing another is masked whole.
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, self.MASK)
        return text
