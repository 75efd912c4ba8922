"""A runner's batch is opened once every forget in it is known (projections/personal.py::opened_batch).

Pure: the keys are an in-memory stand-in for the key store, one that still holds the subject's
key, as a projector's key store does until it reads the key's destruction from its topic."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, cast

from app.domain.accounts import AccountOpened
from app.domain.forgetting import FORGOTTEN_EVENT
from app.eventstore.envelope import EventEnvelope
from app.privacy.key_store import KeyStore
from app.privacy.sealing import ERASED
from projections.base import Message
from projections.personal import opened_batch
from tests.unit.test_personal_data import Keys, sealed

ACCOUNT = "acc-1"


@dataclass
class FollowingKeys(Keys):
    def forget_locally(self, subject_id: str) -> None:
        self.forgotten.add(subject_id)


def event(kind: str, data: dict[str, Any], partition: int, offset: int) -> Message:
    envelope = EventEnvelope(
        f"e-{partition}-{offset}", kind, 1, "Account", ACCOUNT, 1, "2026-12-06T00:00:00Z", "c", "c", "c", data
    )
    return Message("events", partition, offset, envelope)


def test_an_event_is_not_opened_when_its_subject_is_forgotten_in_another_partition_of_the_same_batch() -> None:
    keys = FollowingKeys()
    opened_account = event(
        "AccountOpened", sealed(AccountOpened, {"owner": "Ada", "currency": "EUR"}, ACCOUNT, keys), 0, 5
    )
    forget = event(FORGOTTEN_EVENT, {"requested_by": "operator"}, 1, 3)
    # Partition 0 comes first in the batch, so it is opened before partition 1 is even looked at.
    batch = {("events", 0): [opened_account], ("events", 1): [forget]}
    shown = asyncio.run(opened_batch(batch, cast(KeyStore, keys)))
    assert shown[("events", 0)][0].event.data["owner"] == ERASED
    assert shown[("events", 1)] == [forget]


def test_a_batch_without_a_forget_is_opened() -> None:
    keys = FollowingKeys()
    opened_account = event(
        "AccountOpened", sealed(AccountOpened, {"owner": "Ada", "currency": "EUR"}, ACCOUNT, keys), 0, 5
    )
    shown = asyncio.run(opened_batch({("events", 0): [opened_account]}, cast(KeyStore, keys)))
    assert shown[("events", 0)][0].event.data == {"owner": "Ada", "currency": "EUR"}
