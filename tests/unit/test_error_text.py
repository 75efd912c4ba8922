"""A failure is logged and stored without the values it failed on (docs/privacy.md: logs hold nothing personal)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.domain.conversations import StartConversation
from app.domain.messages import SubmitMessage
from app.observability.logs import error_text


def test_a_validation_error_names_its_fields_and_kinds_but_not_the_input() -> None:
    secret = "Ada Lovelace's diary"
    with pytest.raises(ValidationError) as invalid:
        # A custom validator's message quotes the value ("not a UUID: '…'"): that is left out too.
        StartConversation.model_validate({"participants": [secret, secret], "title": secret * 50})

    text = error_text(invalid.value)

    assert secret not in text and "Lovelace" not in text
    assert text.startswith("ValidationError: ") and "participants.0" in text and "title" in text
    assert secret in str(invalid.value), "pydantic's own text quotes it: the reason for error_text"


def test_any_other_error_keeps_its_message() -> None:
    assert error_text(RuntimeError("the database is gone")) == "RuntimeError: the database is gone"
    with pytest.raises(ValidationError) as invalid:
        SubmitMessage.model_validate({"sender": "x", "recipients": [], "body": ""})
    assert "body" in error_text(invalid.value)
