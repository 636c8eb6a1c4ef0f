"""The dashboard in a real browser (Debian's chromium driven by Playwright) against
`sentio api` on the real stack: a wrong password is refused; the first admin signs in and
sees the fleet; a reading produced to Kafka shows on the fleet page within 3 s; the theme
switch works; a phone-sized viewport has no horizontal scrolling; an operator acknowledges
an alert and sees it acknowledged with their name, while a viewer sees no buttons.
Each step saves a screenshot: under the test's tmp_path, or, with SENTIO_UPDATE_SCREENSHOTS=1,
straight over the files docs/dashboard.md shows (docs/dashboard/*.png)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import re
import ssl
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from confluent_kafka import Producer
from cryptography.hazmat.primitives import serialization
from pki import Issued, certificate_authority, issue
from playwright.sync_api import Browser, Page, expect, sync_playwright
from playwright.sync_api import Error as PlaywrightError
from pydantic import SecretStr
from stream_worker import SENTIO, StreamTestbed, free_port, stream_testbed_fixture  # noqa: F401

from sentio_iot.api.dashboard import dashboard_dir
from sentio_iot.api.first_admin import PASSWORD_FILE
from sentio_iot.api.roles import Role
from sentio_iot.api.store import AuthStore
from sentio_iot.api.users import UserStore
from sentio_iot.records import now_us

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
AXE = ROOT / "web" / "node_modules" / "axe-core" / "axe.min.js"
DOC_SHOTS = ROOT / "docs" / "dashboard"  # the screenshots docs/dashboard.md and the README show
PASSWORD = "a long test password"
LIVE_WITHIN_S = 3.0


@pytest.fixture(name="browser")
def browser_fixture() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), "chromium missing: scripts/bootstrap installs it (apt)"
    assert (dashboard_dir() / "index.html").is_file(), "web/dist missing: run scripts/bootstrap"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        yield browser
        browser.close()


@pytest.fixture(name="shots")
def shots_fixture(tmp_path: Path) -> Path:
    """Where a test saves its screenshots: the docs' own files with SENTIO_UPDATE_SCREENSHOTS=1
    (so they are never copied by hand), else the test's tmp dir."""
    update = os.environ.get("SENTIO_UPDATE_SCREENSHOTS", "")
    if update not in ("", "0", "1"):
        pytest.fail(f"SENTIO_UPDATE_SCREENSHOTS={update!r}: set it to 1 to update docs/dashboard")
    folder = DOC_SHOTS if update == "1" else tmp_path / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextmanager
def sentio_api(
    bed: StreamTestbed, users: dict[str, Role], tls: Issued | None = None, ca: Path | None = None
) -> Iterator[tuple[str, str | None]]:
    """`sentio api -c` on the testbed's topics: its URL and the first admin's password
    (None when ``users`` were added first); over HTTPS with ``tls`` (issued by ``ca``)."""
    state = bed.tmp_path / "api"
    for name, role in users.items():
        UserStore(AuthStore(state)).add(name, SecretStr(PASSWORD), role, ("acme",))
    port = free_port()
    data = yaml.safe_load(bed.config_path.read_text())
    data["api"] = {"state_dir": str(state), "port": port}
    if tls is not None:
        data["api"]["tls"] = {"cert_file": str(tls.cert_path), "key_file": str(tls.key_path)}
    config_path = bed.tmp_path / "api.yaml"
    config_path.write_text(yaml.safe_dump(data))
    log_path = bed.tmp_path / "api.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [SENTIO, "api", "-c", str(config_path)], stdout=log, stderr=subprocess.STDOUT
        )
    url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    verify = ssl.create_default_context(cafile=str(ca)) if ca else True
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log_path.read_text()[-3000:]
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/api/health", timeout=2, verify=verify).json()["views_ready"]:
                    break
            assert time.monotonic() < deadline, log_path.read_text()[-3000:]
            time.sleep(0.2)
        password_file = state / PASSWORD_FILE
        admin = password_file.read_text().strip() if password_file.exists() else None
        yield url, admin
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def reading(device: str, value: float, seq: int) -> dict[str, Any]:
    return {
        "device_id": device,
        "ts": now_us(),
        "metrics": [
            {"name": "pressure", "value": value, "text": None, "unit": "bar", "quality": "GOOD"}
        ],
        "labels": {"tenant": "acme", "site": "north", "kind": "press"},
        "source": "simulate",
        "seq": seq,
    }


