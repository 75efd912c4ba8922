"""What is personal, and whose, is declared on the models: this is the inventory docs/privacy.md states.

A field that loses its marker (or gains one) changes what is sealed and what a forget erases,
so the inventory is pinned here, and the published event schemas must carry every mark."""

from __future__ import annotations

from app.api.asyncapi import event_schemas
from app.domain.personal import personal_fields
from app.domain.registry import AGGREGATES

PERSONAL = {
    "Account": {
        "OpenAccount": {"owner": "account", "holder": "account"},
        "Deposit": {"reference": "account"},
        "Withdraw": {"reference": "account"},
        "AccountOpened": {"owner": "account", "holder": "account"},
        "FundsDeposited": {"reference": "account"},
        "FundsWithdrawn": {"reference": "account"},
    },
    "Message": {
        "SubmitMessage": {"body": "sender"},
        "MessageSubmitted": {"body": "sender"},
    },
    "Conversation": {
        "StartConversation": {"title": "conversation"},
        "ConversationStarted": {"title": "conversation"},
    },
}


def test_the_personal_fields_of_every_command_and_event_are_the_documented_ones() -> None:
    found = {
        kind.name: {
            name: {field: marker.subject for field, marker in personal_fields(model).items()}
            for name, model in {**kind.commands, **kind.events}.items()
            if personal_fields(model)
        }
        for kind in AGGREGATES.values()
    }
    assert found == PERSONAL


def test_the_published_event_schemas_mark_every_personal_field_with_its_subject() -> None:
    marked = {
        name: {
            field: schema["x-subject"]
            for field, schema in versions[1]["properties"].items()
            if schema.get("x-personal")
        }
        for name, versions in event_schemas().items()
    }
    expected = {name: fields for models in PERSONAL.values() for name, fields in models.items() if name in marked}
    assert {name: fields for name, fields in marked.items() if fields} == expected
    assert set(expected) == {
        "AccountOpened",
        "FundsDeposited",
        "FundsWithdrawn",
        "MessageSubmitted",
        "ConversationStarted",
    }
