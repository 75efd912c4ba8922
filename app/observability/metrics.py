"""Prometheus metrics of this process (`GET /metrics`).

Counters and histograms are updated where things happen; gauges that describe
the whole system (projection lag, failures, messages waiting for payment) are
computed when scraped, from the read models and Kafka's end offsets.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

REGISTRY = CollectorRegistry(auto_describe=True)

COMMANDS = Counter(
    "eventline_commands", "Commands answered by the API, by type and outcome.", ["type", "outcome"], registry=REGISTRY
)
COMMAND_SECONDS = Histogram(
    "eventline_command_seconds",
    "Time from receiving a command to answering it.",
    ["type"],
    registry=REGISTRY,
    buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10),
)
EVENTS_APPENDED = Counter(
    "eventline_events_appended", "Events committed to the event store.", ["aggregate_type"], registry=REGISTRY
)
BATCHES = Counter("eventline_processor_batches", "Processor transactions, by outcome.", ["outcome"], registry=REGISTRY)
PROJECTED = Counter(
    "eventline_projected_messages", "Messages applied by projections.", ["projection"], registry=REGISTRY
)
DEPENDENCY_ERRORS = Counter(
    "eventline_dependency_errors", "Errors talking to Kafka or PostgreSQL.", ["dependency"], registry=REGISTRY
)
BAD_RECORDS = Counter(
    "eventline_bad_records",
    "Unreadable records skipped, by consumer and topic.",
    ["consumer", "topic"],
    registry=REGISTRY,
)
SAGA_COMMANDS = Counter("eventline_saga_commands", "Commands sent by the payment saga.", ["type"], registry=REGISTRY)
PROJECTION_LAG = Gauge(
    "eventline_projection_lag",
    "Messages not yet applied, per projection and partition.",
    ["projection", "topic", "partition"],
    registry=REGISTRY,
)
PROJECTION_FAILURES = Gauge(
    "eventline_projection_failures", "Open projection failures.", ["projection"], registry=REGISTRY
)
SAGA_PENDING = Gauge("eventline_saga_pending_messages", "Messages waiting for their payment.", registry=REGISTRY)
SAGA_OLDEST_PENDING = Gauge(
    "eventline_saga_oldest_pending_seconds",
    "How long the oldest message has waited for its payment.",
    registry=REGISTRY,
)
PROJECTION_CHECKPOINT_AGE = Gauge(
    "eventline_projection_checkpoint_age_seconds",
    "Seconds since a lagging partition's checkpoint last moved (0 when caught up).",
    ["projection", "topic", "partition"],
    registry=REGISTRY,
)
PROJECTION_STALLED = Gauge(
    "eventline_projection_stalled",
    "1 when a projection has events to apply and a checkpoint that has not moved for too long.",
    ["projection"],
    registry=REGISTRY,
)
NOTIFICATION_STREAMS = Gauge(
    "eventline_notification_streams", "Open notification streams (SSE) of this process.", registry=REGISTRY
)
NOTIFICATION_OVERFLOWS = Counter(
    "eventline_notification_overflows", "Streams ended for falling behind their buffer.", registry=REGISTRY
)


def exposition() -> bytes:
    return generate_latest(REGISTRY)