def serious_violations(page: Page) -> list[str]:
    """axe-core's serious and critical accessibility violations on the page, with where."""
    page.add_script_tag(path=str(AXE))
    found: list[str] = page.evaluate(
        """async () => (await axe.run()).violations
            .filter((v) => v.impact === "serious" || v.impact === "critical")
            .map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`)"""
    )
    return found


def vm_import(url: str, lines: list[str]) -> None:
    """Samples straight into VictoriaMetrics (as the sink writes them: sinks/vm_series.py)."""
    response = httpx.post(f"{url}/api/v1/import/prometheus", content="\n".join(lines) + "\n")
    assert response.status_code == 204, response.text
    assert httpx.get(f"{url}/internal/force_flush").status_code == 200


def sign_in(page: Page, url: str, user: str, password: str) -> None:
    page.goto(f"{url}/")
    page.get_by_label("User").fill(user)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def test_sign_in_fleet_live_theme_and_phone(
    stream_testbed: StreamTestbed, browser: Browser, shots: Path
) -> None:
    bed = stream_testbed
    bed.produce("readings", [("press-0", reading("press-0", 1.25, 0))])
    with sentio_api(bed, users={}) as (url, admin):
        assert admin is not None
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))

        page.goto(f"{url}/")  # keyboard only: Tab from the page's start, Enter submits
        tabs = 0
        while page.evaluate("document.activeElement.name") != "username":
            page.keyboard.press("Tab")
            tabs += 1
            assert tabs < 5, "the user field is not reachable by Tab"
        page.keyboard.type("admin")
        page.keyboard.press("Tab")
        page.keyboard.type("not the password")
        page.keyboard.press("Enter")
        expect(page.get_by_role("alert")).to_contain_text("wrong user name or password")
        page.screenshot(path=shots / "sign-in-refused.png")
        assert serious_violations(page) == []

        sign_in(page, url, "admin", admin)
        row = page.locator('tr[data-device="press-0"]')
        expect(row).to_contain_text("1.25 bar", timeout=15_000)
        expect(row).to_contain_text("ONLINE")
        expect(row).to_contain_text("north")
        expect(page.get_by_test_id("live-state")).to_have_text("live", timeout=15_000)
        page.screenshot(path=shots / "fleet.png")
        assert serious_violations(page) == []

        sent = time.monotonic()
        bed.produce("readings", [("press-0", reading("press-0", 42.5, 1))])
        expect(row).to_contain_text("42.5 bar", timeout=LIVE_WITHIN_S * 1000)
        print(f"fleet page showed a new reading {time.monotonic() - sent:.2f} s after produce")

        bed.produce("readings", [("press-7", reading("press-7", 3.0, 0))])  # a new device
        expect(page.locator('tr[data-device="press-7"]')).to_contain_text("3 bar")
        page.get_by_label("Search devices").fill("press-7")
        expect(page.locator("tbody tr")).to_have_count(1)
        page.get_by_label("Search devices").fill("")

        theme = page.locator("html").get_attribute("data-theme")
        page.get_by_role("button", name="theme").click()
        other = "light" if theme == "dark" else "dark"
        expect(page.locator("html")).to_have_attribute("data-theme", other)
        page.screenshot(path=shots / f"fleet-{other}.png")
        assert serious_violations(page) == []
        page.reload()  # the choice is kept
        expect(page.locator("html")).to_have_attribute("data-theme", other)

        page.get_by_role("link", name="Users").click()  # an admin's page
        page.get_by_label("Name").fill("nina")
        page.get_by_label("Role").select_option("operator")
        page.get_by_label("Tenants").fill("acme")
        page.get_by_role("button", name="Add user").click()
        expect(page.get_by_text("nina added; password (shown once): ")).to_be_visible()
        expect(page.locator('tr[data-user="nina"]')).to_contain_text("operator")
        assert serious_violations(page) == []
        page.get_by_role("link", name="Models").click()
        expect(page.get_by_role("heading", name="Models")).to_be_visible()
        assert serious_violations(page) == []
        page.get_by_role("link", name="Fleet").click()

        page.set_viewport_size({"width": 390, "height": 844})
        expect(page.locator('tr[data-device="press-0"]')).to_be_visible()
        widths = page.evaluate(
            "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
        )
        assert widths[0] <= widths[1], f"horizontal scrolling at 390 px: {widths}"
        for link in page.get_by_role("navigation", name="Main").get_by_role("link").all():
            box = link.bounding_box()  # every page reachable: no link off either edge
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390, box
        # the header row is hidden on a phone: each cell names itself
        cells = page.locator('tr[data-device="press-0"]')
        expect(cells.locator('[data-cell="rul"]')).to_have_text("RUL \u2013")
        expect(cells.locator('[data-cell="alerts"]')).to_have_text("Open alerts 0")
        expect(cells.locator(".cell-label").first).to_be_visible()
        page.screenshot(path=shots / "fleet-phone.png", full_page=True)
        assert serious_violations(page) == []
        page.set_viewport_size({"width": 1280, "height": 800})
        expect(cells.locator(".cell-label").first).to_be_hidden()  # the headers name them
        assert errors == []


