"""Write endpoints: each turns a request into a command and waits for its result."""

from __future__ import annotations

import hashlib
import uuid
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from app.api.errors import Problem, problem_for_rejection
from app.api.schemas import AmountRequest, CommandAccepted, CommandPending, OpenAccountRequest
from app.domain import accounts
from app.eventstore import position
from app.eventstore.command_bus import CommandBus, CommandNotAccepted
from app.eventstore.envelope import CommandEnvelope, utc_now

router = APIRouter(tags=["accounts"])

# Namespace of ids derived from an Idempotency-Key: the same key always names the same command.
IDEMPOTENCY_NAMESPACE = uuid.UUID("1d7c5cb6-3a0e-4d55-9a4f-6ad8c4b9e0f1")

COMMAND_RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {"model": CommandPending, "description": "Stored, not decided yet: see Location"},
    404: {"description": "No such account"},
    412: {"description": "If-Match does not match the account's version"},
    422: {"description": "Invalid request, or refused by a business rule"},
    503: {"description": "Kafka did not accept the command in time"},
}


def get_bus(request: Request) -> CommandBus:
    bus: CommandBus = request.app.state.command_bus
    return bus


BusDep = Annotated[CommandBus, Depends(get_bus)]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]
IfMatch = Annotated[str | None, Header(alias="If-Match", description='The expected version, e.g. "3".')]
Prefer = Annotated[str | None, Header(description="`respond-async` to get 202 without waiting.")]
CorrelationId = Annotated[str | None, Header(alias="X-Correlation-ID", max_length=100)]


@router.post("/accounts", status_code=201, response_model=CommandAccepted, responses=COMMAND_RESPONSES)
async def open_account(
    body: OpenAccountRequest, bus: BusDep, idempotency_key: IdempotencyKey = None,
    prefer: Prefer = None, correlation_id: CorrelationId = None,
) -> Response:
    """Open an account for an owner in one currency."""
    account_id = str(_derived_id("account", idempotency_key) if idempotency_key else uuid.uuid4())
    command = accounts.OpenAccount(owner=body.owner, currency=body.currency)
    envelope = _envelope(command, account_id, idempotency_key, None, correlation_id)
    return await _submit(bus, envelope, prefer, created=f"/accounts/{account_id}")


@router.post("/accounts/{account_id}/deposits", response_model=CommandAccepted, responses=COMMAND_RESPONSES)
async def deposit(
    account_id: uuid.UUID, body: AmountRequest, bus: BusDep, idempotency_key: IdempotencyKey = None,
    if_match: IfMatch = None, prefer: Prefer = None, correlation_id: CorrelationId = None,
) -> Response:
    """Deposit money into an account."""
    command = accounts.Deposit(amount=body.amount, reference=body.reference)
    envelope = _envelope(command, str(account_id), idempotency_key, if_match, correlation_id)
    return await _submit(bus, envelope, prefer)


@router.post("/accounts/{account_id}/withdrawals", response_model=CommandAccepted,
             responses=COMMAND_RESPONSES)
async def withdraw(
    account_id: uuid.UUID, body: AmountRequest, bus: BusDep, idempotency_key: IdempotencyKey = None,
    if_match: IfMatch = None, prefer: Prefer = None, correlation_id: CorrelationId = None,
) -> Response:
    """Withdraw money from an account; refused beyond its balance."""
    command = accounts.Withdraw(amount=body.amount, reference=body.reference)
    envelope = _envelope(command, str(account_id), idempotency_key, if_match, correlation_id)
    return await _submit(bus, envelope, prefer)


def _envelope(
    command: BaseModel, aggregate_id: str, idempotency_key: str | None, if_match: str | None,
    correlation_id: str | None,
) -> CommandEnvelope:
    data = command.model_dump(mode="json", exclude={"type"})
    kind = command.type  # type: ignore[attr-defined]
    command_id = str(_derived_id("command", idempotency_key) if idempotency_key else uuid.uuid4())
    return CommandEnvelope(
        command_id=command_id, type=kind, aggregate_type=accounts.AGGREGATE_TYPE, aggregate_id=aggregate_id,
        data=data, issued_at=utc_now(), correlation_id=correlation_id or command_id, causation_id=command_id,
        expected_version=_expected_version(if_match), fingerprint=_fingerprint(kind, aggregate_id, data),
    )


async def _submit(bus: CommandBus, envelope: CommandEnvelope, prefer: str | None,
                  created: str | None = None) -> Response:
    wait = not (prefer and "respond-async" in prefer.lower())
    try:
        result = await bus.send(envelope, wait=wait)
    except CommandNotAccepted as error:
        raise Problem(
            503, "kafka-unavailable", "The event store is unavailable",
            detail=f"the command was not acknowledged ({error}); it may or may not have been stored, "
            "so retry with the same Idempotency-Key",
            headers={"Retry-After": "1"}, command_id=envelope.command_id,
        ) from error
    if result is None:
        pending = CommandPending(command_id=envelope.command_id, aggregate_id=envelope.aggregate_id)
        return JSONResponse(pending.model_dump(), status_code=202,
                            headers={"Location": f"/commands/{envelope.command_id}"})
    if result.outcome == "rejected":
        raise problem_for_rejection(result.error or {}, command_id=result.command_id)
    accepted = CommandAccepted(command_id=result.command_id, aggregate_id=result.aggregate_id,
                               version=result.version, position=position.encode(result.position))
    headers = {"ETag": f'"{result.version}"'}
    if created:
        headers["Location"] = created
    return JSONResponse(accepted.model_dump(), status_code=201 if created else 200, headers=headers)


def _derived_id(kind: str, idempotency_key: str) -> uuid.UUID:
    return uuid.uuid5(IDEMPOTENCY_NAMESPACE, f"{kind}:{idempotency_key}")


def _fingerprint(kind: str, aggregate_id: str, data: dict[str, Any]) -> str:
    canonical = orjson.dumps([kind, aggregate_id, data], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()[:32]


def _expected_version(if_match: str | None) -> int | None:
    if if_match is None:
        return None
    tag = if_match.strip().removeprefix("W/").strip('"')
    if not tag.isdigit():
        raise Problem(400, "invalid-if-match", "Invalid If-Match",
                      detail='If-Match must be an aggregate version such as "3"')
    return int(tag)
