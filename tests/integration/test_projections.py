"""The read side against the real broker and database: exactly-once, read-your-writes, lag, poison."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from functools import partial

import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.config import Settings
from app.db import create_engine
from app.eventstore.processor import run_processor
from app.main import create_app
from projections import failures
from projections.accounts import PROJECTION as ACCOUNTS
from projections.base import Message, Projection
from projections.projector import run_projector
from projections.registry import PROJECTIONS
from projections.runner import Member, ProjectionRunner, RunnerOptions
from projections.tables import accounts, checkpoints, ledger
from tests.support import Process, api_client, fresh_namespace, read_events, write_foreign_record
from tests.waiting import eventually

BALANCE_KINDS = {"FundsDeposited": 1, "FundsWithdrawn": -1, "AccountCharged": -1, "ChargeRefunded": 1}


@pytest.fixture
async def ns(settings: Settings) -> Settings:
    return await fresh_namespace(settings, own_database=True, consistency_timeout_s=10)


async def open_funded(client: httpx.AsyncClient, amount: int = 1000) -> tuple[str, str]:
    opened = await client.post("/accounts", json={"owner": "Reader", "currency": "EUR"})
    account_id = opened.json()["aggregate_id"]
    deposited = await client.post(f"/accounts/{account_id}/deposits", json={"amount": amount})
    assert deposited.status_code == 200, deposited.text
    return account_id, deposited.json()["position"]


async def lag_of(client: httpx.AsyncClient, name: str) -> int | None:
    views = {view["name"]: view for view in (await client.get("/projections")).json()}
    lag: int | None = views[name]["lag"]
    return lag


async def read_models_match_the_events(ns: Settings) -> None:
    """Every balance equals the sum of its account's events; one ledger row per money event."""
    events = await read_events(ns)
    balances: dict[str, int] = defaultdict(int)
    movements: dict[str, int] = defaultdict(int)
    for event in events:
        if event.type in BALANCE_KINDS:
            balances[event.aggregate_id] += BALANCE_KINDS[event.type] * event.data["amount"]
            movements[event.aggregate_id] += 1
    engine = create_engine(ns)
    try:
        async with engine.connect() as connection:
            rows = {r.account_id: r.balance for r in await connection.execute(select(accounts))}
            counts: dict[str, int] = dict(
                (
                    await connection.execute(select(ledger.c.account_id, func.count()).group_by(ledger.c.account_id))
                ).all()
            )
            duplicates = await connection.scalar(
                text(
                    "SELECT count(*) FROM (SELECT account_id, version FROM account_ledger "
                    "GROUP BY 1, 2 HAVING count(*) > 1) d"
                )
            )
    finally:
        await engine.dispose()
    opened = {e.aggregate_id for e in events if e.type == "AccountOpened"}
    assert set(rows) == opened
    assert rows == {account_id: balances.get(account_id, 0) for account_id in opened}
    assert counts == dict(movements)
    assert duplicates == 0


async def test_read_your_writes_a_hundred_times_in_a_row(ns: Settings) -> None:
    async with api_client(ns, workers={"processor": run_processor, "projector": run_projector}) as client:
        account_id, _ = await open_funded(client, 10)
        for n in range(100):
            written = await client.post(f"/accounts/{account_id}/deposits", json={"amount": 1})
            read = await client.get(
                f"/accounts/{account_id}", headers={"X-Consistent-With": written.json()["position"]}
            )
            assert read.status_code == 200
            assert (read.json()["balance"], read.json()["version"]) == (11 + n, written.json()["version"])
            assert read.headers["etag"] == f'"{written.json()["version"]}"'


async def test_queries_without_a_token_answer_at_once_and_with_an_unreached_one_say_503(ns: Settings) -> None:
    async with api_client(
        ns.model_copy(update={"consistency_timeout_s": 0.5}), workers={"processor": run_processor}
    ) as client:
        account_id, token = await open_funded(client)
        missing = await client.get(f"/accounts/{account_id}")  # no projector runs here
        waited = await client.get(f"/accounts/{account_id}", headers={"X-Consistent-With": token})
    assert missing.status_code == 404
    assert waited.status_code == 503 and waited.headers["retry-after"] == "1"
    assert waited.headers["content-type"] == "application/problem+json"