def test_the_dashboard_over_https_and_wss(stream_testbed: StreamTestbed, tmp_path: Path) -> None:
    """`sentio api` with api.tls: Chromium, trusting exactly the API's key (its SPKI pin, no
    certificate errors ignored otherwise), signs in over HTTPS and gets live values over WSS."""
    ca = certificate_authority(tmp_path / "pki")
    leaf = issue(ca, tmp_path / "pki", "api")
    spki = leaf.certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    pin = base64.b64encode(hashlib.sha256(spki).digest()).decode()
    bed = stream_testbed
    bed.produce("readings", [("press-0", reading("press-0", 1.25, 0))])
    with (
        sentio_api(bed, users={"vic": Role.VIEWER}, tls=leaf, ca=ca.cert_path) as (url, _admin),
        sync_playwright() as playwright,
    ):
        assert url.startswith("https://")
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", f"--ignore-certificate-errors-spki-list={pin}"],
        )
        try:
            page = browser.new_page()
            sign_in(page, url, "vic", PASSWORD)
            row = page.locator('tr[data-device="press-0"]')
            expect(row).to_contain_text("1.25 bar", timeout=15_000)
            expect(page.get_by_test_id("live-state")).to_have_text("live", timeout=15_000)
            assert page.evaluate("location.protocol") == "https:"
            bed.produce("readings", [("press-0", reading("press-0", 42.5, 1))])
            expect(row).to_contain_text("42.5 bar", timeout=LIVE_WITHIN_S * 1000)  # over wss
        finally:
            browser.close()
        # without the pin the test CA is trusted by nothing: Chromium refuses the page
        plain = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            with pytest.raises(PlaywrightError, match="ERR_CERT_AUTHORITY_INVALID"):
                plain.new_page().goto(f"{url}/")
        finally:
            plain.close()


