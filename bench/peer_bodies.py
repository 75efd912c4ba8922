"""The request bodies both peer services accept: the same HTTP contract as Eventline's deposits."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class OpenAccountRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    owner: str = Field(min_length=1, max_length=200)
    currency: str = Field(pattern=r"^[A-Z]{3}$")


class AmountRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount: int = Field(ge=1, le=10**12)
    reference: str | None = Field(default=None, max_length=200)
