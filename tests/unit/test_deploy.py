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
from compose_render import MissingVariableError, Rendering, published, render, volume_targets

from sentio_iot.cli.main import cli
from sentio_iot.config import SentioConfig, load_config
from sentio_iot.plugins import connector_names, load_connector_plugin, load_sink_plugin

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
    return {name: s for name, s in services().items() if s.get("image") == SENTIO_IMAGE}


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
    workers = {n: s for n, s in sentio_services().items() if n != "topics"}
    assert len(workers) == 7
    for name, service in workers.items():
        assert service["restart"] == "unless-stopped", name
        assert service["depends_on"]["topics"] == {"condition": "service_completed_successfully"}, (
            name
        )
        assert "healthcheck" in service, name
    assert sentio_services()["topics"]["restart"] == "no"


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
    kafka = services()["kafka"]["environment"]
    assert kafka["KAFKA_ADVERTISED_LISTENERS"] == "PLAINTEXT://kafka:9092"
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
    mounts = 0
    for name, service in services().items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name}: {source} does not exist"
                mounts += 1
            else:
                assert source in declared, f"{name}: volume {source} is not declared"
    assert mounts >= 14


# -- compose: rendering, doors and locks (issue 17) ------------------------------------------

INIT_SCRIPT = DEPLOY / "init" / "init.sh"
MOSQUITTO_CONF = DEPLOY / "mosquitto" / "mosquitto.conf"


def in_volume(service: dict[str, Any], volume: str, path: str) -> str:
    """``path`` inside a named volume, as ``service`` sees it (mount target + path)."""
    return f"{volume_targets(service)[volume]}/{path}"


def init_script_writes(path_in_init: str) -> bool:
    """Whether deploy/init/init.sh generates the file at ``path_in_init``."""
    text = INIT_SCRIPT.read_text()
    return re.search(rf"^secret {re.escape(path_in_init)}$", text, re.MULTILINE) is not None


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
    assert "$" not in json.dumps(rendered["services"]).replace("$$", "")
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
    assert kafka["environment"]["KAFKA_LOG_DIRS"] == volume_targets(kafka)["kafka-data"]
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


def test_mosquitto_listens_on_the_network_with_passwords_and_acls() -> None:
    conf = mosquitto_conf()
    assert conf["listener"] == "1883 0.0.0.0"
    assert conf["allow_anonymous"] == "false"
    mosquitto = services()["mosquitto"]
    targets = volume_targets(mosquitto)
    assert targets["./deploy/mosquitto/mosquitto.conf"] == "/mosquitto/config/mosquitto.conf"
    assert targets["./deploy/mosquitto/acl"] == conf["acl_file"]
    # The password file is the one init generates, seen through the secrets volume.
    assert conf["password_file"] == in_volume(mosquitto, "secrets", "mosquitto/passwd")
    assert volume_targets(services()["init"])["secrets"] == "/secrets"
    text = INIT_SCRIPT.read_text()
    assert "mv /secrets/mosquitto/passwd.new /secrets/mosquitto/passwd" in text
    acl_users = re.findall(r"^user (\S+)$", (DEPLOY / "mosquitto" / "acl").read_text(), re.M)
    [init_users] = re.findall(r"^for user in ([\w ]+); do$", text, re.MULTILINE)
    assert acl_users == init_users.split() == ["devices", "sentio"]
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
                continue
            assert not (is_secret_key(key.lower()) or "PASSWORD" in key), (name, key, value)
        assert "admin/admin" not in json.dumps(service), name
    grafana = services()["grafana"]
    env = grafana["environment"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert env["GF_SECURITY_ADMIN_PASSWORD__FILE"] == in_volume(
        grafana, "secrets", "grafana/admin-password"
    )
    assert volume_targets(grafana)["secrets"].startswith("/run/secrets/")
    assert init_script_writes("/secrets/grafana/admin-password")
    assert 'secret "/secrets/mosquitto/$user-password"' in INIT_SCRIPT.read_text()
    # Every service that reads a generated secret waits for init; the deployment config holds none.
    for name in ("grafana", "mosquitto"):
        assert services()[name]["depends_on"]["init"]["condition"] == (
            "service_completed_successfully"
        )
    assert not re.search(r"password|token|secret", (DEPLOY / "sentio.yaml").read_text(), re.I)


def test_the_init_script_runs_as_root_without_network_and_is_mounted() -> None:
    init = services()["init"]
    assert init["user"] == "0:0" and init["restart"] == "no"
    assert init["entrypoint"] == ["/bin/sh", "/init.sh"]
    assert volume_targets(init)["./deploy/init/init.sh"] == "/init.sh"
    assert INIT_SCRIPT.read_text().startswith("#!/bin/sh\n")
    assert "set -eu" in INIT_SCRIPT.read_text() and "umask 077" in INIT_SCRIPT.read_text()


def test_grafana_mounts_the_provisioning_and_the_dashboards() -> None:
    mounts = dict(v.split(":")[:2] for v in services()["grafana"]["volumes"])
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
