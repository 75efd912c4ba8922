"""A steady mixed load (open, deposit, withdraw, message) that records every answer it gets."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx

PROBLEM = "application/problem+json"


@dataclass
class Answer:
    kind: str
    status: int
    seconds: float
    command_id: str | None


@dataclass
class MixedLoad:
    client: httpx.AsyncClient
    accounts: list[str]
    conversations: list[tuple[str, str]]  # (conversation id, a participant who posts)
    answers: list[Answer] = field(default_factory=list)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    rng: random.Random = field(default_factory=lambda: random.Random(7))

    @property
    def acknowledged(self) -> set[str]:
        """Command ids the API acknowledged (2xx): each must be decided exactly once."""
        return {a.command_id for a in self.answers if 200 <= a.status < 300 and a.command_id}

    def statuses(self) -> Counter[int]:
        return Counter(a.status for a in self.answers)

    async def run(self, clients: int = 4) -> None:
        await asyncio.gather(*(self.client_loop() for _ in range(clients)))

    async def client_loop(self) -> None:
        while not self.stopping.is_set():
            await self.one()
            await asyncio.sleep(0.005)

    async def one(self) -> None:
        roll = self.rng.random()
        if roll < 0.05:
            kind, path, body = "open", "/accounts", {"owner": "Load", "currency": "EUR"}
        elif roll < 0.55:
            kind, path, body = "deposit", f"/accounts/{self.rng.choice(self.accounts)}/deposits", {
                "amount": self.rng.randint(1, 50)}
        elif roll < 0.85:
            kind, path, body = "withdraw", f"/accounts/{self.rng.choice(self.accounts)}/withdrawals", {
                "amount": self.rng.randint(1, 60)}
        else:
            conversation_id, sender = self.rng.choice(self.conversations)
            kind, path, body = "message", f"/conversations/{conversation_id}/messages", {
                "sender": sender, "body": "under load"}
        started = time.monotonic()
        try:
            response = await self.client.post(path, json=body)
        except httpx.HTTPError as error:  # the in-process API never drops a request; a failure is a bug
            raise AssertionError(f"{kind}: no answer: {error!r}") from error
        seconds = time.monotonic() - started
        command_id = None
        if response.headers.get("content-type", "").startswith(("application/json", PROBLEM)):
            command_id = response.json().get("command_id")
        self.answers.append(Answer(kind, response.status_code, seconds, command_id))
        if response.status_code >= 500 and response.status_code != 503:
            raise AssertionError(f"{kind}: {response.status_code} {response.text}")
        if response.status_code == 201 and kind == "open":
            self.accounts.append(response.json()["aggregate_id"])
