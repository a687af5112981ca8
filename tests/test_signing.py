"""Tests for batchthumb.signing: the published vector, sign/verify round trips, rejections."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest

from batchthumb.signing import (
    UNSIGNED_PAYLOAD,
    Failure,
    MalformedAuthorization,
    canonical_query,
    canonical_request,
    canonical_uri,
    parse_authorization,
    sign_request,
    verify_request,
)

VECTOR_URL = (
    "https://service.region.example.com/v1/77b6a44cba5143ab91d13ab9a8ff44fd/vpcs"
    "?limit=2&marker=13551d6b-755d-4757-b956-536f674975c0"
)
VECTOR_AK = "QTWAOYTTINDUT2QVKYUC"
VECTOR_SK = "MFyfvK41ba2giqM7Uio6PznpdUKGpownRZlmVmHc"
VECTOR_NOW = datetime(2019, 11, 15, 3, 36, 55, tzinfo=UTC)
VECTOR_CANONICAL = (
    "GET\n"
    "/v1/77b6a44cba5143ab91d13ab9a8ff44fd/vpcs/\n"
    "limit=2&marker=13551d6b-755d-4757-b956-536f674975c0\n"
    "content-type:application/json\n"
    "host:service.region.example.com\n"
    "x-sdk-date:20191115T033655Z\n"
    "\n"
    "content-type;host;x-sdk-date\n"
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
)
VECTOR_SIGNATURE = "7be6668032f70418fcc22abc52071e57aff61b84a1d2381bb430d6870f4f6ebe"

AK = "AKSANDBOX0000000001"
SK = "sk-very-secret-value-0123456789"
NOW = datetime(2025, 6, 12, 8, 0, 0, tzinfo=UTC)
PUT_URL = (
    "http://127.0.0.1:8080/v3/plan/919bb351ef424e2daaf3dd80c179fae9"
    "/management/bf56512ab4e544c29d03d068711ca56a/img"
)
PUT_BODY = (
    b'{"img_url": "/v1/upload/919bb351ef424e2daaf3dd80c179fae9/202506/1749730526922581391.png"}'
)


def signed_put() -> dict[str, str]:
    """Return the headers of a signed JSON PUT, as a client would send them."""
    headers = {"Content-Type": "application/json", "X-Project-Id": "0123456789abcdef"}
    return headers | sign_request(
        method="PUT", url=PUT_URL, headers=headers, body=PUT_BODY, ak=AK, sk=SK, now=NOW
    )


def verify_put(headers: dict[str, str], body: bytes = PUT_BODY, **kw: object) -> Failure | None:
    """Verify a PUT to PUT_URL and return its failure (None when accepted)."""
    path = PUT_URL.split("8080", 1)[1]
    now = kw.get("now", NOW)
    assert isinstance(now, datetime)
    result = verify_request(
        method="PUT",
        path=path,
        query="",
        headers=headers,
        body=body,
        secret_for=kw.get("secrets", {AK: SK}),  # type: ignore[arg-type]
        now=now,
    )
    return result.failure


def test_vector_canonical_request() -> None:
    """The canonical request of the published vector matches the guide byte for byte."""
    headers = {
        "Content-Type": "application/json",
        "Host": "service.region.example.com",
        "X-Sdk-Date": "20191115T033655Z",
    }
    text = canonical_request(
        "GET",
        "/v1/77b6a44cba5143ab91d13ab9a8ff44fd/vpcs",
        "limit=2&marker=13551d6b-755d-4757-b956-536f674975c0",
        headers,
        ["content-type", "host", "x-sdk-date"],
        hashlib.sha256(b"").hexdigest(),
    )
    assert text == VECTOR_CANONICAL
    assert hashlib.sha256(text.encode()).hexdigest() == (
        "b25362e603ee30f4f25e7858e8a7160fd36e803bb2dfe206278659d71a9bcd7a"
    )


def test_vector_signature_and_authorization() -> None:
    """sign_request reproduces the published signature and Authorization header exactly."""
    added = sign_request(
        method="GET",
        url=VECTOR_URL,
        headers={"Content-Type": "application/json"},
        body=b"",
        ak=VECTOR_AK,
        sk=VECTOR_SK,
        now=VECTOR_NOW,
    )
    assert added == {
        "X-Sdk-Date": "20191115T033655Z",
        "Host": "service.region.example.com",
        "Authorization": (
            "SDK-HMAC-SHA256 Access=QTWAOYTTINDUT2QVKYUC, "
            f"SignedHeaders=content-type;host;x-sdk-date, Signature={VECTOR_SIGNATURE}"
        ),
    }


def test_vector_verifies() -> None:
    """verify_request accepts the published vector and recomputes its canonical request."""
    headers = {"Content-Type": "application/json"}
    headers |= sign_request(
        method="GET",
        url=VECTOR_URL,
        headers=headers,
        body=None,
        ak=VECTOR_AK,
        sk=VECTOR_SK,
        now=VECTOR_NOW,
    )
    result = verify_request(
        method="GET",
        path="/v1/77b6a44cba5143ab91d13ab9a8ff44fd/vpcs",
        query=[("marker", "13551d6b-755d-4757-b956-536f674975c0"), ("limit", "2")],
        headers=headers,
        body=b"",
        secret_for={VECTOR_AK: VECTOR_SK},
        now=VECTOR_NOW + timedelta(minutes=14),
    )
    assert result.ok
    assert result.canonical_request == VECTOR_CANONICAL


def test_canonical_uri_and_query_encoding() -> None:
    """Path segments are decoded then re-encoded keeping '~'; query pairs sort by key, value."""
    assert canonical_uri("/a%20b/c~d/e+f") == "/a%20b/c~d/e%2Bf/"
    assert canonical_uri("/") == "/"
    assert canonical_query("b=2&a=z&a=y&c") == "a=y&a=z&b=2&c="
    assert canonical_query([("k", "a b/c")]) == "k=a%20b%2Fc"


def test_host_keeps_only_non_default_port() -> None:
    """The added Host header carries the port only when it is not the scheme's default."""

    def host(url: str) -> str:
        return sign_request(method="GET", url=url, headers={}, body=None, ak=AK, sk=SK, now=NOW)[
            "Host"
        ]

    assert host("https://h.example.com:443/x") == "h.example.com"
    assert host("http://h.example.com:80/x") == "h.example.com"
    assert host("http://127.0.0.1:8080/x") == "127.0.0.1:8080"
    assert host("http://[::1]:9000/x") == "[::1]:9000"


