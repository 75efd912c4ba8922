"""The Kafka edge of the write side: envelope, codec, partitioner, topics, command bus, processor."""

from app.eventstore import uvloop_guard

uvloop_guard.install()  # before any Kafka client connects, in every process: see the module