def test_an_operator_acknowledges_an_alert_and_a_viewer_sees_no_buttons(
    stream_testbed: StreamTestbed, browser: Browser, shots: Path
) -> None:
    bed = stream_testbed.configure(streams={"alerts": {"check_interval_s": 1}})
    worker = bed.start_worker(agents="alerts")
    event = {
        "device_id": "pump-2",
        "ts": now_us(),
        "kind": "OFFLINE",
        "message": "no reading for 30 s",
        "source": "streams",
        "details": {},
        "labels": {"tenant": "acme", "kind": "pump", "site": "south"},
    }
    bed.produce("device-events", [("pump-2", event)])
    with sentio_api(bed, users={"olga": Role.OPERATOR, "vic": Role.VIEWER}) as (url, _admin):
        viewer = browser.new_page()
        sign_in(viewer, url, "vic", PASSWORD)
        viewer.get_by_role("link", name="Alerts").click()
        alert_row = viewer.locator('tr[data-alert="pump-2/device_offline"]')
        expect(alert_row).to_contain_text("FIRING", timeout=60_000)
        assert viewer.locator("main button").count() == 0
        for admin_page in ("Users", "Models"):
            expect(viewer.get_by_role("link", name=admin_page)).to_have_count(0)
        viewer.screenshot(path=shots / "alerts-viewer.png")
        assert serious_violations(viewer) == []

        operator = browser.new_page()
        sign_in(operator, url, "olga", PASSWORD)
        operator.get_by_role("link", name="Alerts").click()
        row = operator.locator('tr[data-alert="pump-2/device_offline"]')
        expect(row).to_contain_text("FIRING", timeout=15_000)
        expect(operator.get_by_role("link", name="Users")).to_have_count(0)
        row.get_by_role("button", name="Acknowledge").click()
        expect(row).to_contain_text("ACKNOWLEDGED by olga", timeout=30_000)
        expect(row.get_by_role("button", name="Acknowledge")).to_have_count(0)
        # the history: who did what, read from the API (the command from alert-commands)
        row.get_by_text("History").click()
        history = row.get_by_role("list", name="History of pump-2 device_offline")
        expect(history.locator("li")).to_have_count(2, timeout=15_000)
        expect(history.locator("li").nth(0)).to_contain_text("fired")
        expect(history.locator("li").nth(1)).to_contain_text("acknowledged by olga")
        operator.screenshot(path=shots / "alerts-operator.png")
        assert serious_violations(operator) == []
        # the viewer's page follows live, still without buttons; the viewer reads the history
        expect(alert_row).to_contain_text("ACKNOWLEDGED by olga", timeout=15_000)
        alert_row.get_by_text("History").click()
        expect(alert_row.get_by_role("listitem").nth(1)).to_contain_text("acknowledged by olga")
        assert viewer.locator("main button").count() == 0
    assert worker.stop() == 0


METRICS = {"pressure": "bar", "temperature": "C"}  # the device's metrics and units


