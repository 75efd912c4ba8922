"""How an HTTP request becomes a command and its result becomes a response.

Shared by every write endpoint: command and aggregate ids (derived from an
Idempotency-Key when there is one), the request fingerprint, If-Match, the
wait for the result, and the mapping of a refusal to problem+json.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from fastapi.responses import JSONResponse
from opentelemetry.trace import SpanKind

from app.api.errors import Problem, problem_doc, problem_for_rejection
from app.api.schemas import CommandAccepted, CommandPending
from app.api.state import clients
from app.domain.base import Command
from app.eventstore import position
from app.eventstore.command_bus import CommandBus, CommandNotAccepted
from app.eventstore.envelope import CommandEnvelope, CommandResult, new_command
from app.observability import tracing
from app.observability.logs import correlation_id as current_correlation
from app.observability.metrics import COMMAND_SECONDS, COMMANDS, DEPENDENCY_ERRORS
from app.observability.tracing_attributes import trace_attributes
from app.privacy.key_store import SubjectForgotten

log = logging.getLogger(__name__)

# Namespace of ids derived from an Idempotency-Key: the same key always names the same command.
IDEMPOTENCY_NAMESPACE = uuid.UUID("1d7c5cb6-3a0e-4d55-9a4f-6ad8c4b9e0f1")

COMMAND_RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {"model": CommandPending, "description": "Stored, not decided yet: see Location"},
    400: problem_doc("Invalid If-Match or X-Consistent-With"),
    404: problem_doc("Not found"),
    410: problem_doc("The command carries personal data of a subject who asked to be forgotten"),
    412: problem_doc("If-Match does not match the aggregate's version"),
    422: problem_doc("Invalid request, or refused by a business rule"),
    503: problem_doc("Kafka did not accept the command in time"),
}


# async: FastAPI runs a plain `def` dependency in its thread pool, a thread hop per request.
async def get_bus(request: Request) -> CommandBus:
    return clients(request).command_bus


BusDep = Annotated[CommandBus, Depends(get_bus)]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        description="Send the same key again to retry safely: the command is applied once, and a retry gets the first "
        "answer, for 24 hours. Scoped to the caller and the resource: another caller's key is another command.",
    ),
]
IfMatch = Annotated[str | None, Header(alias="If-Match", description='The expected version, e.g. "3".')]
Prefer = Annotated[str | None, Header(description="`respond-async` to get 202 without waiting.")]
CorrelationId = Annotated[str | None, Header(alias="X-Correlation-ID", max_length=100)]

# Who sends commands while authentication is off (development and tests): one shared scope.
ANONYMOUS = "anonymous"


@dataclass(frozen=True, slots=True)
class CommandContext:
    """What a command request carries besides its body: who asks, and under which conditions."""

    principal: str
    idempotency_key: str | None = None
    if_match: str | None = None
    prefer: str | None = None
    correlation_id: str | None = None
    user: str | None = None  # an end user's subject, when a token was presented (end_users.py)

    @property
    def waits(self) -> bool:
        return not (self.prefer and "respond-async" in self.prefer.lower())

    def new_id(self, kind: str) -> str:
        """The id of an aggregate this command creates: fresh, or the one this caller's key always names."""
        return scoped_id(self.principal, kind, "", self.idempotency_key)

    def envelope(self, command: Command, aggregate_id: str, aggregate_type: str | None = None) -> CommandEnvelope:
        kind: str = command.type  # type: ignore[attr-defined]
        return new_command(
            command,
            aggregate_id,
            command_id=scoped_id(self.principal, kind, aggregate_id, self.idempotency_key),
            correlation_id=self.correlation_id or current_correlation.get(),
            expected_version=expected_version(self.if_match),
            idempotent=self.idempotency_key is not None,
            principal=self.principal,
            aggregate_type=aggregate_type,
        )


