"""Configuration values of the sandbox: who may call it and how strict it is."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

DEFAULT_MAX_UPLOAD_BYTES = 5 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class IamUser:
    """An IAM user the sandbox's ``POST /v3/auth/tokens`` accepts (password never in repr)."""

    domain: str
    name: str
    password: str = field(repr=False)
    project: str = "cn-north-4"
    token_ttl: float = 86400.0


@dataclass(frozen=True, slots=True)
class SandboxConfig:
    """What the sandbox accepts.

    ``tokens``: static ``X-Auth-Token`` values; when empty and no ``iam_users`` are given,
    any token of valid length (10..32768) is accepted. ``aksk``: access key -> secret key for
    ``SDK-HMAC-SHA256`` requests (kept out of repr). ``autocreate``: unknown projects and
    plans are created by the first PUT instead of being errors. ``strict_urls``: a PUT only
    accepts an ``img_url`` uploaded to that same project through the sandbox.
    ``list_wrapped``: list elements are ``{"result": plan, "status": "success"}``.
    ``not_member_of``: projects whose plans answer 400 ``PM.02150010`` (not a member).
    """

    tokens: frozenset[str] = frozenset()
    iam_users: tuple[IamUser, ...] = ()
    aksk: Mapping[str, str] = field(default_factory=dict, repr=False)
    autocreate: bool = True
    strict_urls: bool = False
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    list_wrapped: bool = False
    not_member_of: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        object.__setattr__(self, "tokens", frozenset(self.tokens))
        object.__setattr__(self, "iam_users", tuple(self.iam_users))
        object.__setattr__(self, "aksk", MappingProxyType(dict(self.aksk)))
        if self.max_upload_bytes < 1:
            raise ValueError("max_upload_bytes must be positive")

    @property
    def accepts_any_token(self) -> bool:
        """True when no token source is configured, so any token of valid length passes."""
        return not self.tokens and not self.iam_users
