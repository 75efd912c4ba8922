"""aiokafka on uvloop: a write to a connection the broker closed must be a connection error.

aiokafka's `AIOKafkaConnection.send` turns an `OSError` from the transport into
`KafkaConnectionError`, which every caller retries. uvloop raises `RuntimeError`
instead ("unable to perform operation on <TCPTransport closed=True>; the handler
is closed"), which nothing in aiokafka expects: the background task that made
the call dies. Seen in the fault suite after a broker SIGKILL: a consumer's
metadata synchronizer and group coordination task both died that way, and the
payment saga then waited in `commit()` forever with its partitions unread
(aiokafka issue #1038, open). Every Eventline process runs on uvloop, so the
guard is installed once, when `app.eventstore` is first imported.

The guard wraps `send` and gives that one case aiokafka's own treatment of a
broken connection: close it and raise `KafkaConnectionError`. Any other
`RuntimeError` is not ours to reinterpret and is raised unchanged.
"""

from __future__ import annotations

import functools
from typing import Any

from aiokafka.conn import AIOKafkaConnection, CloseReason
from aiokafka.errors import KafkaConnectionError

_MARK = "_eventline_uvloop_guard"


def install() -> None:
    original = AIOKafkaConnection.send
    if getattr(original, _MARK, False):
        return

    @functools.wraps(original)
    def send(self: AIOKafkaConnection, request: Any, expect_response: bool = True) -> Any:
        try:
            return original(self, request, expect_response)
        except RuntimeError as error:
            writer = getattr(self, "_writer", None)
            if writer is None or not writer.transport.is_closing():
                raise
            self.close(reason=CloseReason.CONNECTION_BROKEN)
            raise KafkaConnectionError(f"Connection at {self.host}:{self.port} broken: {error}") from error

    setattr(send, _MARK, True)
    AIOKafkaConnection.send = send