async def test_requests_waiting_for_a_projection_hold_no_database_connection(ns: Settings) -> None:
    # Two connections in all, a dozen requests waiting for a projection that never comes (no projector).
    tight = ns.model_copy(update={"consistency_timeout_s": 2.0, "database_pool_size": 1})
    async with api_client(tight, workers={"processor": run_processor}) as client:
        account_id, token = await open_funded(client)
        waiting = [
            asyncio.create_task(client.get(f"/accounts/{account_id}", headers={"X-Consistent-With": token}))
            for _ in range(12)
        ]
        await asyncio.sleep(0.5)
        plain = await client.get(f"/accounts/{account_id}")
        assert plain.status_code == 404  # answered while the others wait, from a free connection
        assert not any(task.done() for task in waiting)
        waited = await asyncio.gather(*waiting)
    assert {answer.status_code for answer in waited} == {503}
    assert {answer.json()["type"].rsplit("/", 1)[-1] for answer in waited} == {"not-yet-consistent"}


async def test_an_exhausted_connection_pool_is_a_503_not_a_500(ns: Settings) -> None:
    app = create_app(ns.model_copy(update={"database_pool_size": 1}))
    async with app.router.lifespan_context(app):
        engine = app.state.eventline.clients.engine
        held = [await engine.connect(), await engine.connect()]  # the whole pool
        try:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://eventline") as client:
                answer = await client.get(f"/accounts/{uuid.uuid4()}")
        finally:
            for connection in held:
                await connection.close()
    assert answer.status_code == 503, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers["retry-after"] == "1"


async def test_the_api_queries_on_sessions_that_cannot_write_and_keep_their_connections(ns: Settings) -> None:
    """app/db.py::create_query_engine: no write reaches the read models through the API, a query
    is a statement of its own (no BEGIN and ROLLBACK around it), and a burst of reads leaves
    every connection it opened in the pool."""
    app = create_app(ns.model_copy(update={"database_pool_size": 2}))
    async with app.router.lifespan_context(app):
        engine = app.state.eventline.clients.engine
        async with engine.connect() as connection:
            with pytest.raises(DBAPIError, match="read-only transaction"):
                await connection.execute(text("CREATE TABLE written_by_a_query (id int)"))
        async with engine.connect() as connection:
            # Inside a transaction, now() is the transaction's start: the same for both statements.
            first = await connection.scalar(text("SELECT now()"))
            await connection.execute(text("SELECT pg_sleep(0.01)"))
            assert await connection.scalar(text("SELECT now()")) > first
        burst = [await engine.connect() for _ in range(4)]
        for connection in burst:
            await connection.close()
        assert engine.pool.checkedin() == 4


async def test_ledger_pages_newest_first_and_events_page_by_version(ns: Settings) -> None:
    async with api_client(ns, workers={"processor": run_processor, "projector": run_projector}) as client:
        account_id, _ = await open_funded(client, 100)
        for amount in (1, 2, 3, 4):
            last = await client.post(f"/accounts/{account_id}/withdrawals", json={"amount": amount})
        token = {"X-Consistent-With": last.json()["position"]}
        first = (await client.get(f"/accounts/{account_id}/transactions?limit=3", headers=token)).json()
        second = (
            await client.get(
                f"/accounts/{account_id}/transactions?limit=3&cursor={first['next_cursor']}", headers=token
            )
        ).json()
        assert [t["version"] for t in first["items"] + second["items"]] == [6, 5, 4, 3, 2]
        assert second["next_cursor"] is None
        assert first["items"][0] == {**first["items"][0], "kind": "withdrawal", "amount": 4, "balance_after": 90}
        page = (await client.get(f"/events?aggregate_id={account_id}&limit=4", headers=token)).json()
        rest = (await client.get(f"/events?aggregate_id={account_id}&cursor={page['next_cursor']}")).json()
        assert [e["version"] for e in page["items"] + rest["items"]] == [1, 2, 3, 4, 5, 6]
        one = (await client.get(f"/events/{page['items'][0]['event_id']}")).json()
        assert one["type"] == "AccountOpened" and one["data"] == {"owner": "Reader", "currency": "EUR", "holder": None}
        command = (await client.get(f"/commands/{last.json()['command_id']}")).json()
        assert command["status"] == "succeeded" and command["version"] == 6
        assert (await client.get(f"/accounts/{uuid.uuid4()}/transactions")).status_code == 404
        assert (await client.get("/events?cursor=not-a-cursor")).status_code == 400


