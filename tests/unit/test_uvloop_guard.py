"""On uvloop, aiokafka's write to a connection the broker closed is a KafkaConnectionError (which
every caller retries), not the RuntimeError that killed a consumer's background tasks.

A loopback socket whose transport is closed stands for the broker that went away; no Kafka.
"""

from __future__ import annotations

import asyncio

import pytest
import uvloop
from aiokafka.conn import AIOKafkaConnection
from aiokafka.errors import KafkaConnectionError
from aiokafka.protocol.metadata import MetadataRequest

from app.eventstore import uvloop_guard


async def send_on_a_closed_transport() -> None:
    server = await asyncio.start_server(lambda _r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        conn = AIOKafkaConnection("127.0.0.1", port)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        # What aiokafka's create_conn sets up for a connected broker (metadata v0 only).
        conn._reader, conn._writer, conn._read_task, conn._versions = reader, writer, done, {3: (0, 0)}
        writer.transport.close()  # the broker went away
        await asyncio.sleep(0)
        conn.send(MetadataRequest([]))
    finally:
        server.close()


def test_a_write_to_a_closed_connection_is_a_connection_error() -> None:
    uvloop_guard.install()
    with pytest.raises(KafkaConnectionError, match="broken"):
        uvloop.run(send_on_a_closed_transport())


def test_installing_twice_wraps_once() -> None:
    uvloop_guard.install()
    first = AIOKafkaConnection.send
    uvloop_guard.install()
    assert AIOKafkaConnection.send is first
