"""`/asyncapi.json` (AsyncAPI 3) and `/schemas/events`, generated from the pydantic event models.

The document describes what flows on the topics — keys, envelopes and every
event's payload schema — so a consumer in any language can be written
against it. It is generated, never hand-edited, so it cannot drift.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from app.api.state import app_state
from app.config import Settings
from app.domain.base import Event
from app.domain.registry import AGGREGATES

router = APIRouter(tags=["schemas"])

ENVELOPE_FIELDS: dict[str, Any] = {
    "event_id": {"type": "string", "format": "uuid"},
    "type": {"type": "string"},
    "schema_version": {"type": "integer", "minimum": 1},
    "aggregate_type": {"type": "string"},
    "aggregate_id": {"type": "string", "format": "uuid"},
    "version": {"type": "integer", "minimum": 1, "description": "1-based, per aggregate, no gaps"},
    "occurred_at": {"type": "string", "format": "date-time"},
    "command_id": {"type": "string"},
    "correlation_id": {"type": "string"},
    "causation_id": {"type": "string"},
}


def event_schemas() -> dict[str, dict[int, dict[str, Any]]]:
    """type → schema_version → JSON Schema of the event's `data`."""
    schemas: dict[str, dict[int, dict[str, Any]]] = {}
    for kind in AGGREGATES.values():
        for name, model in kind.events.items():
            schema = model.model_json_schema()
            schema["properties"].pop("type", None)  # the envelope carries the type
            if "type" in schema.get("required", []):
                schema["required"].remove("type")
            schema["x-aggregate-type"] = " | ".join(aggregates_of(name))
            schemas[name] = {model.schema_version: schema}
    return schemas


def aggregates_of(event_type: str) -> list[str]:
    """The aggregates whose streams hold this event type (SubjectForgotten is in several)."""
    return [kind.name for kind in AGGREGATES.values() if event_type in kind.events]


# Optional: events written before the audit trail have none.
PRINCIPAL: dict[str, Any] = {
    "type": "string",
    "description": "Who caused the event: the principal of its command (an API key's name, `saga`, …).",
}


def envelope_schema(name: str, model: type[Event], data: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": [*ENVELOPE_FIELDS, "data"],
        "properties": {
            **ENVELOPE_FIELDS,
            "principal": PRINCIPAL,
            "type": {"const": name},
            "schema_version": {"const": model.schema_version},
            "data": data,
        },
    }


def asyncapi(settings: Settings) -> dict[str, Any]:
    messages: dict[str, Any] = {}
    for kind in AGGREGATES.values():
        for name, model in kind.events.items():
            data = event_schemas()[name][model.schema_version]
            messages[name] = {
                "name": name,
                "title": name,
                "contentType": "application/json",
                "summary": (model.__doc__ or name).strip().splitlines()[0],
                "headers": {
                    "type": "object",
                    "properties": {"type": {"const": name}, "schema_version": {"const": str(model.schema_version)}},
                },
                "payload": envelope_schema(name, model, data),
                "bindings": {
                    "kafka": {
                        "key": {
                            "type": "string",
                            "format": "uuid",
                            "description": f"{' or '.join(aggregates_of(name))} id",
                        }
                    }
                },
            }
    refs = {name: {"$ref": f"#/components/messages/{name}"} for name in messages}
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Eventline events",
            "version": "1.0.0",
            "description": "The event store's topics. Events are keyed by aggregate id and partitioned "
            "with Kafka's murmur2, so one aggregate's events are in order on one partition. "
            "No `servers`: the document is served without authentication, and where the brokers are is "
            "the deployment's business, not a reader's.",
        },
        "channels": {
            "events": {
                "address": settings.topic("events"),
                "messages": refs,
                "description": "Every event, kept forever (retention.ms=-1). Read it read_committed.",
            },
            "notifications": {
                "address": settings.topic("notifications"),
                "messages": {"Notification": {"$ref": "#/components/messages/Notification"}},
                "description": "Thin notifications; fetch the event from /events/{event_id}.",
            },
        },
        "operations": {
            "consumeEvents": {
                "action": "receive",
                "channel": {"$ref": "#/channels/events"},
                "messages": [{"$ref": f"#/channels/events/messages/{n}"} for n in messages],
            },
            "consumeNotifications": {"action": "receive", "channel": {"$ref": "#/channels/notifications"}},
        },
        "components": {"messages": {**messages, "Notification": NOTIFICATION}},
    }


NOTIFICATION: dict[str, Any] = {
    "name": "Notification",
    "contentType": "application/json",
    "payload": {
        "type": "object",
        "required": ["event_id", "type", "aggregate_type", "aggregate_id", "version", "published_at", "href"],
        "properties": {
            "event_id": {"type": "string", "format": "uuid"},
            "type": {"type": "string"},
            "aggregate_type": {"type": "string"},
            "aggregate_id": {"type": "string"},
            "version": {"type": "integer"},
            "published_at": {"type": "string", "format": "date-time"},
            "href": {"type": "string"},
        },
    },
}


@router.get("/asyncapi.json", include_in_schema=False)
async def asyncapi_document(request: Request) -> dict[str, Any]:
    return asyncapi(app_state(request).settings)


@router.get("/schemas/events")
async def list_event_schemas() -> dict[str, dict[int, dict[str, Any]]]:
    """JSON Schemas of every event's data, by type and schema version."""
    return event_schemas()
