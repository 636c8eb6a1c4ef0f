"""docker-compose.yml, the Dockerfile and Grafana provisioning, checked as files (no Docker here).

The compose file is rendered as Compose renders it with its defaults (compose_render.py).
Every Sentio service runs a real ``sentio`` command; ports and URLs agree with the default
configuration and deploy/sentio.yaml; every mounted file exists; only Grafana and the API are
published; data, schemas and models live on volumes; no password has a default; every
dashboard panel names a provisioned data source and only series of the worker/sink contract.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from click.testing import CliRunner
from compose_render import (
    MissingVariableError,
    Mount,
    Rendering,
    mounts,
    published,
    render,
    volume_targets,
)
from pydantic import SecretStr

from sentio_iot.cli.main import cli
from sentio_iot.config import SentioConfig, load_config
from sentio_iot.plugins import connector_names, load_connector_plugin, load_sink_plugin
from sentio_iot.secret_values import secret_value

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
CONFIG_IN_CONTAINER = "/etc/sentio/sentio.yaml"
SENTIO_IMAGE = "sentio-iot:latest"
# The worker contract: what each worker serves /health and /metrics on.
PRODUCER_PORT = 9464
STREAM_PORT = 6066
SINK_PORTS = {"victoriametrics": 9471, "loki": 9472, "tempo": 9473, "alertmanager": 9475}
# Series of the contract (common brief): VictoriaMetrics series the VM sink writes and the
# counters the workers export. Reading/rollup series are sentio_<metric>[_<stat>].
CONTRACT_SERIES = {
    "sentio_anomaly_score",
    "sentio_anomaly_value",
    "sentio_anomaly_expected",
    "sentio_anomaly_lower",
    "sentio_anomaly_upper",
    "sentio_rul",
    "sentio_rul_lower",
    "sentio_rul_upper",
    "sentio_alert_firing",
    "sentio_producer_readings_published_total",
    "sentio_producer_buffer_messages",
    "sentio_producer_kafka_connected",
    "sentio_stream_events_total",
    "sentio_stream_emitted_total",
    "sentio_stream_deadletter_total",
    "sentio_stream_lag",
    "sentio_stream_table_keys",
    "sentio_stream_anomalies_total",
    "sentio_stream_alerts_total",
    "sentio_stream_rul_predictions_total",
    "sentio_sink_records_written_total",
    "sentio_sink_batches_total",
    "sentio_sink_retries_total",
    "sentio_sink_deadletter_total",
    "sentio_sink_lag",
    "sentio_sink_write_seconds_sum",
    "sentio_sink_write_seconds_count",
}
LOKI_LABELS = {"service_name", "stream", "tenant", "site", "kind", "level", "event"}
LOKI_METADATA = {"device_id", "alert_id", "alert_type", "metric", "trace_id"}


def compose() -> dict[str, Any]:
    return render()[0]


def services() -> dict[str, Any]:
    return compose()["services"]


def sentio_services() -> dict[str, Any]:
    """The services that run a ``sentio`` command (init runs its script in the same image)."""
    return {
        name: s
        for name, s in services().items()
        if s.get("image") == SENTIO_IMAGE and name != "init"
    }


def deploy_config() -> SentioConfig:
    return load_config(DEPLOY / "sentio.yaml")


def health_port(service: dict[str, Any]) -> int:
    """The port of the /health URL in a service's health check."""
    test = " ".join(service["healthcheck"]["test"])
    match = re.search(r"http://127\.0\.0\.1:(\d+)/health", test)
    assert match, test
    return int(match.group(1))


def dashboards() -> dict[str, dict[str, Any]]:
    return {
        path.name: json.loads(path.read_text())
        for path in sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
    }


def datasources() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for path in sorted((DEPLOY / "grafana" / "provisioning" / "datasources").glob("*.yaml")):
        found += yaml.safe_load(path.read_text())["datasources"]
    return found


