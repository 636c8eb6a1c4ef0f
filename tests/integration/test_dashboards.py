"""Every Grafana panel shows data from the real VictoriaMetrics and VictoriaLogs.

A panel fails when any of its queries errors, or when none of them returns data. The module
first runs the main job (simulated plant -> streams -> sinks) for PIPELINE_S seconds. Template variables are
resolved the way Grafana resolves them (their ``label_values`` queries), preferring a device
with both an anomaly and a RUL prediction so every device panel has something to show.

PromQL goes to VictoriaMetrics' /api/v1/query_range (instant targets: /api/v1/query at the
window's end). VictoriaLogs has no Loki *query* API (v1.52 answers "unsupported path" to
/select/loki/api/v1/query_range), so the small LogQL subset the dashboards use is translated
to LogsQL here: ``{a="x", b=~"y"} | field="v"`` -> ``_stream:{a="x",b=~"y"} field:="v"``, and
``sum [by (l)] (count_over_time(<log query>[d]))`` -> ``<log query> | stats [by (l)] count()``
on /select/logsql/stats_query_range with step d. A query outside the subset fails the test.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "deploy" / "grafana" / "dashboards"
VM = "http://127.0.0.1:8428"
VL = "http://127.0.0.1:9428"
LOKI_UID = "sentio-loki"
# Grafana's $__rate_interval with the 10 s scrape interval: max(4 x scrape, step + scrape).
RATE_INTERVAL = "1m"
MAX_POINTS = 1000  # Grafana's default max data points per panel
# How far back the dashboards look; SENTIO_DASHBOARD_WINDOW_S widens it by hand.
WINDOW_S = float(os.environ.get("SENTIO_DASHBOARD_WINDOW_S", "3600"))
# The first panel test waits for the pipeline run (module fixture) inside its own timeout.
pytestmark = pytest.mark.timeout(400)
PIPELINE_S = 90  # how long the main job runs before the panels are queried
SCRAPE_S = 12  # VictoriaMetrics scrapes the workers every 10 s


@dataclass(frozen=True)
class Target:
    ref: str
    expr: str
    instant: bool


@dataclass(frozen=True)
class Panel:
    dashboard: str
    title: str
    datasource: str
    targets: tuple[Target, ...]

    @property
    def id(self) -> str:
        return f"{self.dashboard}/{self.title}"


def load_dashboards() -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(DASHBOARDS.glob("*.json"))}


def panels() -> list[Panel]:
    return [
        Panel(
            dashboard=name,
            title=panel["title"],
            datasource=panel["datasource"]["uid"],
            targets=tuple(
                Target(t["refId"], t["expr"], bool(t.get("instant"))) for t in panel["targets"]
            ),
        )
        for name, board in load_dashboards().items()
        for panel in board["panels"]
    ]


# -- LogQL subset -> LogsQL --------------------------------------------------------------------

_SELECTOR = re.compile(
    r"^\{(?P<matchers>[^}]*)\}(?P<filters>(?:\s*\|\s*\w+\s*=\s*\"[^\"]*\")*)\s*$"
)
_MATCHER = re.compile(r'\s*(\w+)\s*(=~|!=|!~|=)\s*"([^"]*)"\s*')
_FILTER = re.compile(r'\|\s*(\w+)\s*=\s*"([^"]*)"')
_COUNT = re.compile(
    r"^sum(?:\s+by\s*\((?P<by>[\w\s,]*)\))?\s*\(\s*count_over_time\(\s*(?P<log>.+)"
    r"\[(?P<range>\d+[smh])\]\s*\)\s*\)$"
)


def log_query(logql: str) -> str:
    """``{a="x"} | f="v"`` as LogsQL; ValueError outside the subset."""
    match = _SELECTOR.match(logql.strip())
    if not match:
        raise ValueError(f"not a LogQL stream selector with label filters: {logql}")
    matchers = [m.groups() for m in _MATCHER.finditer(match["matchers"])]
    if not matchers:
        raise ValueError(f"empty stream selector: {logql}")
    stream = ",".join(f'{name}{op}"{value}"' for name, op, value in matchers)
    filters = [f'{name}:="{value}"' for name, value in _FILTER.findall(match["filters"])]
    return " ".join([f"_stream:{{{stream}}}", *filters])


def count_query(logql: str) -> tuple[str, str]:
    """``sum by (l) (count_over_time(<log>[d]))`` as (LogsQL stats query, step d)."""
    match = _COUNT.match(logql.strip())
    if not match:
        raise ValueError(f"not sum [by (...)] (count_over_time(...[d])): {logql}")
    by = [label.strip() for label in (match["by"] or "").split(",") if label.strip()]
    grouping = f"by ({', '.join(by)}) " if by else ""
    return f"{log_query(match['log'])} | stats {grouping}count() hits", match["range"]


# -- running queries ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    start: float
    end: float

    @property
    def step(self) -> int:
        """Seconds between points, as Grafana picks it: the range over its max data points."""
        return max(15, round((self.end - self.start) / MAX_POINTS))


@pytest.fixture(scope="module")
def query_window(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Window]:
    """Runs the main job (`sentio run`: simulated plant -> streams -> sinks) on topics of its
    own for PIPELINE_S, on the workers' standard ports so VictoriaMetrics scrapes their
    counters, then looks at the last WINDOW_S seconds up to now. The anomaly alert rule
    fires on the first anomaly here, so the alert panels have something to show in a short run.
    """
    from click.testing import CliRunner

    from sentio_iot.cli.main import cli

    name = f"t-dashboards-{uuid.uuid4().hex[:8]}"
    state = tmp_path_factory.mktemp("dashboards")
    env = {
        "SENTIO_TOPICS__PREFIX": f"{name}.",
        "SENTIO_STREAMS__APP_ID": name,
        "SENTIO_STREAMS__STATE_DIR": str(state / "streams"),
        "SENTIO_PRODUCER__BUFFER_DIR": str(state / "buffer"),
        "SENTIO_STREAMS__ALERTS__ANOMALY__REPEAT": "1",
    }
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        args = ["run", "--headless", "--devices", "small", "--duration", str(PIPELINE_S)]
        result = CliRunner().invoke(cli, [*args, "--count", "10"])
    assert result.exit_code == 0, result.output
    time.sleep(SCRAPE_S)  # the last scrape of the workers' counters, and indexing
    now = time.time()
    yield Window(now - WINDOW_S, now)


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as client:
        yield client


def promql(http: httpx.Client, expr: str, window: Window, instant: bool) -> list[Any]:
    if instant:
        response = http.get(f"{VM}/api/v1/query", params={"query": expr, "time": window.end})
    else:
        response = http.get(
            f"{VM}/api/v1/query_range",
            params={"query": expr, "start": window.start, "end": window.end, "step": window.step},
        )
    assert response.status_code == 200, f"{expr}: {response.status_code} {response.text}"
    body = response.json()
    assert body["status"] == "success", f"{expr}: {body}"
    result: list[Any] = body["data"]["result"]
    return result


def logql(http: httpx.Client, expr: str, window: Window) -> list[Any]:
    span = {"start": int(window.start), "end": int(window.end)}
    if expr.lstrip().startswith("{"):
        query = log_query(expr)
        response = http.post(f"{VL}/select/logsql/query", data={"query": query, "limit": 5, **span})
        assert response.status_code == 200, f"{query}: {response.status_code} {response.text}"
        return [json.loads(line) for line in response.text.splitlines() if line.strip()]
    query, step = count_query(expr)
    response = http.post(
        f"{VL}/select/logsql/stats_query_range", data={"query": query, "step": step, **span}
    )
    assert response.status_code == 200, f"{query}: {response.status_code} {response.text}"
    result: list[Any] = response.json()["data"]["result"]
    return result


def label_values(http: httpx.Client, definition: str, window: Window) -> list[str]:
    """Grafana's ``label_values([match,] label)`` against VictoriaMetrics."""
    match = re.fullmatch(r"label_values\((?:(?P<match>.+),\s*)?(?P<label>\w+)\)", definition)
    assert match, f"unsupported variable query: {definition}"
    params: dict[str, Any] = {"start": int(window.start), "end": int(window.end)}
    if match["match"]:
        params["match[]"] = match["match"]
    response = http.get(f"{VM}/api/v1/label/{match['label']}/values", params=params)
    assert response.status_code == 200, response.text
    values: list[str] = response.json()["data"]
    return values


