"""Forgetting a data subject: `DELETE /subjects/{subject_id}` (docs/privacy.md).

A subject is an account (its owner, holder and references, and the bodies of
the messages it sent) or a conversation (its title). The request becomes a
`ForgetSubject` command on that aggregate; the processor decides it, destroys
the subject's data keys in the same transaction, and from then on every read
shows the subject's values as `[erased]`. Admins may forget any subject; an end
user may forget an account they hold (end_users.py, `Rule.SUBJECT_HOLDER`).
Forgetting again succeeds and changes nothing.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from app.api.errors import not_found, problem_doc
from app.api.lean_routes import LeanRoute
from app.api.schemas import CommandAccepted
from app.api.state import clients
from app.api.submission import COMMAND_RESPONSES, BusDep, CommandContextDep, submit
from app.domain.forgetting import ForgetSubject
from projections import queries

router = APIRouter(tags=["privacy"], route_class=LeanRoute)  # lean_routes.py

RESPONSES: dict[int | str, dict[str, Any]] = {
    **COMMAND_RESPONSES,
    404: problem_doc("No account or conversation has this id"),
}


@router.delete("/subjects/{subject_id}", response_model=CommandAccepted, responses=RESPONSES)
async def forget_subject(
    subject_id: uuid.UUID, request: Request, bus: BusDep, context: CommandContextDep
) -> JSONResponse:
    """Forget a data subject (an account or a conversation): its personal values read as `[erased]`
    everywhere from now on, in every read model, query, stream and rebuild, while amounts, versions
    and every other fact stay. The subject takes no more commands (410). Idempotent."""
    kind = await subject_kind(request, str(subject_id))
    forget = ForgetSubject(requested_by="subject" if context.user is not None else "operator")
    return await submit(bus, context.envelope(forget, str(subject_id), aggregate_type=kind), context.waits)


async def subject_kind(request: Request, subject_id: str) -> str:
    """The aggregate the id names; a miss first catches the read models up with the log (a subject
    created a moment ago is found), then answers 404."""
    engine = clients(request).engine
    async with engine.connect() as db:
        kind = await queries.subject_kind(db, subject_id)
    if kind is None:
        await clients(request).consistency.caught_up_with_the_log(("accounts", "conversations"))
        async with engine.connect() as db:
            kind = await queries.subject_kind(db, subject_id)
    if kind is None:
        raise not_found("subject", subject_id)
    return kind
