"""The dashboard's component tests (Vitest + Testing Library, web/src/test/) as part of the
suite: filtering, the live store, range selection, role-dependent actions, the device page's
chart per metric and the anomalies timeline. They need
web/node_modules, which scripts/bootstrap installs with `npm ci`."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

WEB = Path(__file__).resolve().parents[2] / "web"


def test_vitest_component_tests_pass(tmp_path: Path) -> None:
    npm = shutil.which("npm")
    assert npm is not None, "npm not found: install Node.js 20+ (scripts/bootstrap needs it)"
    assert (WEB / "node_modules").is_dir(), "web/node_modules missing: run scripts/bootstrap"
    report = tmp_path / "vitest.json"
    run = subprocess.run(
        [npm, "test", "--prefix", str(WEB), "--", "--reporter=json", f"--outputFile={report}"],
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    results = json.loads(report.read_text())
    names = {
        Path(suite["name"]).name: [t["status"] for t in suite["assertionResults"]]
        for suite in results["testResults"]
    }
    # every suite ran, with all its tests passed (none skipped or todo)
    expected = {
        "fleet.test.ts",
        "liveStore.test.ts",
        "range.test.ts",
        "roles.test.tsx",
        "smallMultiples.test.ts",  # the device page's chart per metric
        "devicePage.render.test.tsx",
        "timeline.test.ts",  # the anomalies timeline
        "anomalies.render.test.tsx",
        "theme.test.tsx",  # charts redraw in the new theme's colours
    }
    assert expected <= set(names), names
    assert all(statuses and set(statuses) == {"passed"} for statuses in names.values()), names
    assert results["numPassedTests"] == results["numTotalTests"] >= 42
