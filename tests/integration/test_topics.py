"""Topic administration against the real broker."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from app.config import Settings
from app.eventstore.kafka import admin_client
from app.eventstore.topics import TopicMismatch, create_topics, topic_specs, verify_topics
from app.main import create_app
from tests.conftest import ROOT, new_settings


@pytest.fixture
async def admin(settings: Settings) -> AsyncIterator[AIOKafkaAdminClient]:
    client = admin_client(settings)
    await client.start()
    yield client
    await client.close()


async def topic_config(admin: AIOKafkaAdminClient, topic: str) -> dict[str, str]:
    [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    [resource] = response.resources
    return {entry[0]: entry[1] for entry in resource[4]}


async def test_topic_creation_is_idempotent(admin: AIOKafkaAdminClient) -> None:
    fresh = new_settings(partitions=3)
    first = await create_topics(admin, fresh)
    second = await create_topics(admin, fresh)
    assert sorted(first) == sorted(spec.name for spec in topic_specs(fresh))
    assert second == []
    await verify_topics(admin, fresh)


async def test_events_are_kept_forever_and_states_are_compacted(admin: AIOKafkaAdminClient, settings: Settings) -> None:
    events = await topic_config(admin, settings.topic("events"))
    aggregates = await topic_config(admin, settings.topic("aggregates"))
    assert (events["retention.ms"], events["retention.bytes"], events["cleanup.policy"]) == ("-1", "-1", "delete")
    assert aggregates["cleanup.policy"] == "compact"


async def test_a_different_partition_count_is_refused(admin: AIOKafkaAdminClient) -> None:
    deployed = new_settings(partitions=3)
    await create_topics(admin, deployed)
    changed = deployed.model_copy(update={"partitions": 4})
    with pytest.raises(TopicMismatch, match=r"has 3 partitions but the settings say 4"):
        await verify_topics(admin, changed)


async def test_the_api_refuses_to_start_on_a_partition_mismatch(admin: AIOKafkaAdminClient, settings: Settings) -> None:
    deployed = new_settings(partitions=2, database_url=settings.database_url)
    await create_topics(admin, deployed)
    app = create_app(deployed.model_copy(update={"partitions": 5}))
    with pytest.raises(TopicMismatch, match="partition count is fixed"):
        async with app.router.lifespan_context(app):
            pass


def test_the_cli_reports_a_mismatch_and_exits_non_zero(settings: Settings) -> None:
    env_base = {
        "EVENTLINE_NAMESPACE": new_settings().namespace,
        "EVENTLINE_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,  # the session's broker, on whatever port
        "PATH": "/usr/bin:/bin",
    }
    create = subprocess.run(
        [str(ROOT / ".venv/bin/eventline"), "topics", "create"],
        env={**env_base, "EVENTLINE_PARTITIONS": "2"},
        capture_output=True,
        text=True,
    )
    assert create.returncode == 0, create.stdout + create.stderr
    again = subprocess.run(
        [str(ROOT / ".venv/bin/eventline"), "topics", "create"],
        env={**env_base, "EVENTLINE_PARTITIONS": "6"},
        capture_output=True,
        text=True,
    )
    assert again.returncode == 1
    assert "has 2 partitions but the settings say 6" in again.stdout