async def test_the_event_log_lists_every_event_where_the_log_holds_it(ns: Settings) -> None:
    """`/events` pages through the log in its own order, partition by partition and offset by offset:
    each row's position is its record's (a rebuild's COPY and the live insert build the same rows)."""
    async with api_client(ns, workers={"processor": run_processor, "projector": run_projector}) as client:
        for _ in range(6):  # accounts on several partitions, each with a few events
            account_id, _ = await open_funded(client, 10)
            last = await client.post(f"/accounts/{account_id}/withdrawals", json={"amount": 1})
        await eventually(lambda: lag_of(client, "event_log"), 0, timeout=30)
        listed: list[str] = []
        page = (await client.get("/events?limit=5", headers={"X-Consistent-With": last.json()["position"]})).json()
        while True:
            listed += [event["event_id"] for event in page["items"]]
            if page["next_cursor"] is None:
                break
            page = (await client.get(f"/events?limit=5&cursor={page['next_cursor']}")).json()
    in_the_log = [event.event_id for event in await read_events(ns)]  # partition, then offset order
    assert len(in_the_log) == 18 and listed == in_the_log


async def test_a_rejected_command_has_its_problem_in_its_status(ns: Settings) -> None:
    async with api_client(ns, workers={"processor": run_processor, "projector": run_projector}) as client:
        account_id, _ = await open_funded(client, 5)
        refused = await client.post(f"/accounts/{account_id}/withdrawals", json={"amount": 6})
        command_id = refused.json()["command_id"]

        async def status() -> str | None:
            response = await client.get(f"/commands/{command_id}")
            return response.json()["status"] if response.status_code == 200 else None

        await eventually(status, "rejected")
        problem = (await client.get(f"/commands/{command_id}")).json()["problem"]
        assert problem["code"] == "insufficient-funds" and problem["balance"] == 5


async def test_lag_shows_while_the_projector_is_stopped_and_clears_when_it_runs(ns: Settings) -> None:
    async with api_client(ns, workers={"processor": run_processor}) as client:
        projector = Process(ns, "projector").start()
        try:
            account_id, _ = await open_funded(client)
            await eventually(lambda: lag_of(client, "accounts"), 0)
            projector.stop()
            for _ in range(5):
                await client.post(f"/accounts/{account_id}/deposits", json={"amount": 1})
            lag = await lag_of(client, "accounts")
            assert lag is not None and lag >= 5
            projector = Process(ns, "projector").start()
            await eventually(lambda: lag_of(client, "accounts"), 0, timeout=60)
        finally:
            projector.stop()


async def test_partitions_no_runner_has_read_yet_count_in_the_lag(ns: Settings) -> None:
    # A runner checkpoints a partition when it is first assigned one; a group may give some to a
    # member that died before starting. Those partitions are unread, and the lag must say so.
    async with api_client(ns, workers={"processor": run_processor}) as client:
        for _ in range(6):
            await open_funded(client, 10)
        engine = create_engine(ns)
        only_partition_0 = RunnerOptions(group=False, slots=frozenset({("events", 0)}))
        accounts_only = [Member(ACCOUNTS, "accounts")]
        runner = asyncio.create_task(ProjectionRunner(ns, engine, accounts_only, only_partition_0).run())
        try:

            async def partition_0_lag() -> int | None:
                views = {view["name"]: view for view in (await client.get("/projections")).json()}
                lag: int | None = views["accounts"]["partitions"][0]["lag"]
                return lag

            await eventually(partition_0_lag, 0)
            views = {view["name"]: view for view in (await client.get("/projections")).json()}
        finally:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
            await engine.dispose()
    partitions = views["accounts"]["partitions"]
    assert [(p["topic"], p["partition"]) for p in partitions] == [("events", n) for n in range(ns.partitions)]
    unread = partitions[1:]
    assert all(p["next_offset"] == 0 and p["lag"] == p["end_offset"] for p in unread)
    assert views["accounts"]["lag"] == sum(p["end_offset"] for p in unread) > 0