def devices_with(http: httpx.Client, selector: str, window: Window) -> set[str]:
    """Devices with a sample of ``selector`` inside the window. VictoriaMetrics answers
    ``label_values`` from its per-day index, so it also names devices of earlier runs that
    day whose points lie outside the window; this asks the samples themselves."""
    span = f"{int(window.end - window.start)}s"
    expr = f"count by (device) (last_over_time({selector}[{span}]))"
    response = http.get(f"{VM}/api/v1/query", params={"query": expr, "time": window.end})
    assert response.status_code == 200, f"{expr}: {response.status_code} {response.text}"
    return {r["metric"]["device"] for r in response.json()["data"]["result"]}


def resolve_variables(http: httpx.Client, board: dict[str, Any], window: Window) -> dict[str, str]:
    """A value per template variable, in order (later ones may use earlier ones); a variable
    without values is left out, so only the panels that use it fail. A device is one with
    points in the window, preferably with both an anomaly score and a RUL prediction."""
    preferred = devices_with(http, "sentio_anomaly_score", window) & devices_with(
        http, "sentio_rul", window
    )
    values: dict[str, str] = {}
    for variable in board["templating"]["list"]:
        definition = substitute(variable["definition"], values)
        candidates = label_values(http, definition, window)
        if variable.get("regex"):
            pattern = re.compile(variable["regex"].strip("/"))
            candidates = [m.group(1) for c in candidates if (m := pattern.match(c))]
        if variable["name"] == "device":
            selector = re.fullmatch(r"label_values\((.+),\s*device\)", definition)
            assert selector, f"device variable without a series selector: {definition}"
            live = devices_with(http, selector[1], window)
            candidates = sorted(
                (c for c in candidates if c in live), key=lambda c: (c not in preferred, c)
            )
        if candidates:
            values[variable["name"]] = candidates[0]
    return values


