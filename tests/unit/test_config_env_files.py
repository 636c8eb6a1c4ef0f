"""SENTIO_<SECRET>__FILE: a secret setting read from a file (Compose's secrets volume)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from sentio_iot.cli.main import cli
from sentio_iot.config import SentioConfig, load_config
from sentio_iot.config_env_files import is_secret_setting
from sentio_iot.errors import ConfigError


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_a_secret_is_read_from_its_file_without_the_trailing_newline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SENTIO_KAFKA__SASL_USERNAME", "producer")
    monkeypatch.setenv("SENTIO_KAFKA__SASL_PASSWORD__FILE", write(tmp_path / "k", "s3cret\n"))
    vm = write(tmp_path / "vm", "sentio:pw-1")
    monkeypatch.setenv("SENTIO_SINKS__VICTORIAMETRICS__AUTH__BASIC_AUTH__FILE", vm)
    config = load_config(data={"kafka": {"bootstrap_servers": "kafka:9092"}})
    assert config.kafka.sasl_username == "producer"
    assert config.kafka.sasl_password is not None
    assert config.kafka.sasl_password.get_secret_value() == "s3cret"
    assert config.kafka.bootstrap_servers == "kafka:9092"  # the file's other settings stay
    basic = config.sinks.victoriametrics.auth.basic_auth
    assert basic is not None and basic.get_secret_value() == "sentio:pw-1"


def test_the_file_wins_over_the_configuration_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SENTIO_KAFKA__SASL_PASSWORD__FILE", write(tmp_path / "k", "from-file"))
    config = load_config(data={"kafka": {"sasl_password": "from-yaml"}})
    assert config.kafka.sasl_password is not None
    assert config.kafka.sasl_password.get_secret_value() == "from-file"


def test_settings_whose_names_end_in_file_are_not_taken_for_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = write(tmp_path / "c.pem", "x"), write(tmp_path / "k.pem", "y")
    monkeypatch.setenv("SENTIO_API__TLS__CERT_FILE", cert)
    monkeypatch.setenv("SENTIO_API__TLS__KEY_FILE", key)
    config = SentioConfig()
    assert config.api.tls is not None
    assert (str(config.api.tls.cert_file), str(config.api.tls.key_file)) == (cert, key)


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        (
            "SENTIO_KAFKA__BOOTSTRAP_SERVERS__FILE",
            "kafka:9092",
            "SENTIO_KAFKA__BOOTSTRAP_SERVERS__FILE: kafka.bootstrap_servers is not a secret "
            "setting; only secrets (passwords, tokens) are read from files: set "
            "SENTIO_KAFKA__BOOTSTRAP_SERVERS itself",
        ),
        ("SENTIO_KAFKA__NOPE__FILE", "x", "kafka.nope is not a secret setting"),
        ("SENTIO_KAFKA__SASL_PASSWORD__FILE", "", "is empty: write the secret into it"),
        ("SENTIO_KAFKA__SASL_PASSWORD__FILE", None, "cannot read"),
    ],
)
def test_a_wrong_file_variable_is_one_line_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str | None, expected: str
) -> None:
    path = tmp_path / "secret"
    if value is not None:
        path.write_text(value)
    monkeypatch.setenv(variable, str(path))
    with pytest.raises(ConfigError, match="^" + variable) as caught:
        load_config(data={})
    assert expected in str(caught.value) and "\n" not in str(caught.value)
    result = CliRunner().invoke(cli, ["config", "show"])
    assert result.exit_code == 2
    assert result.output.startswith(f"error: {variable}:") and result.output.count("\n") == 1


def test_the_secret_and_its_file_together_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SENTIO_KAFKA__SASL_PASSWORD", "inline")
    monkeypatch.setenv("SENTIO_KAFKA__SASL_PASSWORD__FILE", write(tmp_path / "k", "file"))
    with pytest.raises(ConfigError, match="SENTIO_KAFKA__SASL_PASSWORD is set too: keep one"):
        load_config(data={})


def test_binary_and_huge_files_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    binary = tmp_path / "b"
    binary.write_bytes(b"\xff\xfe")
    monkeypatch.setenv("SENTIO_KAFKA__SASL_PASSWORD__FILE", str(binary))
    with pytest.raises(ConfigError, match="is not UTF-8 text"):
        load_config(data={})
    big = tmp_path / "big"
    big.write_bytes(b"a" * (64 * 1024 + 1))
    monkeypatch.setenv("SENTIO_KAFKA__SASL_PASSWORD__FILE", str(big))
    with pytest.raises(ConfigError, match="is over 65536 bytes"):
        load_config(data={})


def test_the_secret_read_from_a_file_is_masked_in_config_show(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SENTIO_KAFKA__SASL_PASSWORD__FILE", write(tmp_path / "k", "do-not-show-1"))
    result = CliRunner().invoke(cli, ["config", "show"])
    assert result.exit_code == 0, result.output
    assert "do-not-show-1" not in result.output and "sasl_password" in result.output


def test_which_settings_are_secrets() -> None:
    assert is_secret_setting(SentioConfig, ["kafka", "sasl_password"])
    assert is_secret_setting(SentioConfig, ["schema_registry", "basic_auth"])
    assert is_secret_setting(SentioConfig, ["sinks", "alertmanager", "auth", "basic_auth"])
    assert is_secret_setting(SentioConfig, ["api", "history", "auth", "basic_auth"])
    assert not is_secret_setting(SentioConfig, ["kafka", "sasl_username"])
    assert not is_secret_setting(SentioConfig, ["kafka"])
    assert not is_secret_setting(SentioConfig, ["kafka", "extra"])
    assert not is_secret_setting(SentioConfig, ["kafka", "sasl_password", "more"])
