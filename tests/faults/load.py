"""A steady mixed load (open, deposit, withdraw, message) from clients that retry the way the README says.

Some operations chain, as a new user writes them: a conversation started for an account just
opened, then messages posted to it, each at once and without a consistency token.

Each logical operation gets its own Idempotency-Key and is sent until it gets a
definitive answer: a 503, a dropped connection or a 202 (stored, not decided
yet) is resent with the same key after a backoff. So the invariants can be
checked per operation against the events in the log: at most one effect for
every key, exactly one for every key that was answered with success.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import httpx

from app.api.submission import ANONYMOUS, scoped_id

PROBLEM = "application/problem+json"
GIVE_UP_S = 60.0  # an operation still without a definitive answer after this is left ambiguous
BACKOFF_S, MAX_BACKOFF_S = 0.05, 1.0


@dataclass
class Answer:
    kind: str
    status: int  # 0: no answer at all (the connection failed)
    seconds: float
    command_id: str | None
    at: float = field(default_factory=time.monotonic)  # when the answer came


@dataclass
class Operation:
    """One logical command and every answer its sends got."""

    kind: str
    key: str
    command_type: str
    aggregate_id: str
    path: str
    body: dict[str, object]
    statuses: list[int] = field(default_factory=list)
    decided: bool = False  # a definitive answer came: success, or a refusal

    @property
    def command_id(self) -> str:
        """The id the key names: the same for every send, so a resend is the same command."""
        return scoped_id(ANONYMOUS, self.command_type, self.aggregate_id, self.key)

    @property
    def succeeded(self) -> bool:
        return self.decided and self.statuses[-1] in (200, 201, 202)

    @property
    def refused(self) -> bool:
        return self.decided and 400 <= self.statuses[-1] < 500

    @property
    def acknowledged(self) -> bool:
        """Some answer said the command was stored (2xx): it must be decided, exactly once."""
        return any(200 <= s < 300 for s in self.statuses)


@dataclass
class MixedLoad:
    client: httpx.AsyncClient
    accounts: list[str]
    conversations: list[tuple[str, str]]  # (conversation id, a participant who posts)
    answers: list[Answer] = field(default_factory=list)
    operations: list[Operation] = field(default_factory=list)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    # Other API processes: after a dropped connection the next send goes to the next one.
    fallbacks: list[httpx.AsyncClient] = field(default_factory=list)
    spread: bool = False  # each client starts at its own API (by turns) rather than all at the first
    funded: list[str] = field(default_factory=list)  # the seeded accounts, which can pay for messages

    def __post_init__(self) -> None:
        self.funded = self.funded or list(self.accounts)

    @property
    def acknowledged(self) -> set[str]:
        """Command ids the API acknowledged (2xx): each must be decided exactly once."""
        return {op.command_id for op in self.operations if op.acknowledged}

    def statuses(self) -> Counter[int]:
        return Counter(a.status for a in self.answers)

    def retries(self) -> int:
        return sum(len(op.statuses) - 1 for op in self.operations)

    async def run(self, clients: int = 4) -> None:
        await asyncio.gather(*(self.client_loop(n if self.spread else 0) for n in range(clients)))

    async def client_loop(self, home: int) -> None:
        while not self.stopping.is_set():
            await self.complete(self.next_operation(), home)
            await asyncio.sleep(0.005)

    def next_operation(self) -> Operation:
        roll, key = self.rng.random(), f"load-{uuid.uuid4()}"
        if roll < 0.05:
            account_id = scoped_id(ANONYMOUS, "account", "", key)
            return Operation("open", key, "OpenAccount", account_id, "/accounts", {"owner": "Load", "currency": "EUR"})
        if roll < 0.08 and len(self.accounts) > len(self.funded):
            # A chain, as a new user writes it: a conversation for the account just opened, at once
            # and without a token; messages are posted to it at once too (see `send`).
            newest, payer = self.accounts[-1], self.rng.choice(self.funded)
            conversation_id = scoped_id(ANONYMOUS, "conversation", "", key)
            return Operation(
                "start", key, "StartConversation", conversation_id, "/conversations", {"participants": [newest, payer]}
            )
        if roll < 0.55:
            account_id = self.rng.choice(self.accounts)
            return Operation(
                "deposit",
                key,
                "Deposit",
                account_id,
                f"/accounts/{account_id}/deposits",
                {"amount": self.rng.randint(1, 50)},
            )
        if roll < 0.85:
            account_id = self.rng.choice(self.accounts)
            return Operation(
                "withdraw",
                key,
                "Withdraw",
                account_id,
                f"/accounts/{account_id}/withdrawals",
                {"amount": self.rng.randint(1, 60)},
            )
        conversation_id, sender = self.rng.choice(self.conversations)
        return Operation(
            "message",
            key,
            "SubmitMessage",
            scoped_id(ANONYMOUS, "message", "", key),
            f"/conversations/{conversation_id}/messages",
            {"sender": sender, "body": "under load"},
        )

    async def complete(self, op: Operation, home: int = 0) -> None:
        """Send until a definitive answer, backing off between sends, as a well-behaved client does."""
        self.operations.append(op)
        deadline = time.monotonic() + GIVE_UP_S
        backoff = BACKOFF_S
        while not await self.send(op, home) and time.monotonic() < deadline:
            await asyncio.sleep(backoff * (0.5 + self.rng.random()))
            backoff = min(backoff * 2, MAX_BACKOFF_S)

    async def send(self, op: Operation, home: int = 0) -> bool:
        """One send; True when its answer is definitive."""
        started = time.monotonic()
        client = self.client_for(op, home)
        try:
            response = await client.post(op.path, json=op.body, headers={"Idempotency-Key": op.key})
        except httpx.TransportError:
            self.answers.append(Answer(op.kind, 0, time.monotonic() - started, None))
            op.statuses.append(0)
            return False
        seconds = time.monotonic() - started
        body = (
            response.json()
            if response.headers.get("content-type", "").startswith(("application/json", PROBLEM))
            else {}
        )
        command_id = body.get("command_id")
        self.answers.append(Answer(op.kind, response.status_code, seconds, command_id))
        op.statuses.append(response.status_code)
        if response.status_code >= 500 and response.status_code != 503:
            raise AssertionError(f"{op.kind}: {response.status_code} {response.text}")
        if command_id is not None and command_id != op.command_id:
            raise AssertionError(f"{op.kind}: answered for command {command_id}, sent {op.command_id}")
        op.decided = self.definitive(op, response.status_code, body)
        if op.decided and op.kind == "open" and response.status_code == 201:
            self.accounts.append(op.aggregate_id)
        if op.decided and op.kind == "start" and response.status_code == 201:
            participants = op.body["participants"]
            assert isinstance(participants, list)
            self.conversations.append((op.aggregate_id, str(participants[1])))  # the funded one posts
        return op.decided

    def client_for(self, op: Operation, home: int) -> httpx.AsyncClient:
        """The client's own API, or after each dropped connection of this operation the next one."""
        clients = [self.client, *self.fallbacks]
        return clients[(home + op.statuses.count(0)) % len(clients)]

    def longest_stall(self, since: float, until: float) -> float:
        """The longest stretch within [since, until] in which no send got a success (2xx)."""
        marks = sorted(a.at for a in self.answers if 200 <= a.status < 300 and since < a.at < until)
        return max(b - a for a, b in itertools.pairwise([since, *marks, until]))

    @staticmethod
    def definitive(op: Operation, status: int, body: dict[str, object]) -> bool:
        if status == 503:
            return False
        if status == 202:
            # A message is always 202; it was decided when its answer carries the events' position.
            return op.kind == "message" and bool(body.get("position"))
        return True
