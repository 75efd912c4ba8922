"""How one command meets one aggregate, written as given (earlier commands) / when (command) / then (decision).

Pure: no Kafka, no clock, no random ids; event ids come from an injected counter.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from app.domain.accounts import AccountOpened, FundsDeposited
from app.domain.registry import ACCOUNT
from app.eventstore.decision import Aggregate, Decision, decide_command
from app.eventstore.envelope import AggregateRecord, CommandEnvelope, CommandResult, RememberedCommand

NOW = "2026-11-25T12:00:00.123456Z"
ACCOUNT_ID = "acc-1"


def event_ids(prefix: str = "evt") -> Callable[[], str]:
    """A deterministic stand-in for uuid4: evt-1, evt-2, ..."""
    counter = 0

    def next_id() -> str:
        nonlocal counter
        counter += 1
        return f"{prefix}-{counter}"

    return next_id


def command(
    type_: str,
    data: dict[str, Any] | None = None,
    *,
    command_id: str,
    aggregate_id: str = ACCOUNT_ID,
    aggregate_type: str = "Account",
    expected_version: int | None = None,
    fingerprint: str | None = None,
    keyed: bool = True,
) -> CommandEnvelope:
    return CommandEnvelope(
        command_id=command_id,
        type=type_,
        aggregate_type=aggregate_type,
        aggregate_id=aggregate_id,
        data=data or {},
        issued_at=NOW,
        correlation_id=f"corr-{command_id}",
        causation_id=f"cause-{command_id}",
        expected_version=expected_version,
        fingerprint=fingerprint if fingerprint is not None else f"fp-{command_id}",
        idempotent=keyed,
    )


def open_account(command_id: str = "c-open", **kwargs: Any) -> CommandEnvelope:
    return command("OpenAccount", {"owner": "Ada Lovelace", "currency": "EUR"}, command_id=command_id, **kwargs)


def deposit(amount: int, command_id: str, **kwargs: Any) -> CommandEnvelope:
    return command("Deposit", {"amount": amount}, command_id=command_id, **kwargs)


def withdraw(amount: int, command_id: str, **kwargs: Any) -> CommandEnvelope:
    return command("Withdraw", {"amount": amount}, command_id=command_id, **kwargs)


def decide(
    aggregate: Aggregate | None,
    cmd: CommandEnvelope,
    *,
    new_event_id: Callable[[], str] | None = None,
    remembered: RememberedCommand | None = None,
) -> Decision:
    return decide_command(aggregate, cmd, now=NOW, new_event_id=new_event_id or event_ids(), remembered=remembered)


@dataclass
class Partition:
    """The writer in miniature: one aggregate, the commands it remembers, moved forward after each decision."""

    aggregate: Aggregate | None = None
    memory: dict[str, RememberedCommand] = field(default_factory=dict)
    new_event_id: Callable[[], str] = field(default_factory=lambda: event_ids("given"))

    def decide(self, cmd: CommandEnvelope) -> Decision:
        return decide(self.aggregate, cmd, new_event_id=self.new_event_id, remembered=self.memory.get(cmd.command_id))

    def apply(self, cmd: CommandEnvelope) -> Decision:
        decision = self.decide(cmd)
        if decision.aggregate is not None:
            self.aggregate = decision.aggregate
        if decision.to_remember:
            self.memory[cmd.command_id] = decision.remembered(decision.result)
        return decision


def given(*commands: CommandEnvelope) -> Partition:
    """The partition after the commands, each decided and remembered as the writer does it."""
    partition = Partition()
    for cmd in commands:
        partition.apply(cmd)
    return partition


def existing(*commands: CommandEnvelope) -> Aggregate:
    aggregate = given(*commands).aggregate
    assert aggregate is not None
    return aggregate


# --- Accepted commands ----------------------------------------------------------


def test_opening_an_account_produces_a_version_1_event_with_its_envelope_filled() -> None:
    decision = decide(None, open_account("c-open"), new_event_id=event_ids())

    assert len(decision.events) == 1
    event = decision.events[0]
    assert event.event_id == "evt-1"
    assert event.type == "AccountOpened"
    assert event.schema_version == 1
    assert event.aggregate_type == "Account"
    assert event.aggregate_id == ACCOUNT_ID
    assert event.version == 1
    assert event.occurred_at == NOW
    assert event.command_id == "c-open"
    assert event.causation_id == "c-open"
    assert event.correlation_id == "corr-c-open"
    assert event.data == {"owner": "Ada Lovelace", "currency": "EUR", "holder": None}  # opened by a service
    assert "type" not in event.data


def test_an_accepted_command_succeeds_with_the_new_version_and_its_event_ids() -> None:
    decision = decide(None, open_account("c-open"), new_event_id=event_ids())

    assert decision.result == CommandResult(
        command_id="c-open",
        aggregate_id=ACCOUNT_ID,
        outcome="succeeded",
        version=1,
        event_ids=["evt-1"],
        decided_at=NOW,
    )
    assert decision.result.position == {}
    assert decision.result.error is None
    assert decision.result.replayed is False


def test_event_data_rebuilds_the_domain_event_it_came_from() -> None:
    decision = decide(None, open_account())
    event = decision.events[0]

    assert ACCOUNT.events[event.type].model_validate(event.data) == AccountOpened(owner="Ada Lovelace", currency="EUR")


def test_the_aggregate_after_an_accepted_command_holds_the_evolved_state() -> None:
    decision = decide(None, open_account())

    assert decision.aggregate is not None
    assert decision.aggregate.kind is ACCOUNT
    assert decision.aggregate.aggregate_id == ACCOUNT_ID
    assert decision.aggregate.version == 1
    assert decision.aggregate.state.owner == "Ada Lovelace"
    assert decision.aggregate.state.balance == 0


def test_versions_keep_counting_across_commands() -> None:
    aggregate = existing(open_account(), deposit(10, "c-1"))

    decision = decide(aggregate, deposit(5, "c-2"), new_event_id=event_ids("next"))

    assert aggregate.version == 2
    assert [e.version for e in decision.events] == [3]
    assert decision.events[0].event_id == "next-1"
    assert decision.events[0].data == {"amount": 5, "reference": None, "balance_after": 15}
    assert decision.result.version == 3
    assert decision.aggregate is not None and decision.aggregate.version == 3
    assert decision.aggregate.state.balance == 15


def test_deciding_does_not_change_the_aggregate_it_was_given() -> None:
    aggregate = existing(open_account(), deposit(10, "c-1"))

    decide(aggregate, deposit(5, "c-2"))

    assert aggregate.version == 2
    assert aggregate.state.balance == 10


def test_a_declined_charge_is_an_accepted_event_not_a_rejection() -> None:
    aggregate = existing(open_account(), deposit(5, "c-1"))

    decision = decide(aggregate, command("Charge", {"amount": 50, "reference": "order-1"}, command_id="c-2"))

    assert decision.result.outcome == "succeeded"
    assert [e.type for e in decision.events] == ["ChargeDeclined"]
    assert decision.events[0].version == 3


def test_a_matching_expected_version_is_accepted() -> None:
    opened = decide(None, open_account(expected_version=0))
    assert opened.result.outcome == "succeeded"

    aggregate = existing(open_account())
    deposited = decide(aggregate, deposit(1, "c-1", expected_version=1))

    assert deposited.result.outcome == "succeeded"
    assert deposited.result.version == 2


# --- Rejected commands ------------------------------------------------------------


def test_an_expected_version_that_does_not_match_is_rejected_as_version_mismatch() -> None:
    aggregate = existing(open_account(), deposit(10, "c-1"))

    decision = decide(aggregate, deposit(5, "c-2", expected_version=1))

    assert decision.events == []
    assert decision.result.outcome == "rejected"
    assert decision.result.version == 2
    assert decision.result.event_ids == []
    error = decision.result.error
    assert error is not None
    assert error["code"] == "version-mismatch"
    assert error["title"] == "Version mismatch"
    assert error["expected"] == 1
    assert error["actual"] == 2
    assert decision.aggregate is None  # nothing about the aggregate changed


def test_an_expected_version_on_an_aggregate_that_does_not_exist_yet_is_compared_with_zero() -> None:
    decision = decide(None, open_account(expected_version=3))

    assert decision.result.outcome == "rejected"
    assert decision.result.error is not None
    assert decision.result.error["code"] == "version-mismatch"
    assert (decision.result.error["expected"], decision.result.error["actual"]) == (3, 0)
    assert decision.aggregate is None


def test_a_domain_refusal_is_rejected_with_its_code_and_extras_and_keeps_the_aggregate() -> None:
    aggregate = existing(open_account(), deposit(10, "c-1"))

    decision = decide(aggregate, withdraw(25, "c-2"))

    assert decision.events == []
    assert decision.result.outcome == "rejected"
    assert decision.result.version == 2
    error = decision.result.error
    assert error is not None
    assert error["code"] == "insufficient-funds"
    assert error["title"] == "Insufficient funds"
    assert error["balance"] == 10
    assert error["requested"] == 25
    assert "detail" in error
    assert decision.aggregate is None
    assert decision.to_remember  # a keyed refusal is remembered, like a success


def test_a_remembered_refusal_is_answered_again_even_when_it_would_now_succeed() -> None:
    partition = given(open_account(), deposit(10, "c-1"), withdraw(25, "c-2"), deposit(100, "c-3"))

    retry = partition.decide(withdraw(25, "c-2"))

    assert retry.events == []
    assert retry.result.outcome == "rejected"
    assert retry.result.replayed is True
    assert retry.result.error is not None and retry.result.error["code"] == "insufficient-funds"


def test_opening_an_existing_account_is_rejected_as_already_exists() -> None:
    aggregate = existing(open_account())

    decision = decide(aggregate, open_account("c-again"))

    assert decision.result.error is not None
    assert decision.result.error["code"] == "already-exists"
    assert decision.result.error["aggregate_type"] == "Account"
    assert decision.aggregate is None


def test_a_command_to_an_unknown_aggregate_is_rejected_as_not_found_without_an_aggregate() -> None:
    decision = decide(None, deposit(10, "c-1"))

    assert decision.events == []
    assert decision.result.outcome == "rejected"
    assert decision.result.version == 0
    assert decision.result.error is not None
    assert decision.result.error["code"] == "not-found"
    assert decision.result.error["aggregate_type"] == "Account"
    assert decision.aggregate is None
    assert decision.to_remember  # remembered without an aggregate: a retry gets the same 404


def test_an_unknown_command_type_is_rejected_as_unknown_command() -> None:
    aggregate = existing(open_account())

    decision = decide(aggregate, command("Transfer", {"amount": 1}, command_id="c-1"))

    assert decision.events == []
    assert decision.result.error is not None
    assert decision.result.error["code"] == "unknown-command"
    assert "Transfer" in decision.result.error["detail"]
    assert decision.aggregate is None


def test_an_unknown_command_type_for_a_new_aggregate_is_rejected_without_an_aggregate() -> None:
    decision = decide(None, command("Transfer", {"amount": 1}, command_id="c-1"))

    assert decision.result.error is not None
    assert decision.result.error["code"] == "unknown-command"
    assert decision.aggregate is None


def test_invalid_command_data_is_rejected_as_invalid_command() -> None:
    aggregate = existing(open_account())

    for data in ({"amount": -1}, {"amount": "10"}, {}, {"amount": 1, "amount_cents": 1}):
        decision = decide(aggregate, command("Deposit", data, command_id="c-1"))

        assert decision.events == [], data
        assert decision.result.outcome == "rejected", data
        assert decision.result.error is not None
        assert decision.result.error["code"] == "invalid-command", data
        assert decision.aggregate is None


def test_data_naming_another_command_type_is_rejected_as_invalid() -> None:
    aggregate = existing(open_account(), deposit(10, "c-1"))

    decision = decide(aggregate, command("Deposit", {"type": "Withdraw", "amount": 5}, command_id="c-2"))

    assert decision.result.error is not None
    assert decision.result.error["code"] == "invalid-command"


def test_an_unknown_aggregate_type_is_rejected_without_an_aggregate() -> None:
    aggregate = existing(open_account())

    decision = decide(aggregate, deposit(1, "c-1", aggregate_type="Ledger"))

    assert decision.events == []
    assert decision.result.outcome == "rejected"
    assert decision.result.version == 0
    assert decision.result.error is not None
    assert decision.result.error["code"] == "unknown-aggregate-type"
    assert "Ledger" in decision.result.error["detail"]
    assert decision.aggregate is None


# --- Idempotency ----------------------------------------------------------------


def test_a_repeated_command_gets_its_remembered_result_replayed() -> None:
    first = decide(existing(open_account()), deposit(10, "c-1"))
    partition = given(open_account(), deposit(10, "c-1"))
    partition.new_event_id = event_ids("never")

    repeat = partition.decide(deposit(10, "c-1"))

    assert repeat.events == []
    assert repeat.aggregate is None
    assert not repeat.to_remember
    assert repeat.result.replayed is True
    assert replace(repeat.result, replayed=False, event_ids=[]) == replace(first.result, event_ids=[])
    assert repeat.result.outcome == "succeeded"
    assert repeat.result.version == 2


def test_a_retry_after_any_number_of_other_commands_is_still_replayed() -> None:
    """No window counted in commands: rejected ones in between (a stale If-Match) change nothing either."""
    partition = given(open_account(), deposit(42, "inv-42"))
    for n in range(100):
        partition.apply(deposit(1, f"other-{n}"))
        partition.apply(deposit(1, f"stale-{n}", expected_version=1))

    retry = partition.apply(deposit(42, "inv-42"))

    assert retry.result.replayed is True
    assert retry.events == []
    assert retry.result.version == 2
    assert partition.aggregate is not None and partition.aggregate.state.balance == 42 + 100


def test_a_command_sent_without_a_key_is_not_remembered() -> None:
    partition = given(open_account(), deposit(10, "c-1", keyed=False))

    again = partition.apply(deposit(10, "c-1", keyed=False))

    assert "c-1" not in partition.memory
    assert again.result.replayed is False
    assert again.result.version == 3  # a resend without a key is a new command


def test_a_repeat_is_replayed_before_its_stale_expected_version_is_checked() -> None:
    partition = given(open_account(), deposit(10, "c-1", expected_version=1), deposit(5, "c-2"))

    repeat = partition.decide(deposit(10, "c-1", expected_version=1))

    assert repeat.result.outcome == "succeeded"
    assert repeat.result.replayed is True
    assert repeat.result.version == 2


def test_a_reused_command_id_with_another_fingerprint_is_rejected() -> None:
    partition = given(open_account(), deposit(10, "c-1", fingerprint="fp-ten"))

    decision = partition.decide(deposit(99, "c-1", fingerprint="fp-ninety-nine"))

    assert decision.events == []
    assert decision.aggregate is None
    assert decision.result.outcome == "rejected"
    assert decision.result.replayed is False
    assert decision.result.version == 2
    assert decision.result.error is not None
    assert decision.result.error["code"] == "idempotency-key-reused"


def test_a_reused_key_does_not_replace_what_is_remembered() -> None:
    partition = given(open_account(), deposit(10, "c-1", fingerprint="fp-ten"))
    partition.apply(deposit(99, "c-1", fingerprint="fp-ninety-nine"))

    retry = partition.decide(deposit(10, "c-1", fingerprint="fp-ten"))

    assert retry.result.replayed is True and retry.result.outcome == "succeeded"


def test_a_remembered_command_stores_its_fingerprint_and_provisional_result() -> None:
    decision = decide(existing(open_account()), deposit(10, "c-1", fingerprint="fp-x"))

    assert decision.to_remember
    assert decision.remembered(decision.result) == RememberedCommand("c-1", "fp-x", decision.result)
    assert decision.result.position == {}  # the writer fills it in once the events have offsets


def test_a_replay_carries_the_position_it_was_remembered_with() -> None:
    partition = given(open_account("c-0"))
    decision = partition.apply(deposit(1, "c-1"))
    final = replace(decision.result, position={"3": 1041})
    partition.memory["c-1"] = decision.remembered(final)

    repeat = partition.decide(deposit(1, "c-1"))

    assert repeat.result == replace(final, replayed=True)


# --- Records ------------------------------------------------------------------


def test_an_aggregate_round_trips_through_its_record() -> None:
    aggregate = existing(
        open_account("c-0"),
        deposit(100, "c-1"),
        command("Charge", {"amount": 30, "reference": "o-1"}, command_id="c-2"),
        withdraw(500, "c-3"),
    )

    record = aggregate.to_record()

    assert record.aggregate_type == "Account"
    assert record.aggregate_id == ACCOUNT_ID
    assert record.version == 3
    assert record.state == ACCOUNT.snapshot(aggregate.state)
    assert record.recent == ()
    assert Aggregate.from_record(record) == aggregate


def test_an_aggregate_round_trips_through_an_encoded_record() -> None:
    aggregate = existing(open_account("c-0"), deposit(100, "c-1"), withdraw(500, "c-2"))

    restored = Aggregate.from_record(AggregateRecord.decode(aggregate.to_record().encode()))

    assert restored == aggregate
    assert restored.kind is ACCOUNT


def test_a_record_of_the_older_format_keeps_its_remembered_commands() -> None:
    result = CommandResult("c-1", ACCOUNT_ID, "succeeded", 2, position={"3": 9})
    old = existing(open_account("c-0"), deposit(100, "c-1")).to_record()
    raw = old.encode().replace(b'"recent":[]', b'"recent":[["c-1","fp-c-1",' + result.encode() + b"]]")

    record = AggregateRecord.decode(raw)

    assert record.recent == (RememberedCommand("c-1", "fp-c-1", result),)
    assert Aggregate.from_record(record) == Aggregate.from_record(old)


def test_a_restored_aggregate_decides_like_the_original() -> None:
    aggregate = existing(open_account("c-0"), deposit(100, "c-1"))
    restored = Aggregate.from_record(AggregateRecord.decode(aggregate.to_record().encode()))

    assert decide(restored, withdraw(40, "c-2")) == decide(aggregate, withdraw(40, "c-2"))


def test_an_aggregate_without_state_round_trips() -> None:
    aggregate = Aggregate(ACCOUNT, ACCOUNT_ID, 0, None)

    record = aggregate.to_record()

    assert record.state is None
    assert Aggregate.from_record(AggregateRecord.decode(record.encode())) == aggregate


def test_the_event_payload_matches_the_domain_event_fields() -> None:
    aggregate = existing(open_account(), deposit(10, "c-1"))

    decision = decide(aggregate, deposit(5, "c-2"))

    expected = FundsDeposited(amount=5, balance_after=15).model_dump(mode="json", exclude={"type"})
    assert decision.events[0].data == expected


def test_every_event_carries_the_principal_of_the_command_it_was_decided_from() -> None:
    """The audit trail: who asked is on the command (set by the edge) and copied onto its events."""
    opened = decide(None, replace(open_account(), principal="billing"))
    deposited = decide(opened.aggregate, replace(deposit(5, "c-5"), principal="saga"))

    assert [e.principal for e in opened.events] == ["billing"]
    assert [e.principal for e in deposited.events] == ["saga"]
