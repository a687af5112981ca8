"""Credentials: what authenticates a request, and which values must never be shown.

Every way of authenticating is a :class:`Credentials`; the API layer asks it to sign each
attempt (so a retry is re-signed) and to renew once when the server says it is stale. Three
ways exist (facts §4): a token obtained elsewhere (:class:`StaticToken`), an IAM password that
batchthumb trades for tokens itself (:class:`IamPassword`), and AK/SK signing (:class:`AkSk`).

The ``auth:`` section of a job holds only *references* to secrets (environment variable names,
file paths); :func:`load_credentials` follows them. This module does no HTTP: the IAM call is
injected as a :class:`TokenIssuer` (client.py provides it).
"""

from __future__ import annotations

import configparser
import os
import re
import stat
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import anyio

from batchthumb import signing
from batchthumb.errors import CredentialsError, RunAborted, os_errors
from batchthumb.files import SECRET_FILE_LIMIT, FileRefused, describe, open_regular
from batchthumb.model import AkSkAuth, AuthConfig, IamAuth, TokenAuth

TOKEN_ENV = "BATCHTHUMB_TOKEN"
# update-thumbnail.md: X-Auth-Token is 10 to 32,768 characters.
TOKEN_LENGTH = range(10, 32768 + 1)
# The official SDK's names (facts §4.3), so existing set-ups work unchanged.
PROJECT_ID_ENV = "HUAWEICLOUD_SDK_PROJECT_ID"
SECURITY_TOKEN_ENV = "HUAWEICLOUD_SDK_SECURITY_TOKEN"
CREDENTIALS_FILE_ENV = "HUAWEICLOUD_SDK_CREDENTIALS_FILE"
IAM_ENDPOINT_ENV = "HUAWEICLOUD_SDK_IAM_ENDPOINT"
DEFAULT_CREDENTIALS_FILE = Path("~/.huaweicloud/credentials")
# The SDK's default IAM endpoint; the token API also answers on the regional ones (facts §3).
GLOBAL_IAM_ENDPOINT = "https://iam.myhuaweicloud.com"
# Renew this long before a token expires, at most; short-lived tokens get a tenth of their life.
RENEW_MARGIN = 3600.0
ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]{0,127}")
# What may go into an HTTP header: visible ASCII. A CR or LF would split the header (aiohttp
# refuses with a ValueError that quotes the value); no real token or key holds anything else.
_HEADER_SAFE = re.compile(r"[\x21-\x7e]+")
URL_CREDENTIALS_ADVICE = (
    "must not hold a user name or password (they would be sent as Basic auth and logged); "
    "credentials belong in an `auth:` section or $BATCHTHUMB_TOKEN (see Credentials in the README)"
)


def url_has_credentials(url: str) -> bool:
    """True when ``url`` carries userinfo (``https://user:pw@host``)."""
    return "@" in urlsplit(url).netloc


def check_header_value(value: str, what: str) -> str:
    """``value`` if it can travel in an HTTP header; else a CredentialsError naming ``what``.

    The message says where the bad character is, never the value itself.
    """
    if _HEADER_SAFE.fullmatch(value):
        return value
    if not value:
        raise CredentialsError(f"{what} is empty")
    position = next(i for i, char in enumerate(value) if not _HEADER_SAFE.fullmatch(char))
    char = value[position]
    if char in "\r\n":
        kind = "a line break"
    elif char == " ":
        kind = "a space"
    else:
        kind = "a control or non-ASCII character"
    raise CredentialsError(
        f"{what} contains {kind} (U+{ord(char):04X} at character {position + 1}); a token or "
        "key is one line of visible ASCII: check for a stray line break, space or escape code"
    )


def iam_endpoint_for_region(region: str) -> str:
    """The regional IAM endpoint (facts §3)."""
    return f"https://iam.{region}.myhuaweicloud.com"


