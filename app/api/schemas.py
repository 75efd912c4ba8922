"""Request and response bodies of the HTTP API."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.domain.money import Amount, Currency, Owner, Reference


class Body(BaseModel):
    # A misspelt field is a client bug: refuse it instead of silently dropping it.
    model_config = ConfigDict(extra="forbid")


class OpenAccountRequest(Body):
    owner: Owner = Field(examples=["Ada Lovelace"])
    currency: Currency = Field(examples=["EUR"])


class AmountRequest(Body):
    amount: Amount = Field(description="Minor units (cents for EUR), 1 to 10^12.", examples=[1500])
    reference: Reference | None = Field(default=None, examples=["invoice-2026-001"])


class CommandAccepted(BaseModel):
    """The command was decided and its events are stored."""

    command_id: str
    aggregate_id: str
    version: int = Field(description="The aggregate's version after the command.")
    position: str = Field(
        description="Consistency token: send it as X-Consistent-With to read your own write."
    )


class CommandPending(BaseModel):
    """The command is stored but not decided yet: poll its Location."""

    command_id: str
    aggregate_id: str
    status: Literal["accepted"] = "accepted"
