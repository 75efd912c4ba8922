"""Payments write endpoints: each turns a request into an Account command and waits for its result."""

from __future__ import annotations

import uuid

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from app.api.lean_routes import LeanRoute
from app.api.schemas import AmountRequest, CommandAccepted, OpenAccountRequest
from app.api.submission import COMMAND_RESPONSES, BusDep, CommandContextDep, submit
from app.domain import accounts

router = APIRouter(tags=["accounts"], route_class=LeanRoute)  # lean_routes.py


@router.post("/accounts", status_code=201, response_model=CommandAccepted, responses=COMMAND_RESPONSES)
async def open_account(body: OpenAccountRequest, bus: BusDep, context: CommandContextDep) -> JSONResponse:
    """Open an account for an owner in one currency."""
    account_id = context.new_id("account")
    # An end user holds the accounts they open; a service's accounts have no holder.
    opening = accounts.OpenAccount(owner=body.owner, currency=body.currency, holder=context.user)
    command = context.envelope(opening, account_id)
    return await submit(bus, command, context.waits, created=f"/accounts/{account_id}")


@router.post("/accounts/{account_id}/deposits", response_model=CommandAccepted, responses=COMMAND_RESPONSES)
async def deposit(account_id: uuid.UUID, body: AmountRequest, bus: BusDep, context: CommandContextDep) -> JSONResponse:
    """Deposit money into an account."""
    command = context.envelope(accounts.Deposit(amount=body.amount, reference=body.reference), str(account_id))
    return await submit(bus, command, context.waits)


@router.post("/accounts/{account_id}/withdrawals", response_model=CommandAccepted, responses=COMMAND_RESPONSES)
async def withdraw(account_id: uuid.UUID, body: AmountRequest, bus: BusDep, context: CommandContextDep) -> JSONResponse:
    """Withdraw money from an account; refused beyond its balance."""
    command = context.envelope(accounts.Withdraw(amount=body.amount, reference=body.reference), str(account_id))
    return await submit(bus, command, context.waits)
