"""The Kafka edge of the write side: envelope, codec, partitioner, topics, command bus, processor."""
