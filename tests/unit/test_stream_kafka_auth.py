"""The stream worker's Kafka security and ``kafka.extra``, mapped onto Faust's settings.

Every librdkafka property the worker can honour becomes the Faust setting or SSL context
with the same meaning; every other one is refused, named, with no value echoed.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import faust
import pytest
from tls_files import CertificateAuthority

from sentio_iot.config import KafkaSettings
from sentio_iot.errors import ConfigError
from sentio_iot.streams.kafka_auth import faust_kafka_settings

PASSWORD = "s3cret-Kafka-pass"
KEY_PASSWORD = "key-pass-9f2"


def kafka(**fields: Any) -> KafkaSettings:
    return KafkaSettings.model_validate(fields)


def refusal(settings: KafkaSettings) -> str:
    with pytest.raises(ConfigError) as raised:
        faust_kafka_settings(settings)
    text = str(raised.value)
    for secret in (PASSWORD, KEY_PASSWORD):
        assert secret not in text
    return text


@pytest.fixture
def authority(tmp_path: Path) -> CertificateAuthority:
    return CertificateAuthority(tmp_path)


def test_plaintext_needs_no_credentials() -> None:
    assert faust_kafka_settings(kafka()) == {}


def test_sasl_plaintext_maps_mechanism_user_and_password() -> None:
    settings = faust_kafka_settings(
        kafka(
            security_protocol="SASL_PLAINTEXT",
            sasl_mechanism="SCRAM-SHA-512",
            sasl_username="streams",
            sasl_password=PASSWORD,
        )
    )
    credentials = settings["broker_credentials"]
    assert isinstance(credentials, faust.SASLCredentials)
    assert (credentials.protocol.value, credentials.mechanism.value) == (
        "SASL_PLAINTEXT",
        "SCRAM-SHA-512",
    )
    assert (credentials.username, credentials.password) == ("streams", PASSWORD)
    assert credentials.ssl_context is None


def test_ssl_trusts_the_configured_ca_and_checks_the_host_name(
    authority: CertificateAuthority,
) -> None:
    settings = faust_kafka_settings(
        kafka(security_protocol="SSL", extra={"ssl.ca.location": str(authority.ca_file)})
    )
    credentials = settings["broker_credentials"]
    assert isinstance(credentials, faust.SSLCredentials)
    assert credentials.protocol.value == "SSL"
    context = credentials.context
    assert context.check_hostname is True and context.verify_mode == ssl.CERT_REQUIRED
    assert [dict(entry[0] for entry in ca["subject"]) for ca in context.get_ca_certs()] == [
        {"commonName": "sentio test CA"}
    ]


def test_ssl_ca_from_a_folder_or_pem_text(authority: CertificateAuthority, tmp_path: Path) -> None:
    pem = authority.ca_file.read_text()
    settings = faust_kafka_settings(kafka(security_protocol="SSL", extra={"ssl.ca.pem": pem}))
    assert len(settings["broker_credentials"].context.get_ca_certs()) == 1
    folder = faust_kafka_settings(
        kafka(security_protocol="SSL", extra={"ssl.ca.location": str(tmp_path)})
    )
    assert folder["broker_credentials"].context.verify_mode == ssl.CERT_REQUIRED


def test_sasl_ssl_with_a_client_certificate_and_an_encrypted_key(
    authority: CertificateAuthority,
) -> None:
    client = authority.issue("streams", ["streams"], password=KEY_PASSWORD)
    settings = faust_kafka_settings(
        kafka(
            security_protocol="SASL_SSL",
            sasl_mechanism="SCRAM-SHA-256",
            sasl_username="streams",
            sasl_password=PASSWORD,
            extra={
                "ssl.ca.location": str(authority.ca_file),
                "ssl.certificate.location": str(client.certificate),
                "ssl.key.location": str(client.key),
                "ssl.key.password": KEY_PASSWORD,
            },
        )
    )
    credentials = settings["broker_credentials"]
    assert isinstance(credentials, faust.SASLCredentials)
    assert (credentials.protocol.value, credentials.mechanism.value) == (
        "SASL_SSL",
        "SCRAM-SHA-256",
    )
    assert credentials.password == PASSWORD
    assert credentials.ssl_context is not None and credentials.ssl_context.check_hostname


def test_a_wrong_key_password_is_a_config_error_without_the_password(
    authority: CertificateAuthority,
) -> None:
    client = authority.issue("streams", ["streams"], password=KEY_PASSWORD)
    text = refusal(
        kafka(
            security_protocol="SSL",
            extra={
                "ssl.certificate.location": str(client.certificate),
                "ssl.key.location": str(client.key),
                "ssl.key.password": "wrong",
            },
        )
    )
    assert "kafka.extra.ssl.certificate.location, ssl.key.location: cannot load" in text
    assert "wrong" not in text.replace("a wrong ssl.key.password", "")


def test_sasl_properties_in_extra_override_the_typed_fields() -> None:
    settings = faust_kafka_settings(
        kafka(
            security_protocol="PLAINTEXT",
            sasl_username="ignored",
            extra={
                "security.protocol": "sasl_plaintext",
                "sasl.mechanisms": "PLAIN",
                "sasl.username": "streams",
                "sasl.password": PASSWORD,
            },
        )
    )
    credentials = settings["broker_credentials"]
    assert (credentials.protocol.value, credentials.mechanism.value) == ("SASL_PLAINTEXT", "PLAIN")
    assert (credentials.username, credentials.password) == ("streams", PASSWORD)


def test_host_name_check_and_verification_can_be_turned_off_as_in_librdkafka(
    authority: CertificateAuthority,
) -> None:
    ca = str(authority.ca_file)
    no_host = faust_kafka_settings(
        kafka(
            security_protocol="SSL",
            extra={"ssl.ca.location": ca, "ssl.endpoint.identification.algorithm": "none"},
        )
    )["broker_credentials"].context
    assert (no_host.check_hostname, no_host.verify_mode) == (False, ssl.CERT_REQUIRED)
    unverified = faust_kafka_settings(
        kafka(security_protocol="SSL", extra={"enable.ssl.certificate.verification": "false"})
    )["broker_credentials"].context
    assert (unverified.check_hostname, unverified.verify_mode) == (False, ssl.CERT_NONE)


def test_extra_properties_faust_understands_become_its_settings() -> None:
    settings = faust_kafka_settings(
        kafka(
            extra={
                "request.timeout.ms": 45000,
                "max.poll.interval.ms": "600000",
                "max.partition.fetch.bytes": 2097152,
                "message.max.bytes": 2000000,
                "check.crcs": "false",
            }
        )
    )
    assert settings == {
        "broker_request_timeout": 45.0,
        "broker_max_poll_interval": 600.0,
        "consumer_max_fetch_size": 2097152,
        "producer_max_request_size": 2000000,
        "broker_check_crcs": False,
    }


def test_every_security_property_the_worker_cannot_honour_is_named_in_one_error() -> None:
    text = refusal(
        kafka(
            extra={
                "socket.timeout.ms": 10000,
                "request.timeout.ms": "soon",
                "sasl.oauthbearer.client.secret": PASSWORD,
                "ssl.cipher.suites": "ECDHE",
            }
        )
    )
    lines = text.splitlines()
    assert lines[0] == "kafka settings the stream worker cannot use"
    assert sorted(line.strip().split(":")[0] for line in lines[1:]) == [
        "kafka.extra.request.timeout.ms",
        "kafka.extra.sasl.oauthbearer.client.secret",
        "kafka.extra.ssl.cipher.suites",
    ]
    assert "kafka.extra.request.timeout.ms: expected a whole number" in text
    assert PASSWORD not in text


def test_the_other_stages_properties_are_named_once_and_left_to_them(
    caplog: pytest.LogCaptureFixture,
) -> None:
    extra = {"socket.timeout.ms": 10000, "linger.ms": 5, "session.timeout.ms": 30000}
    with caplog.at_level("WARNING", logger="sentio_iot.streams.kafka_auth"):
        assert faust_kafka_settings(kafka(extra=extra)) == {}
    (warning,) = [r.getMessage() for r in caplog.records]
    assert warning == (
        "kafka.extra properties the stream worker does not use (the other stages do): "
        "socket.timeout.ms, linger.ms (streams: fixed by the worker for its commits "
        "(docs/benchmarks.md)), session.timeout.ms (streams: streams.session_timeout_s)"
    )


def test_bad_security_settings_are_refused_with_the_field_and_the_fix(tmp_path: Path) -> None:
    assert "needs one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512" in refusal(
        kafka(security_protocol="SASL_SSL", sasl_username="u", sasl_password=PASSWORD)
    )
    assert (
        "kafka.sasl_username, kafka.sasl_password: security_protocol SASL_PLAINTEXT needs both"
        in (refusal(kafka(security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN")))
    )
    assert "kafka.extra.sasl.mechanism: the stream worker supports" in refusal(
        kafka(
            security_protocol="SASL_SSL",
            sasl_username="u",
            sasl_password=PASSWORD,
            extra={"sasl.mechanism": "OAUTHBEARER"},
        )
    )
    assert "kafka.extra.ssl.ca.location: needs security_protocol SSL or SASL_SSL" in refusal(
        kafka(extra={"ssl.ca.location": "/etc/ssl/certs"})
    )
    missing = tmp_path / "missing.pem"
    assert f"kafka.extra.ssl.ca.location: cannot load {missing}" in refusal(
        kafka(security_protocol="SSL", extra={"ssl.ca.location": str(missing)})
    )
    assert "kafka.extra.ssl.key.location: needs ssl.certificate.location" in refusal(
        kafka(security_protocol="SSL", extra={"ssl.key.location": str(missing)})
    )
    assert "kafka.extra.security.protocol: expected one of" in refusal(
        kafka(extra={"security.protocol": "tls"})
    )


def test_the_stream_app_hands_the_mapping_to_faust_and_aiokafka(
    authority: CertificateAuthority, tmp_path: Path
) -> None:
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    from sentio_iot.config import SentioConfig
    from sentio_iot.streams.app import StreamApp

    config = SentioConfig.model_validate(
        {
            "kafka": {
                "security_protocol": "SASL_SSL",
                "sasl_mechanism": "SCRAM-SHA-512",
                "sasl_username": "streams",
                "sasl_password": PASSWORD,
                "extra": {"ssl.ca.location": str(authority.ca_file), "request.timeout.ms": 45000},
            },
            "streams": {"state_dir": str(tmp_path / "state")},
        }
    )
    app = StreamApp(config, agents=["rollups"])
    assert app.faust.conf.broker_request_timeout == 45.0
    auth = credentials_to_aiokafka_auth(app.faust.conf.broker_credentials)
    assert auth["security_protocol"] == "SASL_SSL"
    assert (auth["sasl_mechanism"], auth["sasl_plain_username"]) == ("SCRAM-SHA-512", "streams")
    assert auth["sasl_plain_password"] == PASSWORD
    assert isinstance(auth["ssl_context"], ssl.SSLContext)
    assert PASSWORD not in repr(app.faust.conf.broker_credentials)
    config.kafka.extra["ssl.cipher.suites"] = "ECDHE"
    with pytest.raises(ConfigError, match=r"kafka\.extra\.ssl\.cipher\.suites: the stream worker"):
        StreamApp(config, agents=["rollups"])
