"""End users: people with a bearer token (a JWT from an identity provider) who act on their own accounts.

A token is verified by PyJWT against the provider's public keys from settings
(a JWKS document, inline or in a file): signature, issuer, audience, expiry and
not-before, asymmetric algorithms only, so neither `alg: none` nor a public key
used as an HMAC secret gets through. The token's subject (`sub`) is the user.

What a user may do is declared per route in `RULES`, and the routes closed to
users on purpose in `CLOSED`; a route in neither is closed too (403), and
`tests/integration/test_end_users.py` fails for it, so every new route needs a
decision. The rules:

- `ANYONE`: any user (opening an account, which the user then holds; the tariff);
- `HOLDER`: the route's `{account_id}` must be an account the user holds. A read
  of an account that is not theirs answers 404, exactly as for one that does not
  exist (no existence leak); a command on it answers 403;
- `SUBJECT_HOLDER`: the route's `{subject_id}` must be an account the user holds (a
  user may ask to be forgotten as the holder of their accounts; conversations are
  forgotten by an operator);
- `COMMAND_SENDER`: the route's `{command_id}` must be a command the user sent
  (on any of their accounts, conversations or messages), or, while the command
  itself is not read yet, one on an account they hold (404 otherwise);
- `BY_ROUTE`: the route checks itself, knowing which accounts a request
  involves (Messaging: a conversation includes one of the user's accounts, a
  message is posted or marked read as one of them, and a conversation or
  message is visible only to a user who takes part).

Holding is the `holder` of `AccountOpened`, set from the token's subject when a
user opens an account, never from the request body; it never changes, so a
check against the read model cannot be contradicted later. A miss first
catches the read model up with the log (an account just opened is found).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import jwt
from fastapi import Request
from sqlalchemy import select

from app.api.errors import Problem, not_found
from app.api.state import clients
from app.config import Settings
from projections.tables import accounts, command_status

# Asymmetric only: a verifier holds public keys, and HMAC would let a public key act as a secret.
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
USER_PREFIX = "user:"


class InvalidToken(Exception):
    """Why a token was refused, for the log; the client hears only 401."""


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    subject: str
    expires_at: float  # seconds since the epoch, the leeway included: when it stops being accepted


class TokenVerifier:
    def __init__(self, jwks: dict[str, Any], issuer: str, audience: str, leeway_s: float) -> None:
        self.keys = jwt.PyJWKSet.from_dict(jwks)
        self.issuer, self.audience, self.leeway_s = issuer, audience, leeway_s

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenVerifier | None:
        if not settings.token_issuer:
            return None
        raw = settings.token_jwks or (Path(settings.token_jwks_file).read_text() if settings.token_jwks_file else "")
        if not raw:
            raise ValueError("EVENTLINE_TOKEN_ISSUER is set but no keys are: set EVENTLINE_TOKEN_JWKS(_FILE)")
        return cls(json.loads(raw), settings.token_issuer, settings.token_audience, settings.token_leeway_s)

    def subject(self, token: str) -> str:
        """The verified token's subject; InvalidToken for anything short of a valid, current token."""
        return self.verify(token).subject

    def verify(self, token: str) -> VerifiedToken:
        """The verified token's subject and expiry; InvalidToken for anything short of a valid, current token."""
        try:
            header = jwt.get_unverified_header(token)
            if header.get("alg") not in ALGORITHMS:
                raise InvalidToken(f"algorithm {header.get('alg')!r} is not accepted")
            key = self.key_for(header.get("kid"))
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[header["alg"]],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway_s,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError as error:
            raise InvalidToken(f"{type(error).__name__}: {error}") from error
        subject = claims["sub"]
        if not isinstance(subject, str) or not 0 < len(subject) <= 200 or not subject.isprintable():
            raise InvalidToken("the subject is not a printable string of 1 to 200 characters")
        return VerifiedToken(subject, float(claims["exp"]) + self.leeway_s)

    def key_for(self, kid: object) -> jwt.PyJWK:
        if kid is None and len(self.keys.keys) == 1:
            return self.keys.keys[0]
        for key in self.keys.keys:
            if key.key_id == kid:
                return key
        raise InvalidToken(f"no key {kid!r} in the configured key set")


def principal_of_user(request: Request, subject: str) -> str:
    """The principal an end user's commands and events carry: `user:` and a pseudonym of their token's
    subject, never the subject itself (it is personal data, and a principal is stored in plain on
    every topic and in the audit rows; docs/privacy.md). In plain only while sealing is off."""
    keys = clients(request).command_bus.keys
    return USER_PREFIX + (subject if keys is None else keys.pseudonym(subject))


def looks_like_a_token(credential: str) -> bool:
    return credential.count(".") == 2