def test_a_device_chart_has_data_for_15_minutes_and_for_an_hour(
    stream_testbed: StreamTestbed, browser: Browser, shots: Path
) -> None:
    bed = stream_testbed
    device = f"{bed.name}-press"  # a name of its own in the shared VictoriaMetrics
    now_s = int(time.time())
    # one sample every 10 s for the last 70 minutes, older than the query's latency offset, of
    # each of the device's metrics: the page charts every one of them
    vm_import(
        bed.config.sinks.victoriametrics.url,
        [
            f'sentio_{metric}{{device="{device}",tenant="acme"}} {i % 7 + k} {(now_s - i * 10) * 1000}'
            for k, metric in enumerate(METRICS)
            for i in range(3, 70 * 6)
        ],
    )
    vm_import(  # the RUL trend: a prediction every minute, falling
        bed.config.sinks.victoriametrics.url,
        [
            f'sentio_rul{{device="{device}",tenant="acme",unit="hours"}} {40 - i / 10} '
            f"{(now_s - 3600 + i * 60) * 1000}"
            for i in range(59)
        ]
        # and one every 30 min for the 7 days before (RUL has no rollups: the long ranges
        # read its raw samples averaged per step)
        + [
            f'sentio_rul{{device="{device}",tenant="acme",unit="hours"}} {40 + j / 10} '
            f"{(now_s - j * 1800) * 1000}"
            for j in range(3, 7 * 48)
        ],
    )
    first = reading(device, 5.0, 0)
    first["metrics"].append(
        {"name": "temperature", "value": 61.0, "text": None, "unit": "C", "quality": "GOOD"}
    )
    bed.produce("readings", [(device, first)])
    anomaly = {
        "device_id": device,
        "metric": "pressure",
        "ts": (now_s - 300) * 1_000_000,
        "value": 6.0,
        "score": 9.0,
        "threshold": 4.0,
        "expected": 3.0,
        "lower": None,
        "upper": None,
        "detector": "zscore",
        "detector_version": "1",
        "labels": {"tenant": "acme", "site": "north", "kind": "press"},
    }
    bed.produce("anomalies", [(device, anomaly)])
    with sentio_api(bed, users={"vic": Role.VIEWER}) as (url, _admin):
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        sign_in(page, url, "vic", PASSWORD)
        page.locator(f'tr[data-device="{device}"] a').click()
        charts = page.locator("figure.metric-chart")
        expect(charts).to_have_count(len(METRICS), timeout=15_000)
        assert [c.get_attribute("data-metric") for c in charts.all()] == sorted(METRICS)
        points: dict[tuple[str, str], int] = {}
        for label in ("15 min", "1 h"):
            page.get_by_role("group", name="Range").get_by_role("button", name=label).click()
            expect(page.get_by_role("button", name=label)).to_have_attribute("aria-pressed", "true")
            step = 1 if label == "15 min" else 2
            for metric, unit in METRICS.items():  # every metric's chart has data for the range
                figure = page.locator(f'figure[data-metric="{metric}"]')
                figure.scroll_into_view_if_needed()  # charts off screen load when they near it
                info = figure.get_by_test_id("series-info")
                expect(info).to_contain_text(f"from raw, step {step}s", timeout=15_000)
                count = int(info.inner_text().split()[0])
                points[metric, label] = count
                name = f"{metric} chart ({unit}), {count} point{'' if count == 1 else 's'}"
                # the anomaly on its metric's chart only
                marks = "1 anomaly" if metric == "pressure" else "0 anomalies"
                chart = figure.get_by_role("img", name=name)
                expect(chart).to_have_attribute("aria-label", f"{name}, {marks}")
                expect(chart.locator("canvas")).to_be_visible()
            # the RUL trend's unit is the model's (the sentio_rul series' unit label)
            rul_chart = page.get_by_role("img", name="RUL chart (hours)")
            expect(rul_chart).to_be_visible()
            expect(rul_chart.locator(".u-legend")).to_contain_text("RUL (hours)")
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=shots / "device.png")
        # the RUL trend over 7 days: the mean of its samples per step, one every 30 min
        page.get_by_role("group", name="Range").get_by_role("button", name="7 d").click()
        rul_info = page.get_by_test_id("rul-info")
        expect(rul_info).to_contain_text("from raw_averaged, step 1210s", timeout=15_000)
        rul_points = int(rul_info.inner_text().split()[0])
        assert rul_points >= 300, rul_points
        expect(page.get_by_role("img", name="RUL chart (hours)")).to_be_visible()
        page.get_by_role("group", name="Range").get_by_role("button", name="30 d").click()
        expect(rul_info).to_contain_text("from raw_averaged, step 5184s", timeout=15_000)
        page.screenshot(path=shots / "device-rul-30d.png")
        # a sample every 10 s, filled between samples by the query's lookback: more points for
        # the longer range, none missing at the start of the 15 minutes
        for metric in METRICS:
            assert points[metric, "15 min"] >= 800, points
            assert points[metric, "1 h"] > points[metric, "15 min"], points
        assert serious_violations(page) == []
        # on a phone the charts stack, one per row, with no sideways scrolling
        page.set_viewport_size({"width": 390, "height": 844})
        page.get_by_role("group", name="Range").get_by_role("button", name="1 h").focus()
        page.keyboard.press("Shift+Tab")
        page.keyboard.press("Tab")
        page.keyboard.press("Enter")  # the range buttons work by keyboard
        expect(page.get_by_role("button", name="1 h")).to_have_attribute("aria-pressed", "true")
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        boxes = [c.bounding_box() for c in charts.all()]
        assert all(b is not None and b["x"] >= 0 and b["x"] + b["width"] <= 390 for b in boxes), (
            boxes
        )
        page.screenshot(path=shots / "device-phone.png", full_page=True)
        assert serious_violations(page) == []


PERF_DEVICES = 1000
PERF_SECONDS = 5.0


