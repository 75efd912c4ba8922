"""The idempotency memory and the ids an Idempotency-Key names: by time and by caller, never by count."""

from __future__ import annotations

from app.api.submission import CommandContext, scoped_id
from app.domain import accounts
from app.eventstore.envelope import CommandEnvelope, CommandResult, RememberedCommand
from app.eventstore.idempotency import EXPIRE_PER_BATCH, IdempotencyMemory, is_command_key, record_key

HOUR_MS = 3600 * 1000
T0 = 1_800_000_000_000


def entry(command_id: str, version: int = 1) -> RememberedCommand:
    return RememberedCommand(
        command_id,
        f"fp-{command_id}",
        CommandResult(command_id, "acc-1", "succeeded", version, position={"2": 40 + version}),
    )


def memory_with(*command_ids: str, at: int = T0, retention_ms: int = 24 * HOUR_MS) -> IdempotencyMemory:
    memory = IdempotencyMemory(retention_ms)
    for n, command_id in enumerate(command_ids):
        memory.remember(command_id, at + n, entry(command_id).encode())
    return memory


def test_a_remembered_command_comes_back_whole() -> None:
    memory = memory_with("c-1")

    assert memory.get("c-1") == entry("c-1")
    assert memory.get("c-2") is None


def test_a_thousand_other_commands_do_not_push_one_out() -> None:
    memory = memory_with("inv-42")
    for n in range(1_000):
        memory.remember(f"other-{n}", T0 + 1 + n, entry(f"other-{n}").encode())

    assert memory.expire(T0 + 2_000) == []
    assert memory.get("inv-42") == entry("inv-42")


def test_an_entry_expires_once_its_retention_has_passed_not_before() -> None:
    memory = memory_with("c-1", "c-2", retention_ms=HOUR_MS)  # remembered at T0 and T0 + 1

    assert memory.expire(T0 + HOUR_MS - 1) == []
    assert memory.expire(T0 + HOUR_MS) == ["c-1"]
    assert memory.get("c-1") is None and memory.get("c-2") is not None


def test_expiring_a_backlog_is_spread_over_batches() -> None:
    memory = memory_with(*(f"c-{n}" for n in range(EXPIRE_PER_BATCH + 3)), retention_ms=HOUR_MS)

    first = memory.expire(T0 + 2 * HOUR_MS)
    second = memory.expire(T0 + 2 * HOUR_MS)

    assert len(first) == EXPIRE_PER_BATCH and len(second) == 3
    assert len(memory) == 0


def test_restoring_keeps_the_live_entries_and_buries_the_expired_ones() -> None:
    memory = IdempotencyMemory(HOUR_MS)
    now = T0 + HOUR_MS + 10

    memory.restore(record_key("old"), T0, entry("old").encode(), now)
    memory.restore(record_key("live"), T0 + 20, entry("live").encode(), now)
    memory.restore(record_key("gone"), T0 + 30, entry("gone").encode(), now)
    memory.restore(record_key("gone"), T0 + 31, None, now)  # its tombstone

    assert memory.get("live") == entry("live")
    assert memory.get("old") is None and memory.get("gone") is None
    assert memory.expire(now) == ["old"]  # tombstoned with the next batch


def test_entries_of_the_older_format_are_adopted_with_their_record_time() -> None:
    memory = IdempotencyMemory(HOUR_MS)

    memory.adopt([entry("c-1")], T0, now=T0 + 5)
    memory.adopt([entry("c-2")], T0 - HOUR_MS, now=T0 + 5)

    assert memory.get("c-1") == entry("c-1")
    assert memory.get("c-2") is None


def test_remembered_command_keys_are_told_apart_from_aggregate_ids() -> None:
    assert is_command_key(record_key("0b8f9a5e-6c2d-4c8e-9d57-1f6f3f0a4c11"))
    assert not is_command_key(b"0b8f9a5e-6c2d-4c8e-9d57-1f6f3f0a4c11")
    assert not is_command_key(None)


def test_a_command_of_a_newer_version_still_decodes() -> None:
    command = CommandEnvelope("c-1", "Deposit", "Account", "acc-1", {"amount": 1}, "t", "c", "c", idempotent=True)
    raw = command.encode()[:-1] + b',"added_later":true}'

    assert CommandEnvelope.decode(raw) == command


# --- The ids a key names -----------------------------------------------------------


def test_the_same_caller_key_and_resource_name_the_same_command() -> None:
    assert scoped_id("shop", "Deposit", "acc-1", "inv-42") == scoped_id("shop", "Deposit", "acc-1", "inv-42")


def test_two_callers_with_one_key_send_two_commands() -> None:
    assert scoped_id("shop", "Deposit", "acc-1", "inv-42") != scoped_id("billing", "Deposit", "acc-1", "inv-42")


def test_one_key_on_two_resources_or_two_kinds_names_two_commands() -> None:
    ids = {
        scoped_id("shop", "Deposit", "acc-1", "k"),
        scoped_id("shop", "Deposit", "acc-2", "k"),
        scoped_id("shop", "Withdraw", "acc-1", "k"),
    }

    assert len(ids) == 3


def test_without_a_key_every_id_is_new() -> None:
    assert scoped_id("shop", "Deposit", "acc-1", None) != scoped_id("shop", "Deposit", "acc-1", None)


def test_a_keyed_request_makes_an_idempotent_command_scoped_to_its_caller() -> None:
    shop, billing = CommandContext("shop", "k-1"), CommandContext("billing", "k-1")

    opened = shop.envelope(accounts.OpenAccount(owner="Ada", currency="EUR"), shop.new_id("account"))

    assert opened.idempotent
    assert shop.new_id("account") == opened.aggregate_id != billing.new_id("account")
    assert not CommandContext("shop").envelope(accounts.Deposit(amount=1), "acc-1").idempotent
