"""What the API's routes read from the application, typed: one object instead of untyped `app.state.*`.

`create_app` sets it with what it knows at once (settings, API keys); the
lifespan adds the clients it opens and takes them away when it closes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer
from fastapi import FastAPI, Request
from sqlalchemy.ext.asyncio import AsyncEngine

from app.api.consistency import ConsistencyWaiter
from app.api.notification_hub import NotificationHub
from app.api.readiness import SharedProbe
from app.api_keys import ApiKey
from app.config import Settings
from app.eventstore.command_bus import CommandBus

if TYPE_CHECKING:  # end_users reads the clients from here
    from app.api.end_users import TokenVerifier


@dataclass(frozen=True, slots=True)
class Clients:
    """The connections the lifespan opens: Kafka, PostgreSQL, and what is built on them."""

    engine: AsyncEngine  # the queries': read-only sessions (app/db.py::create_query_engine)
    probe_engine: AsyncEngine  # /health/ready's own connection: a flood of probes never takes the queries'
    operator_engine: AsyncEngine  # the API's one write: an operator's retry of a failed event
    command_bus: CommandBus
    consistency: ConsistencyWaiter
    offsets: AIOKafkaConsumer  # reads end offsets for the projection lag
    notifications: NotificationHub  # feeds every SSE stream of this process


@dataclass(slots=True)
class AppState:
    settings: Settings
    api_keys: tuple[ApiKey, ...]
    tokens: TokenVerifier | None = None  # end users' bearer tokens, when an issuer is configured
    clients: Clients | None = None
    readiness: SharedProbe[Any] = field(default_factory=SharedProbe)  # /health/ready shares one probe
    kafka_probe: SharedProbe[bool] = field(default_factory=SharedProbe)  # streams opening share one


def install_state(app: FastAPI, state: AppState) -> None:
    app.state.eventline = state


def app_state(request: Request) -> AppState:
    state: AppState = request.app.state.eventline
    return state


def clients(request: Request) -> Clients:
    """The open clients; only a request served outside the lifespan finds none, which is a bug."""
    found = app_state(request).clients
    if found is None:
        raise RuntimeError("the API's clients are not open: is the app served without its lifespan?")
    return found