def test_put_json_round_trip_signs_every_header() -> None:
    """A signed JSON PUT verifies and signs every header present at signing time."""
    headers = signed_put()
    assert "X-Sdk-Content-Sha256" not in headers
    assert "SignedHeaders=content-type;host;x-project-id;x-sdk-date," in headers["Authorization"]
    assert verify_put(headers) is None


def test_multipart_round_trip_uses_unsigned_payload() -> None:
    """A multipart upload is signed with UNSIGNED-PAYLOAD, so any body verifies."""
    url = "http://127.0.0.1:8080/v2/919bb351ef424e2daaf3dd80c179fae9/img"
    headers = {"Content-Type": "multipart/form-data; boundary=xyz"}
    body = b"--xyz\r\n...image bytes...\r\n--xyz--\r\n"
    headers |= sign_request(
        method="POST", url=url, headers=headers, body=body, ak=AK, sk=SK, now=NOW
    )
    assert headers["X-Sdk-Content-Sha256"] == UNSIGNED_PAYLOAD
    assert "x-sdk-content-sha256" in parse_authorization(headers["Authorization"]).signed_headers
    for sent in (body, b"other bytes"):
        result = verify_request(
            method="POST",
            path="/v2/919bb351ef424e2daaf3dd80c179fae9/img",
            query="",
            headers=headers,
            body=sent,
            secret_for={AK: SK},
            now=NOW,
        )
        assert result.ok


def test_rejects_tampered_body() -> None:
    """Changing the JSON body after signing fails with BAD_SIGNATURE."""
    assert verify_put(signed_put(), body=PUT_BODY.replace(b"png", b"gif")) is Failure.BAD_SIGNATURE


def test_rejects_tampered_signed_header() -> None:
    """Changing a signed header after signing fails with BAD_SIGNATURE."""
    headers = signed_put() | {"X-Project-Id": "fedcba9876543210"}
    assert verify_put(headers) is Failure.BAD_SIGNATURE


def test_rejects_wrong_secret_without_leaking_it() -> None:
    """A request signed with another SK fails, and no result field contains either secret."""
    headers = {"Content-Type": "application/json"}
    headers |= sign_request(
        method="PUT", url=PUT_URL, headers=headers, body=PUT_BODY, ak=AK, sk="wrong-sk", now=NOW
    )
    result = verify_request(
        method="PUT",
        path=PUT_URL.split("8080", 1)[1],
        query="",
        headers=headers,
        body=PUT_BODY,
        secret_for={AK: SK},
        now=NOW,
    )
    assert result.failure is Failure.BAD_SIGNATURE
    assert SK not in repr(result)
    assert "wrong-sk" not in repr(result)


def test_rejects_unknown_access_key() -> None:
    """An access key the verifier does not know fails with UNKNOWN_ACCESS_KEY."""
    assert verify_put(signed_put(), secrets={"OTHER": SK}) is Failure.UNKNOWN_ACCESS_KEY


@pytest.mark.parametrize("offset", [timedelta(minutes=16), timedelta(minutes=-16)])
def test_rejects_date_sixteen_minutes_off(offset: timedelta) -> None:
    """A signature dated 16 minutes before or after the verifier's now fails with DATE_SKEWED."""
    assert verify_put(signed_put(), now=NOW + offset) is Failure.DATE_SKEWED
    assert verify_put(signed_put(), now=NOW + offset / 16 * 14) is None


def test_rejects_missing_and_malformed_date() -> None:
    """A missing X-Sdk-Date or one in another format is reported as such."""
    headers = signed_put()
    without = {k: v for k, v in headers.items() if k != "X-Sdk-Date"}
    assert verify_put(without) is Failure.DATE_MISSING
    assert verify_put(headers | {"X-Sdk-Date": "2025-06-12T08:00:00Z"}) is Failure.DATE_MALFORMED


@pytest.mark.parametrize(
    "value",
    [
        "",
        "Bearer abc",
        "SDK-HMAC-SHA256 Access=AK, SignedHeaders=host",
        "SDK-HMAC-SHA256 Access=AK SignedHeaders=host Signature=00",
    ],
)
def test_malformed_authorization(value: str) -> None:
    """Authorization headers that are not well-formed SDK-HMAC-SHA256 are MALFORMED."""
    with pytest.raises(MalformedAuthorization):
        parse_authorization(value)
    assert verify_put(signed_put() | {"Authorization": value}) is Failure.MALFORMED
