"""Sampled tracing keeps whole traces: the root decides by its trace id, every later hop follows its parent."""

from __future__ import annotations

import random

from opentelemetry.context import Context
from opentelemetry.sdk.trace.sampling import Decision, Sampler
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context

from app.observability.tracing import sampler


def decide(chosen: Sampler, trace_id: int, parent_sampled: bool | None = None) -> Decision:
    parent: Context | None = None
    if parent_sampled is not None:  # the context a Kafka record's traceparent header carries
        flags = TraceFlags(TraceFlags.SAMPLED if parent_sampled else TraceFlags.DEFAULT)
        remote = SpanContext(trace_id, span_id=7, is_remote=True, trace_flags=flags)
        parent = set_span_in_context(NonRecordingSpan(remote))
    return chosen.should_sample(parent, trace_id, "command Deposit").decision


def test_roots_are_kept_in_the_configured_proportion() -> None:
    chosen, ids = sampler(0.1), [random.getrandbits(128) for _ in range(20_000)]
    kept = sum(decide(chosen, trace_id) is Decision.RECORD_AND_SAMPLE for trace_id in ids)
    assert 1_600 < kept < 2_400  # 10% of 20,000, with room for chance
    assert all(decide(sampler(1.0), trace_id) is Decision.RECORD_AND_SAMPLE for trace_id in ids[:100])
    assert all(decide(sampler(0.0), trace_id) is Decision.DROP for trace_id in ids[:100])


def test_a_later_hop_follows_the_decision_its_record_carries_whatever_its_own_ratio() -> None:
    trace_id = random.getrandbits(128)
    assert decide(sampler(0.0), trace_id, parent_sampled=True) is Decision.RECORD_AND_SAMPLE
    assert decide(sampler(1.0), trace_id, parent_sampled=False) is Decision.DROP