def test_fleet_frame_time_with_1000_live_devices_is_reported(
    stream_testbed: StreamTestbed, browser: Browser
) -> None:
    """Frame times (requestAnimationFrame deltas) while every device gets a reading every
    0.5 s; reported, not asserted (the issue asks for p95 under 50 ms as a target)."""
    bed = stream_testbed
    devices = [f"dev-{i:04d}" for i in range(PERF_DEVICES)]
    bed.produce("readings", [(d, reading(d, 0.0, 0)) for d in devices])
    serde = bed.serde("readings")
    with sentio_api(bed, users={"vic": Role.VIEWER}) as (url, _admin):
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        sign_in(page, url, "vic", PASSWORD)
        expect(page.get_by_text(f"{PERF_DEVICES} of {PERF_DEVICES} devices")).to_be_visible(
            timeout=15_000
        )
        page.evaluate(
            """() => { window.frames_ms = []; let last = performance.now();
                const tick = (now) => { window.frames_ms.push(now - last); last = now;
                                        requestAnimationFrame(tick); };
                requestAnimationFrame(tick); }"""
        )
        producer = Producer({"bootstrap.servers": bed.config.kafka.bootstrap_servers})
        topic = bed.topic("readings")
        rounds = int(PERF_SECONDS / 0.5)
        started = time.monotonic()
        for n in range(1, rounds + 1):
            for d in devices:
                producer.produce(topic, key=d.encode(), value=serde.encode(reading(d, n, n)))
            producer.poll(0)
            time.sleep(0.5)
        assert producer.flush(30) == 0
        rate = rounds * PERF_DEVICES / (time.monotonic() - started)
        row = page.locator('tr[data-device="dev-0000"]')
        expect(row).to_contain_text(f"{rounds} bar", timeout=15_000)
        frames: list[float] = page.evaluate("window.frames_ms")
    frames.sort()
    p95 = frames[int(len(frames) * 0.95)]
    print(
        f"fleet page, {PERF_DEVICES} devices, {rate:.0f} readings/s for {rounds} rounds: "
        f"{len(frames)} frames, p50 {frames[len(frames) // 2]:.1f} ms, "
        f"p95 {p95:.1f} ms, max {frames[-1]:.1f} ms"
    )
    assert len(frames) > 10  # the page kept drawing


