"""The API fails closed: with no way to authenticate anyone configured, it refuses to start."""

from __future__ import annotations

import os
import subprocess

import pytest

from app.api.security import OpenAccessRefused
from app.api_keys import hash_key
from app.config import Settings
from app.main import create_app
from tests.conftest import ROOT
from tests.tokens import ISSUER, Provider


def test_without_keys_the_api_refuses_to_start() -> None:
    with pytest.raises(OpenAccessRefused, match="EVENTLINE_ALLOW_ANONYMOUS"):
        create_app(Settings(api_keys="", allow_anonymous=False))


def test_with_a_key_or_open_access_asked_for_it_starts() -> None:
    create_app(Settings(api_keys=f"ops:admin:{hash_key('a key')}", allow_anonymous=False))
    create_app(Settings(api_keys="", allow_anonymous=True))


def test_production_refuses_open_access_even_when_asked() -> None:
    with pytest.raises(ValueError, match="production always authenticates"):
        Settings(environment="production", api_keys=f"ops:admin:{hash_key('a key')}", allow_anonymous=True)


def test_production_refuses_to_start_without_key_encryption_keys() -> None:
    with pytest.raises(ValueError, match="EVENTLINE_PRIVACY_KEKS must be set in production"):
        Settings(
            environment="production", api_keys=f"ops:admin:{hash_key('a key')}", allow_anonymous=False, privacy_keks=""
        )


def test_eventline_api_without_keys_exits_with_the_reason_before_serving() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTLINE_")} | {"EVENTLINE_API_PORT": "1"}
    done = subprocess.run(
        [str(ROOT / ".venv/bin/eventline"), "api"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2, done.stderr
    assert "refusing to serve" in done.stderr and "EVENTLINE_ALLOW_ANONYMOUS=true" in done.stderr


def test_end_user_tokens_alone_are_a_way_to_authenticate() -> None:
    create_app(Settings(api_keys="", token_issuer=ISSUER, token_jwks=Provider().jwks(), allow_anonymous=False))


def test_a_token_issuer_without_its_keys_is_refused() -> None:
    with pytest.raises(ValueError, match="EVENTLINE_TOKEN_JWKS"):
        create_app(Settings(api_keys="", token_issuer=ISSUER, allow_anonymous=False))
