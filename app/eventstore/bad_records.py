"""Records a consumer cannot read: counted, logged with where they are, and skipped.

Any producer can write to a topic (a foreign client, a buggy tool, a newer
version), so one unreadable record must never stop a consumer: it is parked
here — `eventline_bad_records{consumer, topic}` and an error log line naming
its topic, partition and offset (never its content, which may be personal) —
and the consumer goes on. Projections park theirs in the failures table too.
"""

from __future__ import annotations

import logging

from aiokafka.structs import ConsumerRecord

from app.observability.metrics import BAD_RECORDS

log = logging.getLogger(__name__)

# What decoding a record that is not ours raises: bad JSON, missing or extra fields, wrong types.
UNREADABLE: tuple[type[Exception], ...] = (ValueError, TypeError, KeyError, AttributeError)


def skip_bad_record(consumer: str, record: ConsumerRecord[bytes, bytes], error: Exception) -> None:
    BAD_RECORDS.labels(consumer, record.topic).inc()
    log.error(
        "%s: skipping an unreadable record at %s partition %d offset %d (%s)",
        consumer,
        record.topic,
        record.partition,
        record.offset,
        type(error).__name__,
    )
