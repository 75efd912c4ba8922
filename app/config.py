"""Settings: one validated class, read from `EVENTLINE_*` environment variables."""

from __future__ import annotations

from datetime import timedelta
from functools import lru_cache
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.api_keys import parse_api_keys


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EVENTLINE_", extra="ignore", frozen=True)

    environment: Literal["development", "test", "production"] = "development"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = "json"

    # Kafka: the event store.
    kafka_bootstrap: str = "127.0.0.1:19092"
    kafka_security_protocol: Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT",
        description="How clients reach the brokers. SASL_*: each process authenticates with its own "
        "EVENTLINE_KAFKA_USERNAME and EVENTLINE_KAFKA_PASSWORD, and the brokers' ACLs say what it may do "
        "(docs/security.md).",
    )
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256"] = "SCRAM-SHA-512"
    kafka_username: str = Field(default="", description="This process's Kafka principal (SASL only).")
    kafka_password: str = Field(default="", repr=False, description="…and its password.")
    namespace: str = Field(
        default="eventline",
        pattern=r"^[a-z0-9][a-z0-9_-]{0,48}$",
        description="Prefix of every topic, transactional id and consumer group.",
    )
    partitions: int = Field(
        default=8,
        ge=1,
        le=1024,
        description="Partitions of the commands, events, aggregates and notifications topics. "
        "Fixed for the life of a deployment: it decides where each aggregate lives.",
    )
    result_partitions: int = Field(default=4, ge=1, le=1024)
    replication_factor: int = Field(default=1, ge=1)
    min_insync_replicas: int = Field(default=1, ge=1)
    command_retention_ms: int = 7 * 24 * 3600 * 1000
    result_retention_ms: int = 3600 * 1000
    notification_retention_ms: int = 7 * 24 * 3600 * 1000

    # Command processor (write side).
    idempotency_retention: timedelta = Field(
        default=timedelta(hours=24),
        ge=timedelta(seconds=1),
        description="How long a command sent under an Idempotency-Key is remembered and answered with its "
        "first result (an ISO 8601 duration such as PT24H or P7D).",
    )
    processor_shards: int = Field(
        default=1,
        ge=1,
        le=1024,
        description="Sets of command partitions owned and written together, one Kafka transaction per batch "
        "across a set (partition p is in set p mod this). The most processors that share the work; fixed for "
        "the life of a deployment: change it only with every processor stopped.",
    )
    lean_routes: bool = Field(
        default=True,
        description="Command routes take the lean path (app/api/lean_routes.py); off, FastAPI solves every "
        "parameter as it does for the other routes (the bench A/Bs the two).",
    )
    gc_young_threshold: int = Field(
        default=20_000,
        ge=100,
        description="Allocations (net of frees) that start a collection of the garbage collector's youngest "
        "generation; Python's default, 700, is below what a busy process holds in flight (64 requests or a batch "
        "of commands), so it collected several times a second for nothing: docs/write-path.md.",
    )
    processor_batch: int = Field(default=1000, ge=1, description="Most commands fetched per poll.")
    processor_linger_ms: int = Field(default=0, ge=0)
    processor_gather_ms: int = Field(
        default=5,
        ge=0,
        le=100,
        description="How long a partition's writer waits, once a command arrives while the partition was just "
        "busy, for more commands to join the same transaction (0: start at once).",
    )
    processor_session_timeout_ms: int = Field(default=10_000, ge=6_000)
    processor_max_poll_interval_ms: int = Field(default=60_000, ge=1_000)
    processor_transaction_timeout_ms: int = Field(default=30_000, ge=1_000)
    processor_retry_backoff_ms: int = Field(
        default=25,
        ge=1,
        le=1_000,
        description="How soon a writer retries a produce the broker refused as retriable: one that raced the "
        "previous transaction's commit markers, or a broker that is away.",
    )

    # PostgreSQL: the read models.
    database_url: str = "postgresql+asyncpg://eventline:eventline@127.0.0.1:15432/eventline"
    database_pool_size: int = Field(default=10, ge=1)

    # Projections (read side).
    projection_failure_mode: Literal["skip", "halt"] = Field(
        default="skip",
        description="After its retries, skip a poison event (recording it) or halt there.",
    )
    projection_retries: int = Field(default=3, ge=0, le=20)
    projection_linger_ms: int = Field(
        default=20,
        ge=0,
        le=1000,
        description="How long the broker may hold a projector's fetch to gather more records: fewer, larger "
        "database transactions, each read model at most this much later.",
    )
    consistency_timeout_s: float = Field(
        default=5.0,
        gt=0,
        description="How long a query with X-Consistent-With waits for its projection.",
    )

    # Messaging: what a message costs, in the sender's account currency (minor units).
    message_base_fee: int = Field(default=5, ge=0, le=10**9)
    message_fee_per_recipient: int = Field(default=2, ge=0, le=10**9)
    notification_heartbeat_s: float = Field(default=15.0, gt=0, description="SSE heartbeat when idle.")
    notification_streams_max: int = Field(
        default=5000, ge=1, description="Open SSE streams one API process serves; more get 503 with Retry-After."
    )
    notification_buffer: int = Field(
        default=1000,
        ge=1,
        description="Notifications queued for one stream; a stream that falls further behind is ended, resumable.",
    )
    notification_history: int = Field(
        default=1000,
        ge=0,
        description="Recent notifications per partition kept in memory, so a short reconnect resumes without Kafka.",
    )
    notification_replays_max: int = Field(
        default=16,
        ge=1,
        description="Streams replaying from Kafka at once (resumes older than the history, start=beginning).",
    )

    # Personal data: sealed under a key per data subject, keys wrapped by these (docs/privacy.md).
    privacy_keks: str = Field(
        default="",
        repr=False,
        description="Key-encryption keys as id:<base64 of 32 bytes>, comma-separated, the current one first: "
        "it wraps new data keys, the others only unwrap (a rotation keeps the old key listed until every "
        "data key is rewrapped).",
    )
    privacy_key_segment_ms: int = Field(
        default=3_600_000,
        ge=1,
        description="segment.ms of <ns>.subject-keys: a forgotten key's tombstone is compactable once its "
        "segment rolls (docs/privacy.md derives the bound from this).",
    )
    privacy_key_compaction_lag_ms: int = Field(
        default=3_600_000,
        ge=1,
        description="max.compaction.lag.ms of <ns>.subject-keys: the longest a rolled segment with a "
        "tombstone waits for the log cleaner.",
    )

    # HTTP API: access and limits.
    api_keys: str = Field(
        default="",
        repr=False,
        description="name:role:<sha256 hex of the key>, comma-separated; roles reader, writer, admin. "
        "Empty: the API refuses to start, unless EVENTLINE_ALLOW_ANONYMOUS is set (development).",
    )
    token_issuer: str = Field(
        default="",
        description="The `iss` of end users' bearer tokens (JWTs); empty: end-user tokens are not accepted.",
    )
    token_audience: str = Field(default="eventline", description="The `aud` an end-user token must name.")
    token_jwks: str = Field(
        default="", repr=False, description="The issuer's public keys as a JSON Web Key Set document (JSON)."
    )
    token_jwks_file: str = Field(default="", description="…or the path of a file holding that document.")
    token_leeway_s: float = Field(
        default=30.0, ge=0, le=300, description="Clock skew allowed on a token's exp and nbf."
    )
    allow_anonymous: bool = Field(
        default=False,
        description="Serve the API without authentication when no API key is configured: development only "
        "(refused in production). Without it and without keys, the API refuses to start.",
    )
    cors_origins: str = Field(default="", description="Comma-separated origins allowed by CORS; empty: none.")
    max_body_bytes: int = Field(default=64 * 1024, ge=1024, description="Larger request bodies get 413.")

    # HTTP API.
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
    command_timeout_s: float = Field(
        default=5.0, gt=0, description="How long a command request waits for its result before 202."
    )
    kafka_send_timeout_s: float = Field(
        default=3.0, gt=0, description="How long producing a command may take before the API answers 503."
    )
    otlp_endpoint: str = Field(
        default="",
        description="Where to export traces over OTLP/HTTP (a collector's base URL, e.g. http://127.0.0.1:4318); "
        "empty: no tracing at all.",
    )
    trace_sample_ratio: float = Field(
        default=1.0,
        ge=0.0,
        le=1.0,
        description="Share of requests whose trace is recorded, decided once where the trace starts (the API) "
        "and followed by every later hop through the context the records carry: a trace is whole or absent.",
    )
    projection_stall_after_s: float = Field(
        default=30.0,
        gt=0,
        description="A projection partition is stalled when the log holds events it has not applied and its "
        "checkpoint has not moved for this long (/health/stalls, eventline_projection_stalled).",
    )
    saga_pending_alert_s: float = Field(
        default=60.0,
        gt=0,
        description="A message waiting for its payment longer than this is reported by /health/stalls.",
    )
    readiness_timeout_s: float = Field(
        default=1.5, gt=0, le=10, description="Budget of each dependency check in /health/ready."
    )
    startup_timeout_s: float = Field(
        default=60.0, gt=0, description="How long a process waits for Kafka when it starts."
    )

    @model_validator(mode="after")
    def _production_needs_keys(self) -> Settings:
        if self.environment == "production" and not parse_api_keys(self.api_keys) and not self.token_issuer:
            raise ValueError("EVENTLINE_API_KEYS must be set in production")
        if self.environment == "production" and self.allow_anonymous:
            raise ValueError("EVENTLINE_ALLOW_ANONYMOUS is for development; production always authenticates")
        if self.environment == "production" and not self.privacy_keks:
            raise ValueError("EVENTLINE_PRIVACY_KEKS must be set in production: personal fields are sealed with it")
        if self.kafka_security_protocol != "PLAINTEXT" and not (self.kafka_username and self.kafka_password):
            raise ValueError(
                f"EVENTLINE_KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs "
                "EVENTLINE_KAFKA_USERNAME and EVENTLINE_KAFKA_PASSWORD"
            )
        return self

    def topic(self, name: str) -> str:
        return f"{self.namespace}.{name}"

    @property
    def idempotency_retention_ms(self) -> int:
        return int(self.idempotency_retention.total_seconds() * 1000)

    @property
    def processor_group(self) -> str:
        return f"{self.namespace}.processor"

    @property
    def saga_group(self) -> str:
        return f"{self.namespace}.saga.payment"


@lru_cache
def get_settings() -> Settings:
    return Settings()