def substitute(expr: str, values: dict[str, str]) -> str:
    expr = expr.replace("$__rate_interval", RATE_INTERVAL)
    for name, value in values.items():
        expr = expr.replace(f"${{{name}}}", value).replace(f"${name}", value)
    return expr


@pytest.fixture(scope="module")
def variables(http: httpx.Client, query_window: Window) -> dict[str, dict[str, str]]:
    return {
        name: resolve_variables(http, board, query_window)
        for name, board in load_dashboards().items()
    }


# -- the tests ---------------------------------------------------------------------------------


def test_logql_translation() -> None:
    assert log_query('{service_name="sentio", stream="alerts"}') == (
        '_stream:{service_name="sentio",stream="alerts"}'
    )
    assert log_query('{service_name="sentio"} | device_id="pump-1"') == (
        '_stream:{service_name="sentio"} device_id:="pump-1"'
    )
    assert count_query(
        'sum by (event) (count_over_time({service_name="sentio", stream="alerts"}[5m]))'
    ) == ('_stream:{service_name="sentio",stream="alerts"} | stats by (event) count() hits', "5m")
    with pytest.raises(ValueError, match="not a LogQL stream selector"):
        log_query('{service_name="sentio"} |= "error"')


@pytest.mark.parametrize("panel", panels(), ids=lambda p: p.id)
def test_panel_returns_data(
    panel: Panel,
    http: httpx.Client,
    query_window: Window,
    variables: dict[str, dict[str, str]],
) -> None:
    """No query of the panel errors, and the panel shows something: at least one of its
    queries returns data (a counter that never moved, e.g. dead letters, may be absent)."""
    results: dict[str, int] = {}
    for target in panel.targets:
        expr = substitute(target.expr, variables[panel.dashboard])
        assert "$" not in expr, f"{panel.id}: a variable in {expr} has no values"
        if panel.datasource == LOKI_UID:
            results[expr] = len(logql(http, expr, query_window))
        else:
            results[expr] = len(promql(http, expr, query_window, target.instant))
    assert any(results.values()), f"{panel.id}: no data ({variables[panel.dashboard]}): {results}"