async def test_killing_the_projector_mid_batch_applies_every_event_exactly_once(ns: Settings) -> None:
    async with api_client(ns, workers={"processor": run_processor}) as client:
        accounts_ids = [(await open_funded(client, 50))[0] for _ in range(8)]
        stop = asyncio.Event()

        async def load() -> None:
            n = 0
            while not stop.is_set():
                account_id = accounts_ids[n % len(accounts_ids)]
                kind = "deposits" if n % 3 else "withdrawals"
                await client.post(f"/accounts/{account_id}/{kind}", json={"amount": 1 + n % 7})
                n += 1

        loaders = [asyncio.create_task(load()) for _ in range(4)]
        engine = create_engine(ns)
        try:
            for round_ in range(4):
                projector = Process(ns, "projector").start()
                # Killed only once it has applied batches (a projector that never got its partitions
                # proves nothing), at a moment that moves from round to round: mid-batch, mid-commit.
                await eventually(partial(progressed, engine, await applied_offsets(engine)), True, timeout=60)
                await asyncio.sleep(0.05 * round_)
                projector.kill()
        finally:
            await engine.dispose()
        stop.set()
        await asyncio.gather(*loaders)
        projector = Process(ns, "projector").start()
        try:
            await eventually(lambda: lag_of(client, "accounts"), 0, timeout=60)
            await eventually(lambda: lag_of(client, "ledger"), 0, timeout=60)
        finally:
            projector.stop()
    await read_models_match_the_events(ns)


async def applied_offsets(engine: AsyncEngine) -> int:
    """How far the accounts projection stands, summed over its partitions."""
    async with engine.connect() as connection:
        total = await connection.scalar(
            select(func.coalesce(func.sum(checkpoints.c.next_offset), 0)).where(checkpoints.c.projection == "accounts")
        )
    return int(total or 0)


async def progressed(engine: AsyncEngine, before: int) -> bool:
    return await applied_offsets(engine) > before + 10


def poisoned(event_id: str, broken: dict[str, bool]) -> Projection:
    """The accounts projection, with a handler that raises for one event while `broken`."""

    async def apply(connection: AsyncConnection, messages: Sequence[Message]) -> None:
        if broken["value"] and any(m.event.event_id == event_id for m in messages):
            raise ValueError(f"cannot handle {event_id}")
        await ACCOUNTS.apply(connection, messages)

    return Projection(name="accounts", tables=ACCOUNTS.tables, apply=apply)


@contextlib.asynccontextmanager
async def projector_with(ns: Settings, *projections: Projection) -> AsyncIterator[None]:
    task = asyncio.create_task(run_projector(ns, projections))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.mark.parametrize("mode", ["skip", "halt"])
async def test_a_poison_event_is_recorded_then_skipped_or_halted_and_retried_after_the_fix(
    ns: Settings, mode: str
) -> None:
    ns = ns.model_copy(update={"projection_failure_mode": mode, "projection_retries": 1})
    async with api_client(ns, workers={"processor": run_processor}) as client:
        account_id, _ = await open_funded(client, 100)
        events = [e for e in await read_events(ns) if e.aggregate_id == account_id]
        poison = events[-1]  # the deposit
        broken = {"value": True}
        after = await client.post(f"/accounts/{account_id}/withdrawals", json={"amount": 30})
        async with projector_with(ns, poisoned(poison.event_id, broken)):
            engine = create_engine(ns)

            async def open_failures() -> int:
                return len(await failures.open_failures(engine, "accounts"))

            await eventually(open_failures, 1, timeout=30)
            account = await client.get(f"/accounts/{account_id}")
            views = {v["name"]: v for v in (await client.get("/projections")).json()}
            if mode == "skip":
                # Skipped the deposit, applied the withdrawal after it.
                assert account.json()["version"] == after.json()["version"]
                assert views["accounts"]["state"] == "running"
            else:
                assert account.json()["version"] == 1  # halted before the deposit
                assert views["accounts"]["state"] == "halted" and views["accounts"]["failures"] == 1
            broken["value"] = False  # the fix is deployed
            [failure] = await failures.open_failures(engine, "accounts")
            await failures.retry(engine, PROJECTIONS["accounts"], failure.failure_id)

            async def balance() -> int:
                return int((await client.get(f"/accounts/{account_id}")).json()["balance"])

            await eventually(balance, 70, timeout=30)
            assert await open_failures() == 0
            await engine.dispose()


