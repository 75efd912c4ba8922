"""API keys with roles: reader (queries), writer (commands and queries), admin (everything).

Keys are configured hashed — `EVENTLINE_API_KEYS=name:role:<sha256 hex of the key>,…` —
so a leaked configuration does not leak the keys. Clients send
`Authorization: Bearer <key>`; its hash is compared with every configured
hash in constant time. With no keys configured the API refuses to start
(fail closed), unless `EVENTLINE_ALLOW_ANONYMOUS=true` says this is
development; production refuses that too.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.api.errors import Problem
from app.api.state import app_state
from app.api_keys import RANK, ApiKey, Role


class OpenAccessRefused(RuntimeError):
    """No way to authenticate anyone is configured, and open access was not asked for."""


def refuse_open_access(keys: tuple[ApiKey, ...], allow_anonymous: bool) -> None:
    if not keys and not allow_anonymous:
        raise OpenAccessRefused(
            "no API key is configured (EVENTLINE_API_KEYS), so anyone could read and move every account: "
            "refusing to serve. Configure keys (scripts/dev_key.py makes one; `make run` does it for you), "
            "or set EVENTLINE_ALLOW_ANONYMOUS=true for development without authentication."
        )


bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer <key>`.")


def identify(keys: tuple[ApiKey, ...], presented: str) -> ApiKey | None:
    digest = hashlib.sha256(presented.encode()).digest()
    found = None
    for key in keys:  # no early exit: every configured key is compared, in constant time
        if hmac.compare_digest(key.sha256, digest):
            found = key
    return found


def require(role: Role) -> Any:
    """A dependency that lets through keys of `role` or above."""

    async def check(
        request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
    ) -> None:
        keys = app_state(request).api_keys
        if not keys:
            return
        key = identify(keys, credentials.credentials) if credentials else None
        if key is None:
            raise Problem(
                401,
                "unauthorized",
                "Unauthorized",
                detail="send a valid API key as a Bearer token",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if RANK[key.role] < RANK[role]:
            raise Problem(403, "forbidden", "Forbidden", detail=f"this needs the {role} role")
        request.state.api_key_name = key.name

    return Depends(check)
