"""Every Kafka client of a process is built from one description of how to reach the brokers."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.config import Settings
from app.eventstore.kafka import connection


def test_plaintext_names_only_the_brokers() -> None:
    assert connection(Settings(kafka_bootstrap="b:9092")) == {"bootstrap_servers": "b:9092"}


def test_a_sasl_broker_gets_this_processs_own_principal() -> None:
    settings = Settings(
        kafka_bootstrap="b:9092", kafka_security_protocol="SASL_PLAINTEXT", kafka_username="api", kafka_password="pw"
    )
    assert connection(settings) == {
        "bootstrap_servers": "b:9092",
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "api",
        "sasl_plain_password": "pw",
    }


def test_sasl_over_tls_verifies_the_brokers_certificates() -> None:
    settings = Settings(kafka_security_protocol="SASL_SSL", kafka_username="api", kafka_password="pw")
    context = connection(settings)["ssl_context"]
    assert context.check_hostname and context.verify_mode.name == "CERT_REQUIRED"


@pytest.mark.parametrize("missing", [{"kafka_username": "api"}, {"kafka_password": "pw"}, {}])
def test_sasl_without_credentials_is_refused_at_startup(missing: dict[str, str]) -> None:
    with pytest.raises(ValidationError, match="EVENTLINE_KAFKA_USERNAME and EVENTLINE_KAFKA_PASSWORD"):
        Settings(kafka_security_protocol="SASL_PLAINTEXT", **missing)  # type: ignore[arg-type]


def test_the_password_stays_out_of_the_settings_repr() -> None:
    settings = Settings(kafka_security_protocol="SASL_PLAINTEXT", kafka_username="api", kafka_password="s3cret")
    assert "s3cret" not in repr(settings)