def describe_auth(config: AuthConfig | None) -> str:
    """How a run will authenticate, in words, naming where secrets come from (never them)."""
    if config is None:
        return f"token from ${TOKEN_ENV}"
    if isinstance(config, TokenAuth):
        return f"token from {config.file}" if config.file else f"token from ${config.env}"
    if isinstance(config, IamAuth):
        return (
            f"IAM user {config.user} of account {config.domain}, password from "
            f"${config.password_env}"
        )
    file = config.credentials_file or f"${CREDENTIALS_FILE_ENV} or {DEFAULT_CREDENTIALS_FILE}"
    return f"AK/SK from ${config.ak_env} and ${config.sk_env}, else {file}"


# -- credentials ----------------------------------------------------------------------------


class Credentials(Protocol):
    """Something that can authenticate requests to the API."""

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every secret value this holds now, for redaction (grows as tokens are issued)."""
        ...

    async def prepare(self) -> None:
        """Get ready before the first request (fetch a token); raise RunAborted if refused."""
        ...

    async def authorize(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None
    ) -> None:
        """Add the authentication headers to a request that is about to be sent."""
        ...

    async def renew(self, rejected: Mapping[str, str]) -> bool:
        """Replace credentials the server called stale in the request sent with ``rejected``
        headers; False when there is nothing to renew."""
        ...


class StaticToken:
    """An ``X-Auth-Token`` that the user obtained elsewhere (valid for 24 hours at most)."""

    def __init__(self, token: str, *, source: str = "the token") -> None:
        if len(token) not in TOKEN_LENGTH:
            raise CredentialsError(
                f"{source} is {len(token)} characters long; CodeArts tokens are 10 to 32768"
            )
        self._token = check_header_value(token, source)
        loaded(self)

    def __repr__(self) -> str:
        return "StaticToken(<redacted>)"

    @property
    def secrets(self) -> tuple[str, ...]:
        """The token itself."""
        return (self._token,)

    async def prepare(self) -> None:
        """Nothing to fetch."""

    async def authorize(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None
    ) -> None:
        """Send the token as ``X-Auth-Token``."""
        headers["X-Auth-Token"] = self._token

    async def renew(self, rejected: Mapping[str, str]) -> bool:
        """A pasted token cannot be renewed."""
        return False


@dataclass(frozen=True, slots=True)
class IamIdentity:
    """Who asks IAM for a token: the password travels separately, never in a repr."""

    endpoint: str
    domain: str
    user: str
    project: str


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A token IAM issued and how many seconds it is valid from when it was received."""

    value: str = field(repr=False)
    lifetime: float


class TokenIssuer(Protocol):
    """Trades an IAM password for a token (``POST /v3/auth/tokens``)."""

    async def __call__(self, identity: IamIdentity, password: str) -> IssuedToken:
        """Issue a token; raise RunAborted with a message (never the password) if refused."""
        ...


class ProjectLookup(Protocol):
    """Finds the IAM project id of a region (``GET /v3/projects?name=``), signed by ``signer``."""

    async def __call__(self, endpoint: str, name: str, signer: Credentials) -> str:
        """The id of the one project named ``name``; raise RunAborted or CredentialsError."""
        ...


