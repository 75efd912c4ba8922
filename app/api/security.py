"""Who is asking: a service's API key with a role, or an end user's token (app/api/end_users.py).

API keys have roles: reader (queries), writer (commands and queries), admin
(everything). Keys are configured hashed — `EVENTLINE_API_KEYS=name:role:<sha256 hex of the key>,…` —
so a leaked configuration does not leak the keys. Clients send
`Authorization: Bearer <key>`; its hash is compared with every configured
hash in constant time. A bearer credential that is no key but a JWT is
verified as an end user's token. With neither keys nor tokens configured the
API refuses to start (fail closed), unless `EVENTLINE_ALLOW_ANONYMOUS=true`
says this is development; production refuses that too.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.api.end_users import InvalidToken, admit, looks_like_a_token, principal_of_user
from app.api.errors import Problem
from app.api.state import app_state
from app.api_keys import RANK, ApiKey, Role

log = logging.getLogger(__name__)


class OpenAccessRefused(RuntimeError):
    """No way to authenticate anyone is configured, and open access was not asked for."""


def refuse_open_access(keys: tuple[ApiKey, ...], tokens: bool, allow_anonymous: bool) -> None:
    if not keys and not tokens and not allow_anonymous:
        raise OpenAccessRefused(
            "no API key (EVENTLINE_API_KEYS) and no end-user tokens (EVENTLINE_TOKEN_ISSUER) are configured, "
            "so anyone could read and move every account: "
            "refusing to serve. Configure keys (scripts/dev_key.py makes one; `make run` does it for you), "
            "or set EVENTLINE_ALLOW_ANONYMOUS=true for development without authentication."
        )


bearer = HTTPBearer(
    auto_error=False,
    description="A service's API key, or an end user's token (a JWT from the identity provider): "
    "`Authorization: Bearer <key or token>`.",
)


def identify(keys: tuple[ApiKey, ...], presented: str) -> ApiKey | None:
    digest = hashlib.sha256(presented.encode()).digest()
    found = None
    for key in keys:  # no early exit: every configured key is compared, in constant time
        if hmac.compare_digest(key.sha256, digest):
            found = key
    return found


def unauthorized() -> Problem:
    return Problem(
        401,
        "unauthorized",
        "Unauthorized",
        detail="send a valid API key or end-user token as a Bearer token",
        headers={"WWW-Authenticate": "Bearer"},
    )


def require(role: Role) -> Any:
    """A dependency that lets through keys of `role` or above, and end users where a rule admits them."""

    async def check(
        request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
    ) -> None:
        state = app_state(request)
        if not state.api_keys and state.tokens is None:
            return  # open access, development only (refuse_open_access)
        if getattr(request.state, "user", None) is not None:
            return  # a route behind two of these (reader, then writer): the token was verified and admitted
        if credentials is None:
            raise unauthorized()
        key = identify(state.api_keys, credentials.credentials)
        if key is not None:
            if RANK[key.role] < RANK[role]:
                raise Problem(403, "forbidden", "Forbidden", detail=f"this needs the {role} role")
            request.state.principal = key.name
            return
        if state.tokens is None or not looks_like_a_token(credentials.credentials):
            raise unauthorized()
        try:
            verified = state.tokens.verify(credentials.credentials)
        except InvalidToken as refused:
            log.info("end-user token refused: %s", refused)  # the reason stays here; the client hears 401
            raise unauthorized() from None
        subject = verified.subject
        request.state.principal, request.state.user = principal_of_user(request, subject), subject
        request.state.token_expires_at = verified.expires_at  # a stream ends then
        await admit(request, subject)

    return Depends(check)
