"""The README's main job, `sentio run`, end to end against the running stack."""

from __future__ import annotations

import re

from click.testing import CliRunner

from sentio_iot.cli.main import cli


def test_sentio_run_round_trip_and_plant() -> None:
    args = ["run", "--count", "500", "--devices", "5", "--rate", "4", "--duration", "3"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "500/500 readings came back identical" in result.output
    published = re.search(r"(\d+) readings published", result.output)
    assert published is not None
    assert 20 <= int(published.group(1)) <= 5 * 4 * 3 + 5  # ~4/s for 3 s from 5 devices
    assert "0 dropped" in result.output
    assert "== ok:" in result.output