class IamPassword:
    """Tokens from IAM for a user and password, fetched once and renewed before they expire.

    Renewal is single-flight: however many workers find the token stale at once, one lock
    and a generation counter make exactly one of them ask IAM.
    """

    def __init__(
        self,
        identity: IamIdentity,
        password: str,
        *,
        issue: TokenIssuer,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.identity = identity
        self._password = password
        self._issue = issue
        self._clock = clock
        self._lock = anyio.Lock()
        self._token: str | None = None
        self._renew_at = 0.0
        self._issued: list[str] = []  # old tokens too: they may still echo in a late answer
        self.generation = 0  # how many tokens were fetched
        loaded(self)

    def __repr__(self) -> str:
        return f"IamPassword({self.identity!r}, <redacted>)"

    @property
    def secrets(self) -> tuple[str, ...]:
        """The password and every token fetched so far."""
        return (self._password, *self._issued)

    async def prepare(self) -> None:
        """Fetch the run's first token, so a wrong password stops the run before it starts."""
        await self._refresh(self.generation)

    async def authorize(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None
    ) -> None:
        """Send the current token, renewing it first when it is about to expire."""
        if self._token is None or self._clock() >= self._renew_at:
            await self._refresh(self.generation)
        assert self._token is not None  # _refresh either sets it or raises
        headers["X-Auth-Token"] = self._token

    async def renew(self, rejected: Mapping[str, str]) -> bool:
        """Fetch a new token unless another worker already replaced the rejected one."""
        if rejected.get("X-Auth-Token") == self._token:
            await self._refresh(self.generation)
        return True

    async def _refresh(self, seen: int) -> None:
        async with self._lock:
            if self.generation != seen:
                return  # someone renewed while this worker waited for the lock
            issued = await self._issue(self.identity, self._password)
            self._issued.append(issued.value)  # masked from here on, even if refused below
            try:
                check_header_value(
                    issued.value, f"the token IAM at {self.identity.endpoint} issued"
                )
            except CredentialsError as exc:
                raise RunAborted(str(exc)) from None
            self._token = issued.value
            margin = min(RENEW_MARGIN, issued.lifetime / 10)
            self._renew_at = self._clock() + issued.lifetime - margin
            self.generation += 1


@dataclass(frozen=True, slots=True)
class ProjectSource:
    """Where an AK/SK without a configured project id looks it up: IAM, by region name."""

    endpoint: str
    name: str
    lookup: ProjectLookup = field(repr=False)


class AkSk:
    """An access key pair: every request is signed with SDK-HMAC-SHA256 (facts §4.2).

    ``X-Project-Id`` and ``X-Security-Token`` are added before signing, as the SDK does. Like
    the SDK's ``BasicCredentials``, ``X-Project-Id`` is always sent: when none is configured,
    :meth:`prepare` looks it up once from IAM by region name (``project_source``).
    """

    def __init__(
        self,
        ak: str,
        sk: str,
        *,
        project_id: str | None = None,
        security_token: str | None = None,
        project_source: ProjectSource | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        source: str = "the access key",
    ) -> None:
        # Each of these travels in a header (the AK inside Authorization).
        self.ak = check_header_value(ak, f"{source}: ak")
        self._sk = sk
        self.project_id = project_id and check_header_value(project_id, f"{source}: project_id")
        self._security_token = security_token and check_header_value(
            security_token, f"{source}: security_token"
        )
        self.project_source = project_source
        self._now = now
        loaded(self)

    def __repr__(self) -> str:
        return f"AkSk(ak={self.ak!r}, <redacted>)"

    @property
    def secrets(self) -> tuple[str, ...]:
        """The secret key and the security token, if any (the AK identifies; it is no secret)."""
        return (self._sk, self._security_token) if self._security_token else (self._sk,)

    async def prepare(self) -> None:
        """Look the IAM project id up once, before the first call, when none is configured."""
        if self.project_id is not None or self.project_source is None:
            return
        source = self.project_source
        self.project_id = await source.lookup(source.endpoint, source.name, self)

    async def authorize(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None
    ) -> None:
        """Sign the request as it will be sent, with a fresh ``X-Sdk-Date``."""
        if self.project_id:
            headers["X-Project-Id"] = self.project_id
        if self._security_token:
            headers["X-Security-Token"] = self._security_token
        headers.update(
            signing.sign_request(
                method=method,
                url=url,
                headers=headers,
                body=body,
                ak=self.ak,
                sk=self._sk,
                now=self._now(),
            )
        )

    async def renew(self, rejected: Mapping[str, str]) -> bool:
        """A key pair is not renewed; a rejected signature is final."""
        return False


# -- following the references -----------------------------------------------------------------


def load_credentials(
    config: AuthConfig | None,
    *,
    issue: TokenIssuer,
    lookup: ProjectLookup | None = None,
    region: str | None = None,
    environ: Mapping[str, str] = os.environ,
) -> Credentials:
    """The credentials ``config`` points at; ``None`` means ``$BATCHTHUMB_TOKEN``.

    Raises :class:`CredentialsError` naming the variable or file that is missing or unsafe.
    """
    if config is None:
        return token_from_env(environ)
    if isinstance(config, TokenAuth):
        if config.file is not None:
            token = read_secret_file(config.file).strip()
            return StaticToken(token, source=f"the token in {config.file}")
        return token_from_env(environ, config.env or TOKEN_ENV)
    if isinstance(config, IamAuth):
        return _iam_password(config, issue=issue, region=region, environ=environ)
    return _aksk(config, lookup=lookup, region=region, environ=environ)


def token_from_env(environ: Mapping[str, str] = os.environ, name: str = TOKEN_ENV) -> StaticToken:
    """The token in environment variable ``name``, or a message saying how to provide one."""
    token = environ.get(name, "").strip()
    if not token:
        raise CredentialsError(
            f"no credentials: set {name} to an IAM token (the X-Subject-Token of "
            "POST /v3/auth/tokens), use an `auth:` section, or rehearse with --sandbox"
        )
    return StaticToken(token, source=f"the token in ${name}")


def _iam_password(
    config: IamAuth, *, issue: TokenIssuer, region: str | None, environ: Mapping[str, str]
) -> IamPassword:
    password = environ.get(config.password_env, "")
    if not password:
        raise CredentialsError(
            f"auth.iam: environment variable {config.password_env} (password_env) is not set; "
            f"put the IAM password of {config.user} there"
        )
    project = config.project or region
    if project is None:
        raise CredentialsError(
            "auth.iam.project: missing; name the IAM project (the region, e.g. cn-north-4), "
            "or set `region:` in the job"
        )
    if config.endpoint is not None:
        endpoint = config.endpoint
    elif region is not None:
        endpoint = iam_endpoint_for_region(region)
    else:
        endpoint = GLOBAL_IAM_ENDPOINT
    identity = IamIdentity(endpoint.rstrip("/"), config.domain, config.user, project)
    return IamPassword(identity, password, issue=issue)


def _aksk(
    config: AkSkAuth,
    *,
    lookup: ProjectLookup | None,
    region: str | None,
    environ: Mapping[str, str],
) -> AkSk:
    keys = _access_keys(config, environ)
    # Built first: it refuses values that cannot travel in a header, whatever else is missing.
    credentials = AkSk(
        keys.ak,
        keys.sk,
        project_id=keys.project_id,
        security_token=keys.security_token,
        source=keys.source,
    )
    if credentials.project_id is not None:
        return credentials
    name = config.project or region
    if name is None or lookup is None:
        raise CredentialsError(
            "auth.aksk: no IAM project id for X-Project-Id: set "
            f"{PROJECT_ID_ENV} (or project_id in the profile's [basic]), or give the "
            "region (`region:` in the job, or auth.aksk.project) so batchthumb looks it "
            "up from IAM as the SDK does"
        )
    iam_endpoint = (
        config.iam_endpoint or environ.get(IAM_ENDPOINT_ENV, "").strip() or keys.iam_endpoint
    )
    if not iam_endpoint:
        iam_endpoint = iam_endpoint_for_region(region) if region else GLOBAL_IAM_ENDPOINT
    credentials.project_source = ProjectSource(iam_endpoint.rstrip("/"), name, lookup)
    return credentials


@dataclass(frozen=True, slots=True)
class AccessKeys:
    """What the SDK's variables or profile file hold for AK/SK (facts §4.3)."""

    ak: str = field(repr=False)
    sk: str = field(repr=False)
    project_id: str | None = None
    security_token: str | None = field(default=None, repr=False)
    iam_endpoint: str | None = None
    source: str = "the access key"  # where they were read, for messages


def _access_keys(config: AkSkAuth, environ: Mapping[str, str]) -> AccessKeys:
    ak, sk = environ.get(config.ak_env, "").strip(), environ.get(config.sk_env, "").strip()
    if ak and sk:
        return AccessKeys(
            ak,
            sk,
            project_id=environ.get(PROJECT_ID_ENV, "").strip() or None,
            security_token=environ.get(SECURITY_TOKEN_ENV, "").strip() or None,
            source="the access key from the environment",
        )
    if ak or sk:
        missing = config.sk_env if ak else config.ak_env
        raise CredentialsError(f"auth.aksk: {missing} is not set (the other key of the pair is)")
    path = config.credentials_file or Path(
        environ.get(CREDENTIALS_FILE_ENV) or DEFAULT_CREDENTIALS_FILE
    )
    path = path.expanduser()
    if not path.exists():
        raise CredentialsError(
            f"auth.aksk: no access key: set {config.ak_env} and {config.sk_env}, "
            f"or write them to {path} ([basic] ak = ..., sk = ...)"
        )
    return profile_keys(path)


def profile_keys(path: Path) -> AccessKeys:
    """The ``[basic]`` section of an SDK profile file (INI, facts §4.3)."""
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(read_secret_file(path), source=str(path))
    except configparser.Error as exc:
        # configparser quotes the offending line, which may hold a key: say only where.
        line = getattr(exc, "lineno", None)
        where = f"{path}:{line}" if line else str(path)
        raise CredentialsError(f"{where}: not a valid credentials file (INI)") from None
    if not parser.has_section("basic"):
        raise CredentialsError(f"{path}: no [basic] section with ak and sk")
    basic = parser["basic"]
    ak, sk = basic.get("ak", "").strip(), basic.get("sk", "").strip()
    if not (ak and sk):
        raise CredentialsError(f"{path}: [basic] needs both ak and sk")
    return AccessKeys(
        ak,
        sk,
        project_id=basic.get("project_id", "").strip() or None,
        security_token=basic.get("security_token", "").strip() or None,
        iam_endpoint=basic.get("iam_endpoint", "").strip() or None,
        source=f"{path} [basic]",
    )


def read_secret_file(path: Path) -> str:
    """The text of a file holding secrets, refused if other users may read it.

    Regular files only (a FIFO would block the run), of at most 64 KB.
    """
    try:
        with os_errors(path, "read", CredentialsError), open_regular(path) as file:
            mode = stat.S_IMODE(os.fstat(file.fileno()).st_mode)
            if os.name == "posix" and mode & 0o077:
                raise CredentialsError(
                    f"{path}: other users can read this file (mode {mode:04o}); "
                    f"secrets must be private: run chmod 600 {path}"
                )
            data = file.read(SECRET_FILE_LIMIT + 1)
    except FileRefused as exc:
        raise CredentialsError(f"{path}: {exc.reason}") from None
    if len(data) > SECRET_FILE_LIMIT:
        limit = describe(SECRET_FILE_LIMIT)
        raise CredentialsError(f"{path}: larger than {limit}, the limit for a file of secrets")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise CredentialsError(f"{path}: not UTF-8 text") from None


class Redactor:
    """Replaces secret values in text, wherever they appear (not only in known headers).

    Give it a callable to read the secrets at each use, so tokens fetched during the run
    (renewed IAM tokens) are masked too.
    """

    MASK = "***"

    def __init__(self, secrets: Iterable[str] | Callable[[], Iterable[str]] = ()) -> None:
        if callable(secrets):
            self._source: Callable[[], Iterable[str]] = secrets
        else:
            fixed = tuple(secrets)
            self._source = lambda: fixed
        self._seen: tuple[str, ...] = ()
        self._secrets: list[str] = []

    def __call__(self, text: str) -> str:
        current = tuple(self._source())
        if current != self._seen:
            # Longest first, so a secret containing another is masked whole.
            self._secrets = sorted({s for s in current if s}, key=len, reverse=True)
            self._seen = current
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, self.MASK)
        return text


# Every credential this process has loaded, whatever loaded it: the CLI's last line of defence
# masks their secrets in any message it prints. A process loads a handful at most.
_LOADED: list[Credentials] = []


def loaded(credentials: Credentials) -> None:
    """Remember ``credentials``, so that :func:`mask_secrets` masks what they hold."""
    _LOADED.append(credentials)


def _loaded_secrets() -> Iterable[str]:
    return tuple(secret for credentials in _LOADED for secret in credentials.secrets)


mask_secrets = Redactor(_loaded_secrets)
