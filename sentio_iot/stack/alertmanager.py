"""Alertmanager: routes, groups, silences and sends Sentio's alerts; built from source with go.

``go install github.com/prometheus/alertmanager/cmd/alertmanager@<version>`` fails on the
module as the proxy serves it: ``ui/web.go`` embeds ``ui/app/dist``, the web UI's build
output, which is not in the module. So the module is downloaded (``go mod download``),
copied, given a one-page placeholder UI and built there with ``go build``. The API (v2),
which is all Sentio uses, is complete.

Its default port 9093 is Kafka's controller: it listens on ``stack.alertmanager_port``, and
without gossip (``--cluster.listen-address=``). The generated configuration routes every
alert to one webhook (``stack.alertmanager_webhook_url``), grouped by alert type and site,
with short waits that suit a laptop and tests; deploy/alertmanager/alertmanager.yml shows
routes to email, Slack and PagerDuty.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import time
from pathlib import Path

from sentio_iot.errors import StackError
from sentio_iot.stack.alertmanager_secure import SecureAlertmanagerFiles
from sentio_iot.stack.install import go_binary, run_tool
from sentio_iot.stack.prerequisites import find_program, missing
from sentio_iot.stack.probes import HOST, Health, http_ok
from sentio_iot.stack.service import Progress, Service

MODULE = "github.com/prometheus/alertmanager"
BINARY = "alertmanager"
VERSION_FLAG = "-X github.com/prometheus/common/version.Version="  # what --version reports
PLACEHOLDER_UI = (
    "<!doctype html><title>Alertmanager</title>"
    "<p>Built by sentio without its web UI: use the API (/api/v2) or Grafana.</p>\n"
)


def render_alertmanager_yml(webhook_url: str) -> str:
    """One route to one webhook; waits short enough for a laptop and for tests."""
    return (
        "# Written by `sentio stack up`; edits are overwritten at the next start.\n"
        "route:\n"
        "  receiver: sentio-webhook\n"
        "  group_by: [alertname, site]\n"
        "  group_wait: 2s\n"
        "  group_interval: 4s\n"
        "  repeat_interval: 1h\n"
        "receivers:\n"
        "  - name: sentio-webhook\n"
        "    webhook_configs:\n"
        f"      - url: {json.dumps(webhook_url)}\n"
        "        send_resolved: true\n"
    )


def go_build_module(go: Path, version: str, work: Path, bin_dir: Path) -> Path:
    """Download Alertmanager's module, add the placeholder UI, build the binary into bin_dir."""
    listing = run_tool(
        [str(go), "mod", "download", "-json", f"{MODULE}@{version}"],
        what=f"go mod download {MODULE}@{version}",
    )
    try:
        # The first JSON object of the output (run_tool appends stderr to stdout).
        found, _end = json.JSONDecoder().raw_decode(listing[listing.index("{") :])
        source = Path(found["Dir"])
    except (ValueError, KeyError) as exc:
        raise StackError(
            f"go mod download {MODULE}@{version}: no module folder in its answer"
        ) from exc
    tree = work / f"alertmanager-{version}"
    shutil.rmtree(tree, ignore_errors=True)
    shutil.copytree(source, tree)
    for folder, _dirs, files in os.walk(tree):  # the module cache is read-only
        os.chmod(folder, stat.S_IRWXU)
        for name in files:
            os.chmod(Path(folder) / name, stat.S_IRUSR | stat.S_IWUSR)
    for app in ("elm", "mantine"):
        dist = tree / "ui" / "app" / "dist" / app
        dist.mkdir(parents=True, exist_ok=True)
        (dist / "index.html").write_text(PLACEHOLDER_UI, encoding="utf-8")
    bin_dir.mkdir(parents=True, exist_ok=True)
    stamp = bin_dir / f"{BINARY}.version"
    stamp.unlink(missing_ok=True)
    path = bin_dir / BINARY
    flags = f"-ldflags={VERSION_FLAG}{version.lstrip('v')}"
    run_tool(
        [str(go), "build", "-trimpath", flags, "-o", str(path), "./cmd/alertmanager"],
        what=f"go build {MODULE}/cmd/alertmanager@{version}",
        cwd=tree,
    )
    shutil.rmtree(tree, ignore_errors=True)
    if not path.is_file():
        raise StackError(f"go build of {MODULE}@{version} did not produce {path}")
    stamp.write_text(version + "\n", encoding="utf-8")
    return path


class AlertmanagerService(Service):
    name = "alertmanager"
    secure = False  # `sentio stack up --secure`: basic auth (set by Stack)

    @property
    def secure_files(self) -> SecureAlertmanagerFiles:
        return SecureAlertmanagerFiles(self.paths)

    @property
    def address(self) -> str:
        return f"http://{HOST}:{self.settings.alertmanager_port}"

    def ports(self) -> list[tuple[int, str]]:
        return [(self.settings.alertmanager_port, "stack.alertmanager_port")]

    def problems(self) -> list[str]:
        if self._built() or find_program("go") is not None:
            return []
        return [missing("go", "to build alertmanager")]

    def install(self, progress: Progress) -> None:
        if self._built():
            return
        go = find_program("go")
        assert go is not None  # problems() said so
        version = self.settings.alertmanager_version
        progress(f"alertmanager: building {BINARY} {version} with go build")
        started = time.monotonic()
        go_build_module(go, version, self.paths.home / "build", self.paths.bin)
        progress(f"alertmanager: built in {time.monotonic() - started:.1f} s")

    @property
    def conf_path(self) -> Path:
        return self.paths.conf / "alertmanager.yml"

    def prepare(self, progress: Progress) -> None:
        self.paths.conf.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.conf_path.write_text(
            render_alertmanager_yml(self.settings.alertmanager_webhook_url), encoding="utf-8"
        )
        if self.secure:
            self.secure_files.ensure()
        else:
            self.secure_files.web_config.unlink(missing_ok=True)

    def command(self) -> list[str]:
        return [
            str(self.paths.bin / BINARY),
            f"--config.file={self.conf_path}",
            f"--storage.path={self.data_dir}",
            f"--web.listen-address={HOST}:{self.settings.alertmanager_port}",
            f"--web.external-url={self.address}",
            "--cluster.listen-address=",
            *([f"--web.config.file={self.secure_files.web_config}"] if self.secure else []),
        ]

    def check(self) -> Health:
        if not self._running_secure():
            return http_ok(self.settings.alertmanager_port, "/-/ready")
        headers = {"Authorization": self.secure_files.authorization()}
        health = http_ok(self.settings.alertmanager_port, "/-/ready", headers=headers)
        return Health(health.healthy, f"basic auth; {health.detail}")

    def after_start(self, progress: Progress) -> None:
        if self.secure and not self._running_secure():
            raise StackError(
                "alertmanager is running without --secure",
                fix="stop it with `sentio stack down`, then run `sentio stack up --secure`",
            )
        if self.secure:
            progress(
                "alertmanager: basic auth, user sentio; the sink's setting in "
                f"{self.secure_files.client_env} (mode 0600)"
            )

    def _running_secure(self) -> bool:
        """The web configuration exists only while the last start was a secure one."""
        return self.secure_files.web_config.is_file()

    def _built(self) -> bool:
        return go_binary(self.paths.bin, BINARY, self.settings.alertmanager_version) is not None