def test_maintenance_anomalies_and_pipeline_pages_follow_the_topics(
    stream_testbed: StreamTestbed, browser: Browser, shots: Path
) -> None:
    bed = stream_testbed
    labels = {"tenant": "acme", "site": "north", "kind": "press"}
    ts = now_us()

    def rul(device: str, hours: float) -> dict[str, Any]:
        return {
            "device_id": device,
            "ts": ts,
            "rul": hours,
            "rul_unit": "hours",
            "lower": None,
            "upper": None,
            "model_name": "plant",
            "model_version": "1",
            "window_size": 30,
            "labels": labels,
        }

    bed.produce("rul", [("press-1", rul("press-1", 30.0)), ("press-2", rul("press-2", 4.0))])
    with sentio_api(bed, users={"vic": Role.VIEWER}) as (url, _admin):
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        sign_in(page, url, "vic", PASSWORD)
        page.get_by_role("link", name="Maintenance").click()
        rows = page.locator("tr[data-rul]")
        expect(rows).to_have_count(2, timeout=15_000)
        assert [r.get_attribute("data-rul") for r in rows.all()] == ["press-2", "press-1"]
        end_ms = ts / 1000 + 4 * 3600 * 1000
        shown = page.evaluate(f"new Date({end_ms}).toLocaleString()")
        expect(rows.first).to_contain_text(shown)  # the projected end: predicted + 4 h
        bed.produce("rul", [("press-1", rul("press-1", 1.5))])  # live: press-1 moves up
        expect(rows.first).to_have_attribute("data-rul", "press-1", timeout=LIVE_WITHIN_S * 1000)
        page.screenshot(path=shots / "maintenance.png")
        assert serious_violations(page) == []

        page.get_by_role("link", name="Anomalies").click()
        expect(page.get_by_text("No anomalies.")).to_be_visible()
        anomaly = {
            "device_id": "press-2",
            "metric": "pressure",
            "ts": now_us(),
            "value": 9.75,
            "score": 7.5,
            "threshold": 4.0,
            "expected": 2.5,
            "lower": None,
            "upper": None,
            "detector": "zscore",
            "detector_version": "1",
            "labels": labels,
        }
        critical = {**anomaly, "device_id": "press-1", "score": 9.0, "ts": now_us() - 60_000_000}
        bed.produce("anomalies", [("press-2", anomaly), ("press-1", critical)])
        expect(page.locator("ol.timeline li li").first).to_contain_text(
            "press-2 pressure = 9.750 (expected 2.500) · score 7.50 / 4.00 · zscore · major",
            timeout=LIVE_WITHIN_S * 1000,
        )
        # the timeline chart draws what the API returns: a marker per anomaly, on its device's
        # row, coloured by severity (score 9 of 4: critical; 7.5 of 4: major)
        login = {"username": "vic", "password": PASSWORD}
        token = httpx.post(f"{url}/api/v1/auth/login", json=login).json()["access_token"]
        served = httpx.get(
            f"{url}/api/v1/anomalies",
            params={"limit": 500},
            headers={"Authorization": f"Bearer {token}"},
        ).json()["items"]
        assert sorted(a["device_id"] for a in served) == ["press-1", "press-2"], served
        chart = page.get_by_role("img", name="Anomaly timeline: 2 anomalies on 2 devices")
        expect(chart).to_be_visible()
        plot = chart.locator(".uplot")
        expect(plot).to_have_attribute("data-drawn", str(len(served)))
        marks = [m.split(",") for m in (plot.get_attribute("data-markers") or "").split()]
        assert [(m[2], m[3]) for m in marks] == [("critical", "press-1"), ("major", "press-2")]
        assert float(marks[0][0]) < float(marks[1][0])  # older to the left
        assert float(marks[0][1]) > float(marks[1][1])  # press-1's row below press-2's
        page.screenshot(path=shots / "anomalies.png")
        assert serious_violations(page) == []
        # a click on a marker opens its device
        chart.locator(".u-over").click(position={"x": float(marks[0][0]), "y": float(marks[0][1])})
        expect(page).to_have_url(f"{url}/#/device/press-1")
        expect(page.get_by_role("heading", name="press-1", exact=True)).to_be_visible()
        page.go_back()
        # on a phone the timeline fits the screen (redrawn at its width), no sideways scrolling
        page.set_viewport_size({"width": 390, "height": 844})
        box = page.locator(".anomaly-timeline canvas").bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390, box
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        assert serious_violations(page) == []
        page.set_viewport_size({"width": 1280, "height": 800})

        polls: list[str] = []
        page.on("request", lambda r: polls.append(r.url) if "/health/pipeline" in r.url else None)
        page.get_by_role("link", name="Pipeline").click()
        expect(page.get_by_text("Views ready")).to_be_visible(timeout=15_000)
        updated = page.get_by_test_id("pipeline-updated")
        expect(updated).to_contain_text("live, updated")
        first = updated.inner_text()
        # the API measures every 5 s and pushes each measurement over the WebSocket
        expect(updated).not_to_have_text(first, timeout=15_000)
        assert len(polls) == 1, polls  # loaded once; then pushed, not polled
        page.screenshot(path=shots / "pipeline.png")
        assert serious_violations(page) == []


HAND_SHOTS = {"fleet-run.png"}  # from a `sentio run` by hand, described in docs/dashboard.md


def test_every_screenshot_the_docs_show_is_written_by_a_browser_test() -> None:
    """SENTIO_UPDATE_SCREENSHOTS=1 rewrites them all: none is copied by hand."""
    source = Path(__file__).read_text()
    written = set(re.findall(r'shots / "([\w-]+\.png)"', source))
    if 'shots / f"fleet-{other}.png"' in source:  # the theme the switch turned to
        written |= {"fleet-dark.png", "fleet-light.png"}
    shown: set[str] = set()
    for doc in (ROOT / "docs" / "dashboard.md", ROOT / "README.md"):
        shown |= set(re.findall(r"dashboard/([\w-]+\.png)\)", doc.read_text()))
    assert shown - HAND_SHOTS <= written, sorted(shown - HAND_SHOTS - written)
    assert all((DOC_SHOTS / name).is_file() for name in shown), sorted(shown)