async def command_context(
    request: Request,
    idempotency_key: IdempotencyKey = None,
    if_match: IfMatch = None,
    prefer: Prefer = None,
    correlation_id: CorrelationId = None,
) -> CommandContext:
    # The route's auth dependency ran first and named the caller (security.py).
    principal = getattr(request.state, "principal", None) or ANONYMOUS
    user = getattr(request.state, "user", None)
    return CommandContext(principal, idempotency_key, if_match, prefer, correlation_id, user)


CommandContextDep = Annotated[CommandContext, Depends(command_context)]


def scoped_id(principal: str, kind: str, target: str, idempotency_key: str | None) -> str:
    """A fresh id, or the one an Idempotency-Key names for this caller, kind of command and resource.

    Scoped so that two callers who pick the same key (an order number, say) send two
    commands, and one key on two accounts names two commands, never one answered twice.
    """
    if idempotency_key is None:
        return str(uuid.uuid4())
    return str(uuid.uuid5(IDEMPOTENCY_NAMESPACE, "\x1f".join((principal, kind, target, idempotency_key))))


async def decide(bus: CommandBus, command: CommandEnvelope, wait: bool = True) -> CommandResult | None:
    """Send the command; its result, None when it is not back in time (or not awaited), or a problem."""
    started = time.perf_counter()
    try:
        with tracing.span(f"command {command.type}", trace_attributes(command), kind=SpanKind.SERVER):
            result = await bus.send(command, wait=wait)
    except SubjectForgotten as forgotten:
        COMMANDS.labels(command.type, "rejected").inc()
        raise Problem(
            410,
            "subject-forgotten",
            "Subject forgotten",
            detail=f"{forgotten.subject_id} asked to be forgotten: nothing personal of theirs is taken any more",
        ) from forgotten
    except CommandNotAccepted as error:
        COMMANDS.labels(command.type, "unavailable").inc()
        DEPENDENCY_ERRORS.labels("kafka").inc()
        log.warning("command %s not acknowledged by Kafka: %s", command.command_id, error)
        raise Problem(
            503,
            "kafka-unavailable",
            "The event store is unavailable",
            # What Kafka said stays in the log: its text names brokers and internals.
            detail="Kafka did not acknowledge the command in time; it may or may not have been stored, "
            "so retry with the same Idempotency-Key",
            headers={"Retry-After": "1"},
            command_id=command.command_id,
        ) from error
    COMMAND_SECONDS.labels(command.type).observe(time.perf_counter() - started)
    COMMANDS.labels(command.type, result.outcome if result else "pending").inc()
    if result is not None and result.outcome == "rejected":
        raise problem_for_rejection(result.error or {}, command_id=result.command_id)
    return result


async def submit(
    bus: CommandBus, command: CommandEnvelope, wait: bool = True, created: str | None = None
) -> JSONResponse:
    """The standard answer: 200/201 with the new version and position, or 202 with a Location."""
    result = await decide(bus, command, wait)
    if result is None:
        return pending(command)
    accepted = CommandAccepted(
        command_id=result.command_id,
        aggregate_id=result.aggregate_id,
        version=result.version,
        position=position.encode(result.position),
    )
    headers = {"ETag": f'"{result.version}"'}
    if created:
        headers["Location"] = created
    return JSONResponse(accepted.model_dump(), status_code=201 if created else 200, headers=headers)


def pending(command: CommandEnvelope) -> JSONResponse:
    body = CommandPending(command_id=command.command_id, aggregate_id=command.aggregate_id)
    return JSONResponse(body.model_dump(), status_code=202, headers={"Location": f"/commands/{command.command_id}"})


def expected_version(if_match: str | None) -> int | None:
    if if_match is None:
        return None
    tag = if_match.strip().removeprefix("W/").strip('"')
    if not tag.isascii() or not tag.isdigit() or len(tag) > 9:
        raise Problem(
            400, "invalid-if-match", "Invalid If-Match", detail='If-Match must be an aggregate version such as "3"'
        )
    return int(tag)