def panel_queries(board: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(panel title, datasource uid, query) of every target of every panel."""
    return [
        (panel["title"], target["datasource"]["uid"], target["expr"])
        for panel in board["panels"]
        for target in panel["targets"]
    ]


# -- compose: the Sentio workers -------------------------------------------------------------


def test_compose_parses_with_every_part_of_the_stack() -> None:
    assert {
        "kafka",
        "registry",
        "victoriametrics",
        "loki",
        "tempo",
        "grafana",
        "alertmanager",
        "mosquitto",
        "init",
        "kafka-access",
        "topics",
        "producer-simulate",
        "streams",
        "sink-victoriametrics",
        "sink-loki",
        "sink-tempo",
        "sink-alertmanager",
        "api",
    } <= set(services())
    assert set(sentio_services()) == {
        "kafka-access",
        "topics",
        "producer-simulate",
        "streams",
        "sink-victoriametrics",
        "sink-loki",
        "sink-tempo",
        "sink-alertmanager",
        "api",
    }


@pytest.mark.parametrize("name", sorted(sentio_services()))
def test_every_sentio_service_runs_a_real_command(name: str) -> None:
    argv = sentio_services()[name]["command"]
    result = CliRunner().invoke(cli, [*argv, "--help"])
    assert result.exit_code == 0, f"sentio {' '.join(argv)}: {result.output}"
    assert argv[argv.index("-c") + 1] == CONFIG_IN_CONTAINER
    # --help does not look at a command's arguments: the named connector or sink must exist.
    if argv[0] == "produce":
        assert argv[1] in connector_names()
        load_connector_plugin(argv[1]).load_connector()
    if argv[0] == "sink":
        plugin = load_sink_plugin(argv[1])
        plugin.load_writer()
        assert plugin.name == argv[1]


@pytest.mark.parametrize("name", sorted(sentio_services()))
def test_every_sentio_service_mounts_the_deployment_config(name: str) -> None:
    service = sentio_services()[name]
    assert f"./deploy/sentio.yaml:{CONFIG_IN_CONTAINER}:ro" in service["volumes"]
    assert service["build"] == "."
    assert service["depends_on"]["kafka"] == {"condition": "service_healthy"}


def test_long_running_workers_restart_and_report_health() -> None:
    one_shots = {"kafka-access", "topics"}
    workers = {n: s for n, s in sentio_services().items() if n not in one_shots}
    assert len(workers) == 7
    for name, service in workers.items():
        assert service["restart"] == "unless-stopped", name
        assert service["depends_on"]["topics"] == {"condition": "service_completed_successfully"}, (
            name
        )
        assert "healthcheck" in service, name
    for name in one_shots:
        assert sentio_services()[name]["restart"] == "no"
    assert sentio_services()["topics"]["depends_on"]["kafka-access"] == {
        "condition": "service_completed_successfully"
    }


def test_health_checks_use_the_ports_of_the_contract_and_the_config() -> None:
    config = deploy_config()
    workers = sentio_services()
    assert health_port(workers["producer-simulate"]) == PRODUCER_PORT == config.producer.health_port
    assert health_port(workers["streams"]) == STREAM_PORT == config.streams.web_port
    for sink, port in SINK_PORTS.items():
        assert health_port(workers[f"sink-{sink}"]) == port
        assert getattr(config.sinks, sink).health_port == port
    assert health_port(workers["api"]) == config.api.port == 8000
    assert published(workers["api"]) == {8000: 8000} and config.api.host == "0.0.0.0"
    # Other containers (VictoriaMetrics scraping, health checks) reach the workers.
    assert config.producer.health_host == "0.0.0.0"
    assert config.streams.web_host == "0.0.0.0"
    assert config.sinks.health_host == "0.0.0.0"


def test_default_config_uses_the_contract_ports() -> None:
    defaults = SentioConfig()
    assert defaults.producer.health_port == PRODUCER_PORT
    assert defaults.streams.web_port == STREAM_PORT
    for sink, port in SINK_PORTS.items():
        assert getattr(defaults.sinks, sink).health_port == port


def test_the_deployment_config_is_valid() -> None:
    result = CliRunner().invoke(cli, ["config", "validate", str(DEPLOY / "sentio.yaml")])
    assert result.exit_code == 0, result.output
    assert deploy_config().producers["simulate"][0]["devices"] == 200


# -- compose: URLs between services and towards the host -------------------------------------


def test_kafka_address_matches_the_broker_listener() -> None:
    assert kafka_properties()["advertised.listeners"] == "SASL_SSL://kafka:9092"
    assert deploy_config().kafka.bootstrap_servers == "kafka:9092"


def test_registry_url_matches_the_registry_service() -> None:
    url = urlsplit(deploy_config().schema_registry.url)
    default = urlsplit(SentioConfig().schema_registry.url)
    assert (url.hostname, url.port, url.path) == ("registry", 8080, default.path)
    assert published(services()["registry"]) == {}


def test_sink_urls_match_the_backend_services() -> None:
    config = deploy_config()
    vm = urlsplit(config.sinks.victoriametrics.url)
    assert (vm.hostname, vm.port) == ("victoriametrics", 8428)
    loki = urlsplit(config.sinks.loki.url)
    loki_port = yaml.safe_load((DEPLOY / "loki" / "loki.yaml").read_text())["server"]
    assert (loki.hostname, loki.port, loki.path) == ("loki", 3100, "/loki/api/v1/push")
    assert loki_port["http_listen_port"] == 3100
    tempo = urlsplit(config.sinks.tempo.url)
    assert (tempo.hostname, tempo.port, tempo.path) == ("tempo", 4318, "/v1/traces")
    assert urlsplit(SentioConfig().sinks.tempo.url).path == tempo.path


def test_tempo_receives_otlp_http_on_the_compose_network() -> None:
    tempo = yaml.safe_load((DEPLOY / "tempo" / "tempo.yaml").read_text())
    endpoint = tempo["distributor"]["receivers"]["otlp"]["protocols"]["http"]["endpoint"]
    assert endpoint == "0.0.0.0:4318"
    assert urlsplit(deploy_config().sinks.tempo.url).port == 4318


def test_victoriametrics_scrapes_every_worker() -> None:
    vm = services()["victoriametrics"]
    assert "-promscrape.config=/etc/victoriametrics/scrape.yml" in vm["command"]
    scrape = yaml.safe_load((DEPLOY / "victoriametrics" / "scrape.yml").read_text())
    targets: set[tuple[str, int]] = set()
    for job in scrape["scrape_configs"]:
        for static in job.get("static_configs", []):
            for target in static["targets"]:
                host, port = target.split(":")
                targets.add((host, int(port)))
        for dns in job.get("dns_sd_configs", []):
            targets |= {(name, dns["port"]) for name in dns["names"]}
    expected = {("producer-simulate", PRODUCER_PORT), ("streams", STREAM_PORT)}
    expected |= {(f"sink-{sink}", port) for sink, port in SINK_PORTS.items()}
    expected.add(("alertmanager", 9093))
    assert targets == expected
    assert {host for host, _ in targets} <= set(services())


# -- compose: files and volumes --------------------------------------------------------------


def test_every_mounted_file_exists_and_every_named_volume_is_declared() -> None:
    declared = set(compose()["volumes"])
    found = 0
    for name, service in services().items():
        for mount in mounts(service):
            if mount.source.startswith("./"):
                assert (ROOT / mount.source).exists(), f"{name}: {mount.source} does not exist"
                found += 1
            else:
                assert mount.source in declared, f"{name}: volume {mount.source} is not declared"
    assert found >= 15


# -- compose: rendering, doors and locks (issue 17) ------------------------------------------

INIT_SCRIPT = DEPLOY / "init" / "init.sh"
MOSQUITTO_CONF = DEPLOY / "mosquitto" / "mosquitto.conf"


KAFKA_PROPERTIES = DEPLOY / "kafka" / "server.properties"
KAFKA_START = DEPLOY / "kafka" / "start.sh"
SECRETS_TARGET = "/run/secrets/sentio"
# Keycloak's folder (its realm and its admin's password) is where --import-realm reads.
KEYCLOAK_IMPORT = "/opt/keycloak/data/import"
REGISTRY_SETTING = "SENTIO_SCHEMA_REGISTRY__BASIC_AUTH__FILE"


def kafka_properties() -> dict[str, str]:
    """deploy/kafka/server.properties as Kafka reads it (key=value, # comments)."""
    pairs = [
        line.split("=", 1)
        for line in KAFKA_PROPERTIES.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    keys = [key for key, _ in pairs]
    assert len(keys) == len(set(keys)), "a key twice"
    return dict(pairs)


def secrets_mount(service: dict[str, Any]) -> Mount:
    """The service's one mount of the secrets volume."""
    [mount] = [m for m in mounts(service) if m.source == "secrets"]
    return mount


def secret_file(service: dict[str, Any], path: str) -> str:
    """The file ``path`` (in the container) as ``<folder of the volume>/<name>``, checking it
    lies in the service's own folder of the secrets volume."""
    mount = secrets_mount(service)
    assert path.startswith(f"{mount.target}/"), path
    return f"{mount.subpath}/{path[len(mount.target) + 1 :]}"


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The secrets volume as `init` fills it (`sentio compose secrets`), in a tmp folder."""
    root = tmp_path_factory.mktemp("compose-secrets") / "secrets"
    result = CliRunner().invoke(cli, ["compose", "secrets", str(root)])
    assert result.exit_code == 0, result.output
    return root


def mosquitto_conf() -> dict[str, str]:
    lines = [line.split(None, 1) for line in MOSQUITTO_CONF.read_text().splitlines()]
    return {words[0]: words[1] for words in lines if words and not words[0].startswith("#")}


def test_interpolation_follows_compose() -> None:
    env = {"SET": "value", "EMPTY": ""}
    rendering = Rendering(env)
    assert rendering.text("${SET:-d} ${EMPTY:-d} ${UNSET:-d}") == "value d d"
    assert rendering.text("${SET-d} ${EMPTY-d} ${UNSET-d}") == "value  d"
    assert rendering.text("${SET:+x} ${EMPTY:+x} ${EMPTY+x} ${UNSET+x}") == "x  x "
    assert rendering.text("$$SET ${UNSET:-${SET}} $SET") == "$SET value value"
    assert rendering.text("${SET:?needed}") == "value"
    with pytest.raises(MissingVariableError, match="EMPTY is missing a value: set it"):
        rendering.text("${EMPTY:?set it}")
    assert rendering.text("${NOPE}") == "" and rendering.unset == {"NOPE"}


def test_compose_renders_with_its_defaults_and_every_variable_has_one() -> None:
    rendered, unset = render()
    assert unset == set()
    # What is left is a shell's ($$ in the file): command substitutions in health checks and
    # Keycloak's entrypoint, its "$$@" and its health check's $$status.
    assert not re.search(r"\$(?!\(|@|status\b)", json.dumps(rendered["services"]))
    moved, _ = render({"GRAFANA_PORT": "3300", "SENTIO_API_PORT": "18000"})
    assert published(moved["services"]["grafana"]) == {3300: 3000}
    assert published(moved["services"]["api"]) == {18000: 8000}


def test_only_grafana_and_the_api_are_published_on_the_host() -> None:
    rendered = compose()
    exposed = {name for name, service in services().items() if service.get("ports")}
    assert exposed == {"grafana", "api"}
    assert published(services()["grafana"]) == {3000: 3000}
    assert published(services()["api"]) == {8000: 8000}
    # Everything else is on the internal network only (no route out, nothing published);
    # Alertmanager also joins the outer one to send notifications.
    assert rendered["networks"]["backend"] == {"internal": True}
    assert not (rendered["networks"]["frontend"] or {}).get("internal")
    for name, service in services().items():
        assert "network_mode" not in service or service["network_mode"] == "none", name
        if name == "init":
            assert service["network_mode"] == "none"
            continue
        assert "backend" in service["networks"], name
        outside = set(service["networks"]) - {"backend"}
        assert outside <= {"frontend"}, name
        assert not outside or name in {"grafana", "api", "alertmanager"}, name
        assert "expose" not in service, name


def test_kafka_keeps_its_data_on_its_volume() -> None:
    kafka = services()["kafka"]
    assert kafka_properties()["log.dirs"] == volume_targets(kafka)["kafka-data"]
    assert "kafka-data" in compose()["volumes"]


def test_registry_keeps_schemas_in_an_h2_file_on_its_volume_like_the_local_stack() -> None:
    from sentio_iot.stack.paths import StackPaths
    from sentio_iot.stack.registry import RegistryService

    registry = services()["registry"]
    env = registry["environment"]
    assert (env["APICURIO_STORAGE_KIND"], env["APICURIO_STORAGE_SQL_KIND"]) == ("sql", "h2")
    data = volume_targets(registry)["registry-data"]
    local = RegistryService(SentioConfig().stack, StackPaths(Path("/unused")), data_dir=Path(data))
    assert env["APICURIO_DATASOURCE_URL"] == local.jdbc_url
    assert env["APICURIO_DATASOURCE_URL"] == f"jdbc:h2:file:{data}/registry;WRITE_DELAY=0"
    # The image runs as uid 1001: init hands it the new volume before it starts.
    init = services()["init"]
    assert volume_targets(init)["registry-data"] == "/volumes/registry"
    assert "chown -R 1001:0 /volumes/registry" in INIT_SCRIPT.read_text()
    assert registry["depends_on"]["init"] == {"condition": "service_completed_successfully"}


def test_mosquitto_listens_on_the_network_with_passwords_and_acls(generated: Path) -> None:
    from sentio_iot.stack.compose_secrets import MQTT_USERS

    conf = mosquitto_conf()
    assert conf["listener"] == "1883 0.0.0.0"
    assert conf["allow_anonymous"] == "false"
    mosquitto = services()["mosquitto"]
    targets = volume_targets(mosquitto)
    assert targets["./deploy/mosquitto/mosquitto.conf"] == "/mosquitto/config/mosquitto.conf"
    assert targets["./deploy/mosquitto/acl"] == conf["acl_file"]
    # The password file is the one init generates, in Mosquitto's folder of the volume.
    assert secret_file(mosquitto, conf["password_file"]) == "mosquitto/passwd"
    passwd = (generated / "mosquitto" / "passwd").read_text().splitlines()
    assert [line.split(":")[0] for line in passwd] == list(MQTT_USERS)
    assert all(line.split(":", 1)[1].startswith("$7$") for line in passwd)  # hashes only
    acl_users = re.findall(r"^user (\S+)$", (DEPLOY / "mosquitto" / "acl").read_text(), re.M)
    assert acl_users == list(MQTT_USERS) == ["devices", "sentio"]
    assert mosquitto["depends_on"]["init"] == {"condition": "service_completed_successfully"}


def test_the_model_store_is_on_a_volume_shared_by_the_stream_workers_and_the_api() -> None:
    store = str(deploy_config().streams.rul.resolved_store_dir())
    assert store == "/var/lib/sentio/models"
    for name in ("streams", "api"):
        assert volume_targets(services()[name])["models"] == store, name
    # A new named volume copies the image's folder and its owner: the image creates it.
    assert store in (ROOT / "Dockerfile").read_text()


def test_no_password_has_a_default() -> None:
    from sentio_iot.secret_values import is_secret_key

    for name, service in services().items():
        for key, value in (service.get("environment") or {}).items():
            if key.endswith("__FILE"):
                assert str(value).startswith(f"{SECRETS_TARGET}/"), (name, key, value)
                continue
            if str(value) in {"true", "false"}:  # e.g. the registry's ..._CREDENTIALS_ENABLED
                continue
            assert not (is_secret_key(key.lower()) or "PASSWORD" in key), (name, key, value)
        assert "admin/admin" not in json.dumps(service), name
    grafana = services()["grafana"]
    env = grafana["environment"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert secret_file(grafana, env["GF_SECURITY_ADMIN_PASSWORD__FILE"]) == "grafana/admin-password"
    # Every service that reads a generated secret waits for init (the workers through
    # kafka -> kafka-access -> topics); the deployment config holds none.
    for name in ("grafana", "mosquitto", "kafka", "victoriametrics", "alertmanager"):
        assert services()[name]["depends_on"]["init"]["condition"] == (
            "service_completed_successfully"
        )
    config = deploy_config()
    assert config.kafka.sasl_username is None and config.kafka.sasl_password is None
    assert config.sinks.victoriametrics.auth.basic_auth is None
    assert config.sinks.alertmanager.auth.basic_auth is None
    settings = [
        line for line in (DEPLOY / "sentio.yaml").read_text().splitlines() if "#" not in line
    ]
    assert not re.search(r"password|token|auth", "\n".join(settings), re.I)


def test_no_password_literal_anywhere_in_the_deployment(generated: Path) -> None:
    """The generated passwords are in the secrets volume only: no deployment file names one,
    and every flag or setting that takes a password takes a file."""
    passwords = {
        path.read_text().strip()
        for path in generated.rglob("*")
        if path.is_file() and (path.name.endswith("password") or path.parent.name == "passwords")
    }
    assert len(passwords) >= 8
    texts = [(ROOT / "docker-compose.yml").read_text()]
    texts += [path.read_text() for path in DEPLOY.rglob("*") if path.is_file()]
    for text in texts:
        assert not any(password in text for password in passwords)
    words = json.dumps(services())
    # A value, or a shell reading it from a file (Keycloak's entrypoint: "$(< file)").
    pattern = r'(?i)[\w.-]*password[\w.-]*[=:] ?(?:\\"\$\(< )?([^\s\",]*)'
    secret_folders = ("file:///run/secrets/", "/run/secrets/", f"{KEYCLOAK_IMPORT}/")
    for match in re.finditer(pattern, words):
        value = match.group(1)
        assert value == "" or value.startswith(secret_folders), match[0]
    assert (
        "$__file{"
        in (DEPLOY / "grafana" / "provisioning" / "datasources" / "sentio.yaml").read_text()
    )


def test_the_init_script_runs_as_root_without_network_and_is_mounted() -> None:
    init = services()["init"]
    assert init["user"] == "0:0" and init["restart"] == "no"
    assert init["image"] == SENTIO_IMAGE and init["build"] == "."
    assert init["entrypoint"] == ["/bin/sh", "/init.sh"]
    assert volume_targets(init)["./deploy/init/init.sh"] == "/init.sh"
    assert volume_targets(init)["secrets"] == "/secrets"
    text = INIT_SCRIPT.read_text()
    assert text.startswith("#!/bin/sh\n")
    assert "set -eu" in text and "umask 077" in text
    assert re.search(r"^sentio compose secrets /secrets$", text, re.MULTILINE)
    result = CliRunner().invoke(cli, ["compose", "secrets", "--help"])
    assert result.exit_code == 0, result.output


# -- compose: Kafka, the backends and the workers behind credentials (issue 17) ----------------


def test_kafka_is_locked_as_the_local_secure_stack_locks_its_own() -> None:
    """deploy/kafka/server.properties holds what `sentio stack up --secure` sets, addresses
    and file locations aside; start.sh adds the broker's login from the secrets volume."""
    from sentio_iot.stack.kafka_secure import BROKER_USER, MECHANISM, SecureKafkaFiles
    from sentio_iot.stack.paths import StackPaths

    properties = kafka_properties()
    files = SecureKafkaFiles(StackPaths(Path("/unused")))
    files.password = lambda user: "unused"  # type: ignore[method-assign]
    local = files.server_properties(9092, 9093)
    jaas = "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config"
    moved = {"listeners", "advertised.listeners", jaas}
    moved |= {"ssl.keystore.location", "ssl.truststore.location"}
    assert {k: v for k, v in local.items() if k not in moved} == {
        k: properties[k] for k in local if k not in moved
    }
    # Clients reach SASL_SSL only; the controller listener speaks TLS to the broker alone.
    assert properties["listeners"] == "SASL_SSL://:9092,CONTROLLER://:9093"
    assert properties["advertised.listeners"] == "SASL_SSL://kafka:9092"
    assert properties["listener.security.protocol.map"] == "CONTROLLER:SSL,SASL_SSL:SASL_SSL"
    assert "PLAINTEXT" not in KAFKA_PROPERTIES.read_text()
    assert properties["sasl.enabled.mechanisms"] == MECHANISM == "SCRAM-SHA-512"
    assert properties["listener.name.controller.ssl.client.auth"] == "required"
    assert properties["authorizer.class.name"].endswith("StandardAuthorizer")
    assert properties["allow.everyone.if.no.acl.found"] == "false"
    assert properties["super.users"] == f"User:{BROKER_USER}"
    assert properties["controller.quorum.voters"] == "1@kafka:9093"
    # The key, certificate and CA are in Kafka's folder of the secrets volume.
    kafka = services()["kafka"]
    assert secret_file(kafka, properties["ssl.keystore.location"]) == "kafka/broker-keystore.pem"
    assert secret_file(kafka, properties["ssl.truststore.location"]) == "kafka/ca.pem"
    assert kafka["entrypoint"] == ["/bin/bash", "/etc/sentio/kafka/start.sh"]
    assert volume_targets(kafka)["./deploy/kafka"] == "/etc/sentio/kafka"
    assert "ports" not in kafka and "kafka" not in published(kafka)
    start = KAFKA_START.read_text()
    assert f'username=\\"{BROKER_USER}\\" password=\\"$password\\"' in start
    assert "--add-scram" in start and f"{MECHANISM}=[name={BROKER_USER}" in start
    assert '"@$work/format.args"' in start  # the password never on a command line
    assert "--ignore-formatted" in start and 'rm -f "$work/format.args"' in start
    assert f"{SECRETS_TARGET}" in start and "broker.password" in start and "cluster-id" in start
    # start.sh's defaults are the container's paths: the mounts, and the health check's file.
    defaults = dict(re.findall(r"^(\w+)=\$\{\w+:-([^}]+)\}$", start, re.MULTILINE))
    assert defaults == {
        "kafka_home": "/opt/kafka",
        "secrets": secrets_mount(kafka).target,
        "template": f"{volume_targets(kafka)['./deploy/kafka']}/server.properties",
        "work": "/tmp/sentio-kafka",
    }
    check = " ".join(kafka["healthcheck"]["test"])
    assert f"--command-config {defaults['work']}/client.properties" in check
    assert "--bootstrap-server kafka:9092" in check


def test_every_service_mounts_only_its_own_folder_of_the_secrets_volume(generated: Path) -> None:
    from sentio_iot.stack.compose_secrets import ComposeSecrets

    folders = set(ComposeSecrets(generated).service_files())
    readers = {}
    for name, service in services().items():
        found = [m for m in mounts(service) if m.source == "secrets"]
        if name == "init":
            assert found == [Mount("secrets", "/secrets", False)]
            continue
        if not found:
            continue
        [mount] = found
        target = KEYCLOAK_IMPORT if name == "keycloak" else SECRETS_TARGET
        assert (mount.subpath, mount.target, mount.read_only) == (name, target, True)
        readers[name] = mount.subpath
    assert set(readers.values()) == folders
    assert {p.name for p in generated.iterdir() if p.is_dir()} == folders | {"pki", "passwords"}


def test_each_worker_logs_in_to_kafka_as_its_own_role(
    generated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sentio_iot.stack.compose_secrets import (
        KAFKA_CA,
        KAFKA_PASSWORD,
        WORKERS,
        basic_auth_file,
    )

    assert set(WORKERS) == set(sentio_services()) - {"kafka-access"}
    config = deploy_config()
    assert (config.kafka.security_protocol, config.kafka.sasl_mechanism) == (
        "SASL_SSL",
        "SCRAM-SHA-512",
    )
    ca = config.kafka.extra["ssl.ca.location"]
    assert secret_value(ca if isinstance(ca, str | SecretStr) else None) == (
        f"{SECRETS_TARGET}/{KAFKA_CA}"
    )
    settings = {
        "victoriametrics": {
            "SINKS__VICTORIAMETRICS__AUTH__BASIC_AUTH",
            "API__HISTORY__AUTH__BASIC_AUTH",
        },
        "alertmanager": {"SINKS__ALERTMANAGER__AUTH__BASIC_AUTH"},
    }
    roles = set()
    for name, worker in WORKERS.items():
        service = services()[name]
        env = service["environment"]
        assert env["SENTIO_KAFKA__SASL_USERNAME"] == worker.role, name
        password_file = env["SENTIO_KAFKA__SASL_PASSWORD__FILE"]
        assert secret_file(service, password_file) == f"{name}/{KAFKA_PASSWORD}"
        roles.add(worker.role)
        http = {
            key
            for key in env
            if key
            not in {
                "SENTIO_KAFKA__SASL_USERNAME",
                "SENTIO_KAFKA__SASL_PASSWORD__FILE",
                REGISTRY_SETTING,  # test_each_worker_logs_in_to_the_registry_as_its_own_role
            }
        }
        expected = set()
        for backend in worker.http:
            keys = {
                k
                for k in http
                if k.removeprefix("SENTIO_").removesuffix("__FILE") in settings[backend]
            }
            assert keys, (name, backend)
            for key in keys:
                assert secret_file(service, env[key]) == f"{name}/{basic_auth_file(backend)}"
            expected |= keys
        assert http == expected, name
        # The worker's configuration, with its environment pointed at the generated folder.
        for key, value in env.items():
            monkeypatch.setenv(key, str(value).replace(SECRETS_TARGET, str(generated / name)))
        loaded = deploy_config()
        kafka_password = (generated / name / KAFKA_PASSWORD).read_text()
        role_password = (generated / "pki" / "credentials" / f"{worker.role}.password").read_text()
        assert loaded.kafka.sasl_username == worker.role
        assert loaded.kafka.sasl_password is not None
        assert loaded.kafka.sasl_password.get_secret_value() == kafka_password == role_password
        if "victoriametrics" in worker.http:
            vm = (generated / "passwords" / "victoriametrics.password").read_text()
            auth = loaded.api.history.auth if name == "api" else loaded.sinks.victoriametrics.auth
            assert auth.basic_auth is not None
            assert auth.basic_auth.get_secret_value() == f"sentio:{vm}"
        for key in env:
            monkeypatch.delenv(key)
    assert roles == {"admin", "producer", "streams", "sink", "api"}
    assert services()["api"]["environment"]["SENTIO_KAFKA__SASL_USERNAME"] == "api"


def test_kafka_access_runs_as_the_broker_user_with_the_roles_passwords(generated: Path) -> None:
    from sentio_iot.stack.compose_secrets import ACCESS_SERVICE
    from sentio_iot.stack.kafka_secure import BROKER_USER, ROLES

    access = services()[ACCESS_SERVICE]
    argv = access["command"]
    assert argv[:2] == ["compose", "kafka-access"]
    assert argv[argv.index("--secrets") + 1] == secrets_mount(access).target == SECRETS_TARGET
    folder = generated / ACCESS_SERVICE
    names = {p.name for p in (folder / "credentials").iterdir()}
    assert names == {f"{user}.password" for user in (BROKER_USER, *ROLES)}
    assert (folder / "tls" / "ca.pem").read_text() == (generated / "pki/tls/ca.pem").read_text()
    assert not (folder / "tls" / "ca.key").exists()
    assert access["depends_on"]["kafka"] == {"condition": "service_healthy"}


def test_keycloak_runs_unpublished_and_imports_the_generated_realm(
    generated: Path, tmp_path: Path
) -> None:
    """As keycloak.py runs it for `sentio stack up --secure`: production mode on plain HTTP,
    a local cache, H2 without a network listener on its volume, the realm imported at start;
    the admin's password read from its file, never written in the deployment."""
    import subprocess

    from sentio_iot.config import StackSettings
    from sentio_iot.stack.compose_secrets import KEYCLOAK_ADMIN_PASSWORD, OWNERS
    from sentio_iot.stack.keycloak import REALM_FILE
    from sentio_iot.stack.registry_secure import ADMIN_USER, REALM, RegistrySecrets

    keycloak = services()["keycloak"]
    assert keycloak["image"] == f"quay.io/keycloak/keycloak:{StackSettings().keycloak_version}"
    assert keycloak["image"].endswith(":26.5.6")
    assert keycloak["networks"] == ["backend"] and "ports" not in keycloak
    assert compose()["networks"]["backend"]["internal"] is True
    command = keycloak["command"]
    assert command[0] == "start" and "--import-realm" in command
    assert {"--cache=local", "--http-enabled=true", "--hostname-strict=false"} <= set(command)
    [db_url] = [arg.split("=", 1)[1] for arg in command if arg.startswith("--db-url=")]
    assert "AUTO_SERVER" not in db_url  # no H2 TCP listener (dev-file's default URL has one)
    data = volume_targets(keycloak)["keycloak-data"]
    assert db_url.startswith(f"jdbc:h2:file:{data}/")
    assert "keycloak-data" in compose()["volumes"]
    init = services()["init"]
    assert volume_targets(init)["keycloak-data"] == "/volumes/keycloak"
    assert f"chown -R {':'.join(map(str, OWNERS['keycloak']))} /volumes/keycloak" in (
        INIT_SCRIPT.read_text()
    )
    assert keycloak["depends_on"]["init"] == {"condition": "service_completed_successfully"}
    # Its folder of the secrets volume is where --import-realm reads: the realm, the password.
    mount = secrets_mount(keycloak)
    assert (mount.subpath, mount.target, mount.read_only) == ("keycloak", KEYCLOAK_IMPORT, True)
    folder = generated / "keycloak"
    assert {p.name for p in folder.iterdir()} == {REALM_FILE, KEYCLOAK_ADMIN_PASSWORD}
    assert REALM_FILE.endswith("-realm.json")  # the only files --import-realm reads
    registry = RegistrySecrets(generated / "passwords")
    assert (folder / REALM_FILE).read_text() == registry.realm_json()
    assert json.loads((folder / REALM_FILE).read_text())["realm"] == REALM
    assert (folder / KEYCLOAK_ADMIN_PASSWORD).read_text() == registry.admin_password()
    assert keycloak["environment"] == {"KC_BOOTSTRAP_ADMIN_USERNAME": ADMIN_USER}
    # The entrypoint, run by a real bash with kc.sh swapped for a script that shows what it
    # got: the password from the file in the environment, the command's arguments unchanged.
    entrypoint = keycloak["entrypoint"]
    assert entrypoint[:2] == ["/bin/bash", "-c"]
    shown = tmp_path / "kc.sh"
    shown.write_text('#!/bin/sh\nprintf "%s\\n" "$KC_BOOTSTRAP_ADMIN_PASSWORD" "$@"\n')
    shown.chmod(0o700)
    script = entrypoint[2].replace(KEYCLOAK_IMPORT, str(folder))
    script = script.replace("/opt/keycloak/bin/kc.sh", str(shown))
    assert script != entrypoint[2] and str(shown) in script
    run = subprocess.run(
        ["bash", "-c", script, *entrypoint[3:], *command],
        capture_output=True,
        text=True,
        timeout=10,
        env={"PATH": "/usr/bin:/bin"},
        check=True,
    )
    assert run.stdout.splitlines() == [registry.admin_password(), *command]
    check = " ".join(keycloak["healthcheck"]["test"])
    assert f"/realms/{REALM}/.well-known/openid-configuration" in check
    assert "/dev/tcp/127.0.0.1/8080" in check


def test_the_registry_asks_keycloak_as_the_local_secure_stack_does() -> None:
    """The registry's OIDC settings are registry_secure.oidc_properties, the ones the local
    secure registry gets as -D flags, as Quarkus' environment variables; only the address of
    Keycloak differs."""
    from sentio_iot.config import StackSettings
    from sentio_iot.stack.paths import StackPaths
    from sentio_iot.stack.registry import RegistryService
    from sentio_iot.stack.registry_secure import REALM, oidc_properties, property_env

    registry = services()["registry"]
    env = registry["environment"]
    realm = f"http://keycloak:8080/realms/{REALM}"
    expected = {property_env(name): value for name, value in oidc_properties(realm).items()}
    assert {key: env[key] for key in expected} == expected
    assert expected["QUARKUS_OIDC_TENANT_ENABLED"] == "true"
    assert expected["APICURIO_AUTHN_BASIC_CLIENT_CREDENTIALS_ENABLED"] == "true"
    assert expected["APICURIO_AUTH_ANONYMOUS_READ_ACCESS_ENABLED"] == "false"
    # No other authentication setting than those.
    auth = {k for k in env if k.startswith(("QUARKUS_OIDC", "APICURIO_AUTH"))}
    assert auth == set(expected)
    # The local secure registry's flags: the same properties, its own Keycloak's address.
    local = RegistryService(StackSettings(), StackPaths(Path("/unused")))
    flags = dict(flag.removeprefix("-D").split("=", 1) for flag in local._secure_flags())
    local_realm = flags["quarkus.oidc.auth-server-url"]
    assert local_realm.endswith(f"/realms/{REALM}") and local_realm != realm
    assert {
        property_env(name): value.replace(local_realm, realm) for name, value in flags.items()
    } == (expected)
    # Keycloak answers on the backend network at that address once healthy.
    keycloak = services()["keycloak"]
    assert urlsplit(realm).hostname == "keycloak" and "backend" in keycloak["networks"]
    assert "--http-enabled=true" in keycloak["command"]  # 8080: Keycloak's HTTP port
    assert registry["depends_on"]["keycloak"] == {"condition": "service_healthy"}
    # Its health check asks /health/ready, which answers anyone.
    assert "http://localhost:8080/health/ready" in " ".join(registry["healthcheck"]["test"])
    assert "ports" not in registry


def test_each_worker_logs_in_to_the_registry_as_its_own_role(
    generated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sentio_iot.stack.compose_secrets import (
        ACCESS_ROLE,
        ACCESS_SERVICE,
        REGISTRY_BASIC_AUTH,
        WORKERS,
    )
    from sentio_iot.stack.keycloak import REALM_FILE
    from sentio_iot.stack.registry_secure import ROLE_GRANTS, client_id

    realm = json.loads((generated / "keycloak" / REALM_FILE).read_text())
    client_secrets = {c["clientId"]: c["secret"] for c in realm["clients"]}
    assert set(client_secrets) == {client_id(role) for role in ROLE_GRANTS}
    roles = {name: worker.role for name, worker in WORKERS.items()}
    roles[ACCESS_SERVICE] = ACCESS_ROLE
    assert roles["topics"] == roles[ACCESS_SERVICE] == "admin"
    assert roles["producer-simulate"] == "producer" and roles["streams"] == "streams"
    assert roles["api"] == "api"
    assert {roles[n] for n in roles if n.startswith("sink-")} == {"sink"}
    assert set(roles) == set(sentio_services())
    for name, role in roles.items():
        service = services()[name]
        env = service["environment"]
        assert secret_file(service, env[REGISTRY_SETTING]) == f"{name}/{REGISTRY_BASIC_AUTH}"
        for key, value in env.items():
            monkeypatch.setenv(key, str(value).replace(SECRETS_TARGET, str(generated / name)))
        loaded = deploy_config().schema_registry.basic_auth
        assert loaded is not None
        user, secret = loaded.get_secret_value().split(":", 1)
        assert (user, secret) == (client_id(role), client_secrets[client_id(role)]), name
        others = {s for c, s in client_secrets.items() if c != client_id(role)}
        for path in (generated / name).rglob("*"):
            if path.is_file():
                assert not any(other in path.read_text() for other in others), (name, path)
        for key in env:
            monkeypatch.delenv(key)
    # Grafana and the backends never call the registry.
    for name, service in services().items():
        if name not in roles:
            assert REGISTRY_SETTING not in (service.get("environment") or {}), name
            if name != "keycloak":
                assert not any(s in json.dumps(service) for s in client_secrets.values())


def test_victoriametrics_asks_for_basic_auth_and_its_clients_have_it(generated: Path) -> None:
    vm = services()["victoriametrics"]
    flags = dict(arg.split("=", 1) for arg in vm["command"] if "=" in arg)
    assert flags["-httpAuth.username"] == "sentio"
    file = flags["-httpAuth.password"].removeprefix("file://")
    assert flags["-httpAuth.password"].startswith("file:///")
    assert secret_file(vm, file) == "victoriametrics/httpauth-password"
    password = (generated / "passwords" / "victoriametrics.password").read_text()
    assert (generated / "victoriametrics" / "httpauth-password").read_text() == password
    for name in ("sink-victoriametrics", "api"):
        basic = (generated / name / "victoriametrics-basic-auth").read_text()
        assert basic == f"sentio:{password}"
    # Grafana's data source logs in with its copy; /health (the health check) answers anyone.
    by_type = {ds["type"]: ds for ds in datasources()}
    grafana = services()["grafana"]
    for kind, backend in (("prometheus", "victoriametrics"), ("alertmanager", "alertmanager")):
        source = by_type[kind]
        assert (source["basicAuth"], source["basicAuthUser"]) == (True, "sentio")
        match = re.fullmatch(r"\$__file\{(.+)\}", source["secureJsonData"]["basicAuthPassword"])
        assert match, source
        assert secret_file(grafana, match.group(1)) == f"grafana/{backend}-password"
        stored = (generated / "passwords" / f"{backend}.password").read_text()
        assert (generated / "grafana" / f"{backend}-password").read_text() == stored
    assert "/health" in " ".join(vm["healthcheck"]["test"])


def test_alertmanager_asks_for_basic_auth_everywhere_and_its_clients_have_it(
    generated: Path,
) -> None:
    import bcrypt

    am = services()["alertmanager"]
    [flag] = [arg for arg in am["command"] if arg.startswith("--web.config.file=")]
    assert secret_file(am, flag.split("=", 1)[1]) == "alertmanager/web.yml"
    web = yaml.safe_load((generated / "alertmanager" / "web.yml").read_text())
    [(user, hashed)] = web["basic_auth_users"].items()
    password = (generated / "passwords" / "alertmanager.password").read_text()
    assert user == "sentio" and bcrypt.checkpw(password.encode(), hashed.encode())
    assert password not in (generated / "alertmanager" / "web.yml").read_text()
    check = " ".join(am["healthcheck"]["test"])
    assert "$(cat /run/secrets/sentio/password)" in check and "/-/ready" in check
    assert (generated / "alertmanager" / "password").read_text() == password
    for name in ("sink-alertmanager", "api"):
        assert (generated / name / "alertmanager-basic-auth").read_text() == f"sentio:{password}"
    # VictoriaMetrics scrapes Alertmanager's /metrics with the password of its own folder.
    scrape = yaml.safe_load((DEPLOY / "victoriametrics" / "scrape.yml").read_text())
    [job] = [j for j in scrape["scrape_configs"] if j["job_name"] == "alertmanager"]
    assert job["basic_auth"]["username"] == "sentio"
    vm = services()["victoriametrics"]
    assert (
        secret_file(vm, job["basic_auth"]["password_file"])
        == "victoriametrics/alertmanager-password"
    )
    assert (generated / "victoriametrics" / "alertmanager-password").read_text() == password


def test_grafana_mounts_the_provisioning_and_the_dashboards() -> None:
    mounts = volume_targets(services()["grafana"])
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    providers = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "dashboards" / "sentio.yaml").read_text()
    )["providers"]
    assert [p["options"]["path"] for p in providers] == [mounts["./deploy/grafana/dashboards"]]


def test_dockerfile_builds_one_unprivileged_image_with_the_sentio_entrypoint() -> None:
    text = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM (\S+)(?: AS (\S+))?$", text, re.MULTILINE)
    assert stages == [("node:20-slim", "web"), ("python:3.11-slim", "")]
    assert 'ENTRYPOINT ["sentio"]' in text
    assert re.search(r"^USER sentio$", text, re.MULTILINE)
    copied = re.findall(r"^COPY (?!--from)(\S+)", text, re.MULTILINE)
    ignored = set((ROOT / ".dockerignore").read_text().split())
    for source in copied:
        assert (ROOT / source).exists(), source
        assert source not in ignored
    for package_dir in ("sentio_iot", "producers", "streams", "sinks", "schemas", "web"):
        assert package_dir in copied
    # the dashboard is built from its lockfile in the image, never copied from this machine
    assert {"web/node_modules", "web/dist"} <= ignored
    assert "COPY --from=web /web/dist /opt/sentio/dashboard" in text
    assert "SENTIO_DASHBOARD_DIR=/opt/sentio/dashboard" in text


# -- Grafana ---------------------------------------------------------------------------------


def test_data_sources_link_traces_and_logs() -> None:
    by_type = {ds["type"]: ds for ds in datasources()}
    assert set(by_type) == {"prometheus", "loki", "tempo", "alertmanager"}
    assert by_type["alertmanager"]["url"] == "http://alertmanager:9093"
    assert by_type["alertmanager"]["jsonData"]["implementation"] == "prometheus"
    assert by_type["prometheus"]["url"] == "http://victoriametrics:8428"
    assert by_type["loki"]["url"] == "http://loki:3100"
    assert by_type["tempo"]["url"] == "http://tempo:3200"
    to_logs = by_type["tempo"]["jsonData"]["tracesToLogsV2"]
    assert to_logs["datasourceUid"] == by_type["loki"]["uid"]
    assert "trace_id=" in to_logs["query"]
    [derived] = by_type["loki"]["jsonData"]["derivedFields"]
    assert derived["datasourceUid"] == by_type["tempo"]["uid"]
    assert (derived["matcherType"], derived["matcherRegex"]) == ("label", "trace_id")


def test_dashboards_cover_every_view() -> None:
    assert set(dashboards()) == {
        "fleet-overview.json",
        "device-detail.json",
        "anomalies.json",
        "predictive-maintenance.json",
        "alerts.json",
        "pipeline-health.json",
    }
    uids = [board["uid"] for board in dashboards().values()]
    assert len(uids) == len(set(uids))


@pytest.mark.parametrize("name", sorted(dashboards()))
def test_every_panel_names_a_provisioned_data_source(name: str) -> None:
    board = dashboards()[name]
    uids = {ds["uid"]: ds["type"] for ds in datasources()}
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        assert panel["targets"], panel["title"]
        assert uids[panel["datasource"]["uid"]] == panel["datasource"]["type"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"], panel["title"]
    for variable in board["templating"]["list"]:
        assert variable["datasource"]["uid"] in uids


@pytest.mark.parametrize("name", sorted(dashboards()))
def test_every_query_uses_series_and_labels_of_the_contract(name: str) -> None:
    loki_uids = {ds["uid"] for ds in datasources() if ds["type"] == "loki"}
    for title, uid, query in panel_queries(dashboards()[name]):
        if uid in loki_uids:
            selector = re.search(r"\{([^}]*)\}", query)
            assert selector, (title, query)
            labels = set(re.findall(r"(\w+)\s*=", selector.group(1)))
            assert labels <= LOKI_LABELS, (title, labels - LOKI_LABELS)
            after = query[selector.end() :]
            assert set(re.findall(r"\|\s*(\w+)\s*=", after)) <= LOKI_METADATA, (title, query)
            continue
        for series in re.findall(r"\bsentio_[a-z0-9_]+", query):
            assert series in CONTRACT_SERIES, (title, series)
