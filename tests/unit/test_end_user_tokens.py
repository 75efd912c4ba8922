"""End-user tokens are verified by PyJWT: every way a token can be wrong is refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from app.api.end_users import InvalidToken, TokenVerifier
from tests.tokens import AUDIENCE, ISSUER, Provider

PROVIDER = Provider()


def verifier(provider: Provider = PROVIDER) -> TokenVerifier:
    return TokenVerifier(json.loads(provider.jwks()), ISSUER, AUDIENCE, leeway_s=0)


def test_a_valid_token_names_its_subject() -> None:
    assert verifier().subject(PROVIDER.token("user-42")) == "user-42"


# Seconds from now, resolved when the token is made: parameters are built at collection, which can
# be many minutes before the test runs (a clean-clone CI run caught `nbf: now + 120` gone stale).
SOON, AGO = "+120s", "-10s"


def at_run_time(claims: dict[str, object]) -> dict[str, object]:
    now = int(time.time())
    offsets = {SOON: now + 120, AGO: now - 10}
    return {name: offsets.get(value, value) if isinstance(value, str) else value for name, value in claims.items()}


@pytest.mark.parametrize(
    "claims",
    [
        {"exp": AGO},  # expired
        {"nbf": SOON},  # not valid yet
        {"aud": "another-service"},
        {"iss": "https://evil.example"},
        {"exp": None},  # no expiry at all
        {"sub": None},  # nobody
        {"sub": ""},
        {"sub": "line\nbreak"},
    ],
    ids=["expired", "not-yet", "audience", "issuer", "no-exp", "no-sub", "empty-sub", "unprintable-sub"],
)
def test_wrong_claims_are_refused(claims: dict[str, object]) -> None:
    with pytest.raises(InvalidToken):
        verifier().subject(PROVIDER.token("user-42", **at_run_time(claims)))


def test_an_unsigned_token_is_refused() -> None:
    body = jwt.decode(PROVIDER.token("user-42"), options={"verify_signature": False})
    with pytest.raises(InvalidToken, match="algorithm"):
        verifier().subject(b64(b'{"alg":"none","typ":"JWT"}') + "." + b64(json.dumps(body).encode()) + ".")


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_the_public_key_used_as_an_hmac_secret_is_refused() -> None:
    """The classic confusion: HS256 "signed" with the verifier's own public key."""
    public_pem = PROVIDER.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    claims = jwt.decode(PROVIDER.token("admin"), options={"verify_signature": False})
    signed = (
        b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": PROVIDER.kid}).encode())
        + "."
        + b64(json.dumps(claims).encode())
    )
    signature = b64(hmac.new(public_pem, signed.encode(), hashlib.sha256).digest())
    with pytest.raises(InvalidToken, match="algorithm"):
        verifier().subject(f"{signed}.{signature}")


def test_a_tampered_payload_is_refused() -> None:
    head, _, signature = PROVIDER.token("user-42").split(".")
    body = jwt.decode(PROVIDER.token("user-42"), options={"verify_signature": False}) | {"sub": "user-1"}
    with pytest.raises(InvalidToken):
        verifier().subject(f"{head}.{b64(json.dumps(body).encode())}.{signature}")


def test_a_token_signed_by_another_key_is_refused() -> None:
    stranger = Provider(kid=PROVIDER.kid)  # same key id, another key
    with pytest.raises(InvalidToken):
        verifier().subject(stranger.token("user-42"))


def test_an_unknown_key_id_is_refused() -> None:
    with pytest.raises(InvalidToken, match="no key"):
        verifier().subject(Provider(kid="rotated-away").token("user-42"))


def test_garbage_is_refused() -> None:
    for token in ("a.b.c", "....", "eyJhbGciOiJSUzI1NiJ9.e30."):
        with pytest.raises(InvalidToken):
            verifier().subject(token)
