"""Configuration values of the sandbox: who may call it and how strict it is."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from batchthumb.sandbox.limits import THROTTLE_CODES, RateLimit
from batchthumb.sandbox.undocumented import IAM_PROJECT_ID, IAM_REGION

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
    plans are created by the first PUT instead of being errors (off by default, as the API:
    400 ``PM.02152005``). ``strict_urls``: a PUT only accepts an ``img_url`` uploaded to that
    same project through the sandbox. ``list_wrapped``: list elements are
    ``{"result": plan, "status": "success"}``, as documented (on by default).
    ``iam_projects``: region name -> the IAM project ids ``GET /v3/projects?name=`` lists.
    ``require_project_id``: AK/SK-signed API calls must carry a known ``X-Project-Id``, as the
    SDK always sends. ``non_member_projects``: projects whose every call is answered 400
    ``PM.02150010``. ``download_permission``: False models an IAM user without
    ``codeartsreq:attachment:download`` (DownloadImageFile answers 400 ``PM.02174103``).
    ``record_headers``: keep every request's headers in ``Stats.headers`` (tests that prove
    which credentials reached which server).
    ``list_img``: list elements carry ``img_url`` (off: the list shows no thumbnails, which
    the docs do not rule out).
    The choices the docs leave open are listed in :mod:`batchthumb.sandbox.undocumented`.
    ``rate_limit``: the gateway's limit (shape, rate, per API or shared, Retry-After), None
    for none. ``throttle_code``: how its 429s spell the code, ``APIGW.0308`` or ``APIG.0308``
    (the gateway's documentation uses both).
    """

    tokens: frozenset[str] = frozenset()
    iam_users: tuple[IamUser, ...] = ()
    aksk: Mapping[str, str] = field(default_factory=dict, repr=False)
    autocreate: bool = False
    strict_urls: bool = False
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    list_wrapped: bool = True
    iam_projects: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: {IAM_REGION: (IAM_PROJECT_ID,)}
    )
    require_project_id: bool = True
    non_member_projects: frozenset[str] = frozenset()
    download_permission: bool = True
    record_headers: bool = False
    list_img: bool = True
    rate_limit: RateLimit | None = None
    throttle_code: str = THROTTLE_CODES[0]

    def __post_init__(self) -> None:
        object.__setattr__(self, "tokens", frozenset(self.tokens))
        object.__setattr__(self, "non_member_projects", frozenset(self.non_member_projects))
        projects = {name: tuple(ids) for name, ids in self.iam_projects.items()}
        object.__setattr__(self, "iam_projects", MappingProxyType(projects))
        object.__setattr__(self, "iam_users", tuple(self.iam_users))
        object.__setattr__(self, "aksk", MappingProxyType(dict(self.aksk)))
        if self.max_upload_bytes < 1:
            raise ValueError("max_upload_bytes must be positive")
        if self.throttle_code not in THROTTLE_CODES:
            raise ValueError(f"throttle_code must be one of {', '.join(THROTTLE_CODES)}")

    @property
    def accepts_any_token(self) -> bool:
        """True when no token source is configured, so any token of valid length passes."""
        return not self.tokens and not self.iam_users

    @property
    def iam_project_ids(self) -> frozenset[str]:
        """Every IAM project id the sandbox's IAM knows: what ``X-Project-Id`` may carry."""
        return frozenset(i for ids in self.iam_projects.values() for i in ids)
