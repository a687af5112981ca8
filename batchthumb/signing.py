"""Huawei Cloud AK/SK request signing, ``SDK-HMAC-SHA256``.

Pure functions (hashlib, hmac and urllib only) shared by the client, which signs, and the
sandbox, which verifies. The algorithm follows the Huawei API signing guide and the official
Python SDK's signer::

    CanonicalRequest = METHOD \\n CanonicalURI \\n CanonicalQuery \\n CanonicalHeaders \\n
                       SignedHeaders \\n PayloadHash
    StringToSign     = "SDK-HMAC-SHA256" \\n X-Sdk-Date \\n hex(sha256(CanonicalRequest))
    Signature        = hex(hmac_sha256(key=SK, msg=StringToSign))

The secret key is only ever used as an HMAC key: it never appears in a return value, an
exception message or a repr.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, unquote, urlsplit

ALGORITHM = "SDK-HMAC-SHA256"
DATE_HEADER = "X-Sdk-Date"
CONTENT_SHA256_HEADER = "X-Sdk-Content-Sha256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
DATE_FORMAT = "%Y%m%dT%H%M%SZ"
MAX_CLOCK_SKEW = timedelta(minutes=15)

_DEFAULT_PORTS = {"http": 80, "https": 443}


def _encode(text: str) -> str:
    # The SDK escapes everything except the unreserved set plus '~'.
    return quote(text, safe="~")


def canonical_uri(path: str) -> str:
    """Return the canonical URI of ``path``: decoded, each segment re-encoded, ending in ``/``."""
    uri = "/".join(_encode(segment) for segment in unquote(path).split("/"))
    return uri if uri.endswith("/") else uri + "/"


def _parse_query(query: str) -> list[tuple[str, str]]:
    # '+' is taken literally, as the SDK's signer encodes a '+' in a value as %2B.
    pairs: list[tuple[str, str]] = []
    for item in query.split("&"):
        if not item:
            continue
        key, _, value = item.partition("=")
        pairs.append((unquote(key), unquote(value)))
    return pairs


def canonical_query(query: Sequence[tuple[str, str]] | str) -> str:
    """Return the canonical query string: pairs sorted by key then value, both encoded."""
    pairs = _parse_query(query) if isinstance(query, str) else list(query)
    return "&".join(f"{_encode(k)}={_encode(v)}" for k, v in sorted(pairs))


def canonical_request(
    method: str,
    path: str,
    query: Sequence[tuple[str, str]] | str,
    headers: Mapping[str, str],
    signed_headers: Sequence[str],
    payload_hash: str,
) -> str:
    """Return the canonical request text for the given parts, as the signer hashes it.

    ``headers`` may use any case; ``signed_headers`` are lower-case names in the order they
    appear in the ``SignedHeaders`` list (sorted, when produced by :func:`sign_request`).
    Raises ``KeyError`` naming the header when a signed header is absent.
    """
    lowered = _lower_headers(headers)
    canonical_headers = "".join(f"{name}:{lowered[name].strip()}\n" for name in signed_headers)
    return "\n".join(
        (
            method.upper(),
            canonical_uri(path),
            canonical_query(query),
            canonical_headers,
            ";".join(signed_headers),
            payload_hash,
        )
    )


def string_to_sign(canonical: str, sdk_date: str) -> str:
    """Return the string the HMAC is computed over, for a canonical request and its date."""
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return f"{ALGORITHM}\n{sdk_date}\n{digest}"


def compute_signature(sk: str, to_sign: str) -> str:
    """Return the lower-case hex HMAC-SHA256 of ``to_sign`` keyed with the raw secret key."""
    return hmac.new(sk.encode("utf-8"), to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def format_date(now: datetime) -> str:
    """Return ``now`` as an ``X-Sdk-Date`` value (UTC, ``YYYYMMDDTHHMMSSZ``)."""
    if now.tzinfo is not None:
        now = now.astimezone(UTC)
    return now.strftime(DATE_FORMAT)


def _lower_headers(headers: Mapping[str, str]) -> dict[str, str]:
    lowered: dict[str, str] = {}
    for name, value in headers.items():
        lowered.setdefault(name.lower(), value)
    return lowered


def _host_header(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    if port is not None and port != _DEFAULT_PORTS.get(parts.scheme.lower()):
        host = f"{host}:{port}"
    return host


def sign_request(
    *,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes | None,
    ak: str,
    sk: str,
    now: datetime,
) -> dict[str, str]:
    """Return the headers to add to a request so it carries a valid AK/SK signature.

    Always ``X-Sdk-Date`` and ``Authorization``; ``Host`` when ``headers`` has none;
    ``X-Sdk-Content-Sha256: UNSIGNED-PAYLOAD`` when a body is sent with a content type
    that is not JSON (a multipart upload). Every header present at signing time is
    signed, so none may change afterwards. ``headers`` is not modified.
    """
    lowered = _lower_headers(headers)
    added: dict[str, str] = {DATE_HEADER: format_date(now)}
    if "host" not in lowered:
        added["Host"] = _host_header(url)
    content_type = lowered.get("content-type", "")
    if body and not content_type.startswith("application/json"):
        added[CONTENT_SHA256_HEADER] = UNSIGNED_PAYLOAD
    all_headers = {**lowered, **_lower_headers(added)}
    payload_hash = (
        all_headers.get("x-sdk-content-sha256") or hashlib.sha256(body or b"").hexdigest()
    )
    signed = sorted(all_headers)
    parts = urlsplit(url)
    canonical = canonical_request(
        method, parts.path or "/", parts.query, all_headers, signed, payload_hash
    )
    signature = compute_signature(sk, string_to_sign(canonical, all_headers["x-sdk-date"]))
    added["Authorization"] = authorization_header(ak, signed, signature)
    return added


def authorization_header(ak: str, signed_headers: Sequence[str], signature: str) -> str:
    """Return the ``Authorization`` header value for an access key, header list and signature."""
    return (
        f"{ALGORITHM} Access={ak}, SignedHeaders={';'.join(signed_headers)}, Signature={signature}"
    )


@dataclass(frozen=True, slots=True)
class Authorization:
    """The parts of a parsed ``SDK-HMAC-SHA256`` Authorization header."""

    access_key: str
    signed_headers: tuple[str, ...]
    signature: str


class MalformedAuthorization(ValueError):
    """The Authorization header is not a well-formed ``SDK-HMAC-SHA256`` header."""


def parse_authorization(value: str) -> Authorization:
    """Parse an ``SDK-HMAC-SHA256 Access=..., SignedHeaders=..., Signature=...`` header.

    Raises :class:`MalformedAuthorization` saying what is wrong.
    """
    scheme, _, rest = value.strip().partition(" ")
    if scheme != ALGORITHM:
        raise MalformedAuthorization(f"the algorithm must be {ALGORITHM}")
    fields: dict[str, str] = {}
    for item in rest.split(","):
        key, sep, field_value = item.strip().partition("=")
        if not sep:
            raise MalformedAuthorization(f"expected key=value, got {item.strip()!r}")
        fields[key] = field_value
    missing = [k for k in ("Access", "SignedHeaders", "Signature") if not fields.get(k)]
    if missing:
        raise MalformedAuthorization(f"missing {', '.join(missing)}")
    return Authorization(
        access_key=fields["Access"],
        signed_headers=tuple(fields["SignedHeaders"].split(";")),
        signature=fields["Signature"],
    )


class Failure(enum.Enum):
    """Why a signed request was rejected."""

    MALFORMED = "malformed Authorization header"
    UNKNOWN_ACCESS_KEY = "unknown access key"
    DATE_MISSING = "X-Sdk-Date missing or not signed"
    DATE_MALFORMED = "X-Sdk-Date malformed"
    DATE_SKEWED = "X-Sdk-Date more than 15 minutes off server time"
    BAD_SIGNATURE = "signature mismatch"


@dataclass(frozen=True, slots=True)
class Verification:
    """The outcome of :func:`verify_request`: ``ok`` or a ``failure`` with a ``detail`` line.

    ``canonical_request`` is what the verifier computed (as the real gateway echoes it), set
    once the request got that far; it holds no secret.
    """

    access_key: str | None
    failure: Failure | None = None
    detail: str = ""
    canonical_request: str | None = None

    @property
    def ok(self) -> bool:
        """True when the signature is valid and fresh."""
        return self.failure is None


def verify_request(
    *,
    method: str,
    path: str,
    query: Sequence[tuple[str, str]] | str,
    headers: Mapping[str, str],
    body: bytes | None,
    secret_for: Callable[[str], str | None] | Mapping[str, str],
    now: datetime,
    max_skew: timedelta = MAX_CLOCK_SKEW,
) -> Verification:
    """Check a request's ``SDK-HMAC-SHA256`` signature against the known secret keys.

    ``secret_for`` maps an access key to its secret key (``None``/absent: unknown key).
    ``now`` is the verifier's wall clock (aware, or naive UTC). The payload hash is the
    ``X-Sdk-Content-Sha256`` header when present (``UNSIGNED-PAYLOAD`` or a hex digest,
    which must then match the body), else the SHA-256 of ``body``.
    """
    lowered = _lower_headers(headers)
    try:
        auth = parse_authorization(lowered.get("authorization", ""))
    except MalformedAuthorization as exc:
        return Verification(None, Failure.MALFORMED, str(exc))
    ak = auth.access_key
    sk = secret_for.get(ak) if isinstance(secret_for, Mapping) else secret_for(ak)
    if sk is None:
        return Verification(ak, Failure.UNKNOWN_ACCESS_KEY, f"access key {ak} is not known")
    sdk_date = lowered.get("x-sdk-date")
    if sdk_date is None or "x-sdk-date" not in auth.signed_headers:
        return Verification(ak, Failure.DATE_MISSING, "X-Sdk-Date must be sent and signed")
    try:
        signed_at = datetime.strptime(sdk_date.strip(), DATE_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return Verification(
            ak, Failure.DATE_MALFORMED, f"X-Sdk-Date {sdk_date!r} is not YYYYMMDDTHHMMSSZ"
        )
    server_now = now.astimezone(UTC) if now.tzinfo is not None else now.replace(tzinfo=UTC)
    if abs(server_now - signed_at) > max_skew:
        return Verification(
            ak,
            Failure.DATE_SKEWED,
            f"X-Sdk-Date {sdk_date} is more than {max_skew} off server time "
            f"{format_date(server_now)}",
        )
    missing = [name for name in auth.signed_headers if name not in lowered]
    if missing:
        return Verification(
            ak, Failure.MALFORMED, f"signed header(s) not in the request: {', '.join(missing)}"
        )
    body_hash = hashlib.sha256(body or b"").hexdigest()
    payload_hash = lowered.get("x-sdk-content-sha256", "").strip() or body_hash
    if payload_hash not in (UNSIGNED_PAYLOAD, body_hash):
        return Verification(
            ak, Failure.BAD_SIGNATURE, "X-Sdk-Content-Sha256 does not match the body"
        )
    canonical = canonical_request(method, path, query, lowered, auth.signed_headers, payload_hash)
    expected = compute_signature(sk, string_to_sign(canonical, sdk_date.strip()))
    if not hmac.compare_digest(expected, auth.signature):
        return Verification(
            ak,
            Failure.BAD_SIGNATURE,
            "the request signature does not match the one computed over the canonical request",
            canonical,
        )
    return Verification(ak, canonical_request=canonical)