class Rule(Enum):
    ANYONE = "anyone"
    HOLDER = "holder of the account"
    COMMAND_SENDER = "sender of the command"
    # The route's `{subject_id}` (a data subject to forget) must be an account the user holds.
    SUBJECT_HOLDER = "holder of the account to forget"
    # The route checks itself, as only it knows which accounts are involved (a body's sender, a
    # conversation's participants): app/api/messaging.py, with `user` from the command context.
    BY_ROUTE = "checked by the route"


# (method, route path) → what a user may do there; every other route is closed to users.
RULES: dict[tuple[str, str], Rule] = {
    ("POST", "/accounts"): Rule.ANYONE,
    ("GET", "/pricing"): Rule.ANYONE,
    ("GET", "/accounts/{account_id}"): Rule.HOLDER,
    ("GET", "/accounts/{account_id}/transactions"): Rule.HOLDER,
    ("GET", "/accounts/{account_id}/inbox"): Rule.HOLDER,
    ("POST", "/accounts/{account_id}/deposits"): Rule.HOLDER,
    ("POST", "/accounts/{account_id}/withdrawals"): Rule.HOLDER,
    ("GET", "/commands/{command_id}"): Rule.COMMAND_SENDER,
    ("POST", "/conversations"): Rule.BY_ROUTE,  # one of the participants is the user's
    ("POST", "/conversations/{conversation_id}/messages"): Rule.BY_ROUTE,  # the sender is the user's
    ("GET", "/conversations/{conversation_id}/messages"): Rule.BY_ROUTE,  # a participant is the user's
    ("POST", "/messages/{message_id}/read"): Rule.BY_ROUTE,  # the reader is the user's
    ("GET", "/messages/{message_id}"): Rule.BY_ROUTE,  # the sender or a recipient is the user's
    ("GET", "/notifications/stream"): Rule.BY_ROUTE,  # only the notifications of the user's accounts
    ("DELETE", "/subjects/{subject_id}"): Rule.SUBJECT_HOLDER,  # the right to be forgotten, for one's own
}

# Closed to end users on purpose: the log and operations are for services and operators.
CLOSED: frozenset[tuple[str, str]] = frozenset(
    {
        ("GET", "/events"),
        ("GET", "/events/{event_id}"),
        ("GET", "/messages/{message_id}/timeline"),  # the saga's inner workings, for operators
        ("GET", "/projections"),
        ("GET", "/projections/failures"),
        ("POST", "/projections/failures/{failure_id}/retry"),
        ("GET", "/processors"),
        ("GET", "/saga/pending"),
        ("GET", "/metrics"),
    }
)


async def admit(request: Request, subject: str) -> None:
    """Let the user through to this route, or answer 403 (closed, or another's account) or 404."""
    route = request.scope.get("route")
    rule = RULES.get((request.method, getattr(route, "path", "")))
    if rule is None:
        raise Problem(403, "forbidden", "Forbidden", detail="this is not available with an end-user token")
    if rule is Rule.HOLDER:
        account_id = str(request.path_params["account_id"])
        holder = await holder_of(request, account_id)
        if holder != subject:
            if request.method == "GET" or holder is None:
                raise not_found("account", account_id)  # another's account reads as one that does not exist
            raise Problem(403, "not-your-account", "Not your account", detail="you may act only on your own accounts")
    elif rule is Rule.SUBJECT_HOLDER:
        subject_id = str(request.path_params["subject_id"])
        holder = await holder_of(request, subject_id)
        if holder is None:
            raise not_found("subject", subject_id)
        if holder != subject:
            raise Problem(403, "not-your-account", "Not your account", detail="you may forget only your own accounts")
    elif rule is Rule.COMMAND_SENDER:
        command_id = str(request.path_params["command_id"])
        if not await sent_by(request, command_id, subject):
            raise not_found("command", command_id)


async def sent_by(request: Request, command_id: str, subject: str) -> bool:
    """Whether the user sent this command. Its result can be read before the command itself (the
    projection reads both topics); until then, a command on an account they hold is theirs to see."""
    query = select(command_status.c.principal, command_status.c.aggregate_id)
    async with clients(request).engine.connect() as db:
        row = (await db.execute(query.where(command_status.c.command_id == command_id))).first()
    if row is None:
        return False
    if row.principal is not None:
        return bool(row.principal == principal_of_user(request, subject))
    return await holder_of(request, str(row.aggregate_id)) == subject


async def holder_of(request: Request, account_id: str) -> str | None:
    """The account's holder ('' for an account opened by a service, None when unknown)."""
    try:
        uuid.UUID(account_id)
    except ValueError:  # not an account id at all: nothing to catch up with
        return None
    found = await read_holder(request, account_id)
    if found is None:  # not known yet may be just opened: catch up with the log before saying so
        await clients(request).consistency.caught_up_with_the_log("accounts")
        found = await read_holder(request, account_id)
    return found


async def read_holder(request: Request, account_id: str) -> str | None:
    async with clients(request).engine.connect() as db:
        row = (await db.execute(select(accounts.c.holder).where(accounts.c.account_id == account_id))).first()
    return None if row is None else (row.holder or "")
