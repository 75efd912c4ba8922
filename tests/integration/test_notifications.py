"""Event notifications over Server-Sent Events: in order, resumable without loss or repeat, one
Kafka consumer per API process however many stream, capped, and an end user's only their own."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from app.api_keys import hash_key
from app.config import Settings
from app.eventstore.processor import run_processor
from projections.projector import run_projector
from tests.support import Process, api_client, free_port, fresh_namespace, read_events
from tests.tokens import AUDIENCE, ISSUER, Provider
from tests.waiting import eventually

PROVIDER = Provider()
SERVICE = {"Authorization": "Bearer key-of-a-service"}
STREAMS_MAX = 3


@pytest.fixture(scope="module")
async def ns(settings: Settings) -> Settings:
    return await fresh_namespace(
        settings,
        own_database=True,
        api_port=free_port(),
        notification_heartbeat_s=1,
        notification_streams_max=STREAMS_MAX,
        notification_history=4,  # small: a resume reaches back past it and is replayed from Kafka
        api_keys=f"service:writer:{hash_key('key-of-a-service')}",
        token_issuer=ISSUER,
        token_audience=AUDIENCE,
        token_jwks=PROVIDER.jwks(),
        token_leeway_s=0,  # a token's expiry is exactly its stream's end
        allow_anonymous=False,
    )


@pytest.fixture(scope="module")
def server(ns: Settings) -> Iterator[Process]:
    process = Process(ns, "api").start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
async def writer(ns: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(ns, workers={"processor": run_processor, "projector": run_projector}) as client:
        client.headers.update(SERVICE)
        yield client


@pytest.fixture
async def http(ns: Settings, server: Process) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{ns.api_port}", timeout=30) as client:

        async def up() -> int:
            return (await client.get("/health/ready")).status_code

        await eventually(up, 200, timeout=60)
        await eventually(lambda: streams_open(ns), 0)  # the streams of the test before are gone
        yield client


async def sse_events(
    response: httpx.Response, within_s: float = 30.0
) -> AsyncIterator[tuple[str, str, dict[str, object]]]:
    """(id, event, data) for each SSE event; comments (heartbeats) and retry lines are skipped.

    Heartbeats keep a stream alive forever: a notification that never comes fails the test after
    `within_s` instead of hanging it."""
    fields: dict[str, str] = {}
    lines = response.aiter_lines()
    deadline = asyncio.get_running_loop().time() + within_s
    while True:
        try:
            async with asyncio.timeout_at(deadline):
                line = await anext(lines)
        except StopAsyncIteration:
            return
        if line == "":
            if "data" in fields:
                yield fields.get("id", ""), fields.get("event", ""), orjson.loads(fields["data"])
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(": ")
            fields[name] = value


async def streams_open(ns: Settings) -> int:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{ns.api_port}", headers=SERVICE) as client:
        metrics = (await client.get("/metrics")).text
    line = next(line for line in metrics.splitlines() if line.startswith("eventline_notification_streams "))
    return int(float(line.split()[1]))


def kafka_connections(pid: int, ns: Settings) -> int:
    """TCP connections the process holds to the broker: each Kafka client it runs holds its own."""
    port = int(ns.kafka_bootstrap.rsplit(":", 1)[1])
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = os.readlink(fd) if fd.exists() else ""
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for table in ("tcp", "tcp6"):
        for row in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = row.split()
            remote_port, state, inode = int(fields[2].rsplit(":", 1)[1], 16), fields[3], fields[9]
            count += remote_port == port and state == "01" and inode in inodes  # 01: established
    return count


async def test_a_resumed_stream_misses_nothing_and_repeats_nothing(
    http: httpx.AsyncClient, writer: httpx.AsyncClient, ns: Settings
) -> None:
    before = len(await read_events(ns))
    seen: list[dict[str, object]] = []
    async with http.stream("GET", "/notifications/stream", headers=SERVICE) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        accounts = []
        for _ in range(3):
            opened = await writer.post("/accounts", json={"owner": "Listener", "currency": "EUR"})
            accounts.append(opened.json()["aggregate_id"])
        for n in range(30):
            await writer.post(f"/accounts/{accounts[n % 3]}/deposits", json={"amount": 1 + n})
        last_id = ""
        async for event_id, kind, data in sse_events(stream):
            assert kind == data["type"]
            seen.append(data)
            last_id = event_id
            if len(seen) == 15:
                break  # the client goes away mid-stream
    # 18 more wait; the history keeps 4 per partition, so most come back from Kafka.
    headers = SERVICE | {"Last-Event-ID": last_id}
    async with http.stream("GET", "/notifications/stream", headers=headers) as stream:
        async for _, _, data in sse_events(stream):
            seen.append(data)
            if len(seen) == 33:
                break
    events = (await read_events(ns))[before:]
    assert sorted(str(n["event_id"]) for n in seen) == sorted(e.event_id for e in events)
    for account_id in accounts:
        versions = [n["version"] for n in seen if n["aggregate_id"] == account_id]
        assert versions == list(range(1, 12))
    one = seen[0]
    assert one["href"] == f"/events/{one['event_id']}"


async def test_an_idle_stream_sends_heartbeats(http: httpx.AsyncClient) -> None:
    async with http.stream("GET", "/notifications/stream", headers=SERVICE) as stream:
        lines = stream.aiter_lines()
        assert await anext(lines) == "retry: 1000"
        assert await anext(lines) == ""
        assert await anext(lines) == ": heartbeat"


async def test_a_last_event_id_that_names_no_position_of_this_stream_is_refused_at_once(
    http: httpx.AsyncClient, ns: Settings
) -> None:
    whole = ",".join(f"{p}:0" for p in range(ns.partitions))
    cases = {
        "0:0": "names the position of each",  # some partitions only: their resume would be undefined
        whole + f",{ns.partitions}:0": "names the position of each",  # a partition the topic lacks
        whole.replace("0:0", "0:900000000", 1): "beyond the end of the stream",
        "yesterday": "not a position",
    }
    for last_event_id, reason in cases.items():
        started = time.monotonic()
        refused = await http.get("/notifications/stream", headers=SERVICE | {"Last-Event-ID": last_event_id})
        assert refused.status_code == 400, (last_event_id, refused.text)
        assert refused.headers["content-type"] == "application/problem+json"
        assert reason in refused.json()["detail"], refused.json()
        assert time.monotonic() - started < 2.0  # refused, not waited for


async def test_every_stream_of_a_process_shares_one_consumer_up_to_a_cap(
    http: httpx.AsyncClient, server: Process, ns: Settings
) -> None:
    alone = kafka_connections(server.pid, ns)
    streams = [http.stream("GET", "/notifications/stream", headers=SERVICE) for _ in range(STREAMS_MAX)]
    opened = [await stream.__aenter__() for stream in streams]
    try:
        assert [response.status_code for response in opened] == [200] * STREAMS_MAX
        assert await streams_open(ns) == STREAMS_MAX
        assert kafka_connections(server.pid, ns) == alone  # no stream brought a Kafka client of its own
        async with http.stream("GET", "/notifications/stream", headers=SERVICE) as refused:
            assert refused.status_code == 503, "a stream past the cap was opened"
            assert refused.headers["Retry-After"] == "1"
            assert orjson.loads(await refused.aread())["type"].endswith("/too-many-streams")
    finally:
        await streams[0].__aexit__(None, None, None)
    # The closed stream's place comes back.
    try:

        async def one_more() -> int:
            async with http.stream("GET", "/notifications/stream", headers=SERVICE) as again:
                return again.status_code

        await eventually(one_more, 200)
    finally:
        for stream in streams[1:]:
            await stream.__aexit__(None, None, None)


async def test_an_end_user_streams_the_notifications_of_their_own_accounts_only(
    http: httpx.AsyncClient, writer: httpx.AsyncClient
) -> None:
    def as_user(subject: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {PROVIDER.token(subject)}"}

    async def open_as(subject: str) -> tuple[str, str]:
        opened = await writer.post("/accounts", json={"owner": subject, "currency": "EUR"}, headers=as_user(subject))
        assert opened.status_code == 201, opened.text
        return str(opened.json()["aggregate_id"]), str(opened.json()["position"])

    (alice, at), (bob, _) = await open_as("alice"), await open_as("bob")
    mine = as_user("alice") | {"X-Consistent-With": at}  # the stream knows the account just opened
    async with (
        http.stream("GET", "/notifications/stream", headers=mine) as alices,
        http.stream("GET", "/notifications/stream", headers=SERVICE) as everything,
    ):
        assert alices.status_code == 200, await alices.aread()
        deposit = await writer.post(f"/accounts/{bob}/deposits", json={"amount": 5}, headers=as_user("bob"))
        assert deposit.status_code == 200, deposit.text
        async for _, _, data in sse_events(everything):
            if data["aggregate_id"] == bob:
                break  # the hub handed out Bob's deposit before Alice's is even made
        deposit = await writer.post(f"/accounts/{alice}/deposits", json={"amount": 7}, headers=as_user("alice"))
        assert deposit.status_code == 200, deposit.text
        async for _, kind, data in sse_events(alices):
            assert data["aggregate_id"] == alice, data  # Bob's came first, and Alice's stream skipped it
            if kind == "FundsDeposited":
                break


@pytest.mark.parametrize("opened_from", ["start=beginning", "Last-Event-ID at zero"])
async def test_an_end_users_stream_from_the_beginning_or_a_resume_at_zero_holds_only_their_own_accounts(
    http: httpx.AsyncClient, writer: httpx.AsyncClient, ns: Settings, opened_from: str
) -> None:
    run = uuid.uuid4().hex[:8]  # users of their own: the module's other tests open accounts too
    alice, bob = as_user(f"alice-{run}"), as_user(f"bob-{run}")
    alices, bobs = await open_account(writer, alice, "Alice"), await open_account(writer, bob, "Bob")
    async with http.stream("GET", "/notifications/stream", headers=SERVICE) as everything:
        assert (await writer.post(f"/accounts/{bobs}/deposits", json={"amount": 5}, headers=bob)).status_code == 200
        async for _, _, data in sse_events(everything):
            if data["aggregate_id"] == bobs and data["type"] == "FundsDeposited":
                break  # the hub has Bob's deposit: it is in the backlog of any stream opened from now on
    deposited = await writer.post(f"/accounts/{alices}/deposits", json={"amount": 7}, headers=alice)
    assert deposited.status_code == 200, deposited.text
    headers = alice | {"X-Consistent-With": str(deposited.json()["position"])}
    params = {}
    if opened_from == "start=beginning":
        params["start"] = "beginning"
    else:
        headers["Last-Event-ID"] = ",".join(f"{p}:0" for p in range(ns.partitions))
    seen: list[tuple[object, object]] = []
    async with http.stream("GET", "/notifications/stream", params=params, headers=headers) as alices_stream:
        assert alices_stream.status_code == 200, await alices_stream.aread()
        marker = await writer.post(f"/accounts/{alices}/deposits", json={"amount": 1}, headers=alice)
        assert marker.status_code == 200, marker.text
        async for _, _, data in sse_events(alices_stream):
            seen.append((data["aggregate_id"], data["version"]))
            if (data["aggregate_id"], data["version"]) == (alices, marker.json()["version"]):
                break  # a live notification: the whole backlog came before it
    accounts = {account for account, _ in seen}
    assert bobs not in accounts, f"Alice's stream carried Bob's account: {seen}"
    assert accounts == {alices}, seen  # nobody else's either
    assert [version for _, version in seen] == [1, 2, 3]  # all of hers: opened, deposit, the live marker


def as_user(subject: str) -> dict[str, str]:
    return bearer(PROVIDER.token(subject))


async def open_account(writer: httpx.AsyncClient, user: dict[str, str], owner: str) -> str:
    opened = await writer.post("/accounts", json={"owner": owner, "currency": "EUR"}, headers=user)
    assert opened.status_code == 201, opened.text
    return str(opened.json()["aggregate_id"])


async def test_an_end_users_stream_ends_when_the_token_that_opened_it_expires(
    http: httpx.AsyncClient, writer: httpx.AsyncClient
) -> None:
    token = PROVIDER.token("carol")
    opened = await writer.post("/accounts", json={"owner": "Carol", "currency": "EUR"}, headers=bearer(token))
    assert opened.status_code == 201, opened.text
    short = PROVIDER.token("carol", exp=int(time.time()) + 3)
    started = time.monotonic()
    async with http.stream("GET", "/notifications/stream", headers=bearer(short)) as stream:
        assert stream.status_code == 200
        async with asyncio.timeout(30):  # a stream that outlived its token would run on, heartbeating
            lines = [line async for line in stream.aiter_lines()]
    assert lines[-2].startswith(": the token expired"), lines
    assert time.monotonic() - started >= 1.5  # it was open, and then it ended


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