async def test_junk_in_a_batch_that_also_holds_a_poison_event_is_recorded_too(ns: Settings) -> None:
    """The batch fails for the poison event and is applied one record at a time: the junk between it
    and the next event is recorded on the way (it is not one of the events the walk applies)."""
    ns = ns.model_copy(update={"projection_retries": 0})
    async with api_client(ns, workers={"processor": run_processor}) as client:
        account_id, _ = await open_funded(client, 100)
        poison = [e for e in await read_events(ns) if e.aggregate_id == account_id][-1]  # the deposit
        await write_foreign_record(ns, account_id, b"\xff not json")
        after = await client.post(f"/accounts/{account_id}/withdrawals", json={"amount": 30})
        engine = create_engine(ns)
        try:
            async with projector_with(ns, poisoned(poison.event_id, {"value": True})):

                async def version() -> int | None:
                    answer = await client.get(f"/accounts/{account_id}")
                    return int(answer.json()["version"]) if answer.status_code == 200 else None

                await eventually(version, after.json()["version"], timeout=30)  # past both
                recorded = [(f.event_id, f.attempts) for f in await failures.open_failures(engine, "accounts")]
                assert recorded == [(poison.event_id, 1), (None, 1)], recorded
        finally:
            await engine.dispose()


async def test_a_halted_projection_holds_back_no_other_projection_of_its_runner(ns: Settings) -> None:
    ns = ns.model_copy(update={"projection_failure_mode": "halt", "projection_retries": 0})
    async with api_client(ns, workers={"processor": run_processor}) as client:
        account_id, _ = await open_funded(client, 100)
        deposit = [e for e in await read_events(ns) if e.aggregate_id == account_id][-1]
        broken = {"value": True}
        await client.post(f"/accounts/{account_id}/withdrawals", json={"amount": 30})
        async with projector_with(ns, poisoned(deposit.event_id, broken), PROJECTIONS["ledger"]):

            async def ledger_versions() -> list[int]:
                page = (await client.get(f"/accounts/{account_id}/transactions")).json()
                return [t["version"] for t in page["items"]]

            await eventually(ledger_versions, [3, 2], timeout=30)  # the ledger went past the deposit
            assert (await client.get(f"/accounts/{account_id}")).json()["version"] == 1  # accounts halted
            broken["value"] = False
            engine = create_engine(ns)
            [failure] = await failures.open_failures(engine, "accounts")
            await failures.retry(engine, PROJECTIONS["accounts"], failure.failure_id)
            await engine.dispose()

            async def balance() -> int:
                return int((await client.get(f"/accounts/{account_id}")).json()["balance"])

            await eventually(balance, 70, timeout=30)  # resumed, and the runner read back for it
            assert await ledger_versions() == [3, 2]  # nothing applied twice on the way


async def test_an_undecodable_record_is_a_poison_event_not_a_stopped_projector(ns: Settings) -> None:
    async with api_client(ns, workers={"processor": run_processor}) as client:
        account_id, _ = await open_funded(client, 100)
        await write_foreign_record(ns, account_id, b"\xff not json")
        await client.post(f"/accounts/{account_id}/withdrawals", json={"amount": 30})
        async with projector_with(ns, ACCOUNTS, PROJECTIONS["ledger"]):

            async def balance() -> int | None:
                answer = await client.get(f"/accounts/{account_id}")
                return int(answer.json()["balance"]) if answer.status_code == 200 else None

            engine = create_engine(ns)

            async def recorded() -> set[str]:
                return {f.projection for f in await failures.open_failures(engine)}

            try:
                await eventually(balance, 70, timeout=60)  # went on past it
                await eventually(recorded, {"accounts", "ledger"}, timeout=30)
                junk = await failures.open_failures(engine)
                assert all("not json" in f.payload for f in junk)
                # Recorded at once, in the transaction of its batch: no retry could ever decode it.
                assert [f.attempts for f in junk] == [1, 1], [(f.projection, f.attempts) for f in junk]
            finally:
                await engine.dispose()


async def test_a_projector_that_cannot_take_its_partitions_fails_loudly(ns: Settings) -> None:
    engine = create_engine(ns)
    async with engine.begin() as connection:
        await connection.execute(text("DROP TABLE projection_checkpoints"))  # a broken deployment
    await engine.dispose()
    with pytest.raises(Exception, match="projection_checkpoints"):
        await asyncio.wait_for(run_projector(ns, [ACCOUNTS]), timeout=60)
