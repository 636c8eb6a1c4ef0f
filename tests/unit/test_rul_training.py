"""A tiny training run through the CLI: the machinery (train, evaluate, store, manage), not the score."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from sentio_iot.cli.main import cli
from sentio_iot.streams.rul.cmapss import fingerprint
from sentio_iot.streams.rul.store import ModelStore

DATA = Path(__file__).parent.parent / "data" / "cmapss"
FILES = [DATA / f"{kind}_FD001_few.txt" for kind in ("train", "test", "RUL")]


def train(store: Path, *options: str) -> str:
    """``sentio train rul`` on the four-engine files into ``store``; its output."""
    args = [
        "train",
        "rul",
        *(f"--{kind}={path}" for kind, path in zip(("train", "test", "rul"), FILES, strict=True)),
    ]
    result = CliRunner().invoke(
        cli, [*args, "--store", str(store), *options], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    return result.output


def test_train_store_list_promote_rollback(tmp_path: Path) -> None:
    out = train(tmp_path, "--seeds", "2", "--epochs", "1")
    # 14 sensors, the age, 14 drifts per cycle
    assert "cmapss_fd001_few: 205 training windows of 30 x 29, 4 test windows" in out
    assert "seed 1 epoch   1/1" in out and "seed 2 epoch   1/1" in out
    assert "mean over 2 seed(s): RMSE" in out
    assert "saved cmapss_fd001_few version 1" in out

    meta = json.loads((tmp_path / "cmapss_fd001_few" / "1" / "metadata.json").read_text())
    assert meta["data_fingerprint"] == fingerprint(FILES)
    assert meta["seeds"] == [1, 2] and meta["rul_unit"] == "cycles"
    assert [s["seed"] for s in meta["metrics"]["per_seed"]] == [1, 2]
    assert meta["metrics"]["rmse"] in [s["rmse"] for s in meta["metrics"]["per_seed"]]
    prep = json.loads((tmp_path / "cmapss_fd001_few" / "1" / "preprocessing.json").read_text())
    assert (prep["window"], prep["cap"], len(prep["features"])) == (30, 125.0, 14)
    assert (prep["context"], prep["baseline_rows"]) == (["age", "drift"], 20)

    store = ModelStore(tmp_path, shipped=None)
    first = store.load("cmapss_fd001_few")
    store.save("cmapss_fd001_few", first.network, first.preprocessing, {"note": "copy"})
    assert store.current("cmapss_fd001_few").version == 2  # type: ignore[union-attr]

    runner = CliRunner()
    listed = runner.invoke(cli, ["models", "list", "--store", str(tmp_path)])
    lines = [line for line in listed.output.splitlines() if "cmapss_fd001_few" in line]
    assert len(lines) == 2 and lines[1].startswith("* ") and not lines[0].startswith("*")

    back = runner.invoke(cli, ["models", "rollback", "cmapss_fd001_few", "--store", str(tmp_path)])
    assert back.output.strip() == "cmapss_fd001_few: rolled back to version 1"
    promoted = runner.invoke(
        cli, ["models", "promote", "cmapss_fd001_few", "2", "--store", str(tmp_path)]
    )
    assert promoted.output.strip() == "cmapss_fd001_few: version 2 is current"
    bad = runner.invoke(
        cli, ["models", "promote", "cmapss_fd001_few", "9", "--store", str(tmp_path)]
    )
    assert bad.exit_code == 2 and "has no version 9" in bad.output


def test_train_window_only(tmp_path: Path) -> None:
    out = train(tmp_path, "--seeds", "1", "--epochs", "1", "--window-only")
    assert "cmapss_fd001_few: 205 training windows of 30 x 14, 4 test windows" in out
    served = ModelStore(tmp_path, shipped=None).load("cmapss_fd001_few")
    assert served.preprocessing.context == () and served.network.input_shape == (None, 30, 14)
