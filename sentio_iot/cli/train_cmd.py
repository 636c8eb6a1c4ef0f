"""``sentio train rul``: train RUL models over several seeds and store the best as a new version.

C-MAPSS (``--train/--test/--rul``) follows the published protocol; ``--simulate KIND`` trains
the model of one machine kind of the simulated plant on data the ``Plant`` class generates
(the CLI may use the producers; the stream code never does).
"""

from __future__ import annotations

import importlib
import math
import platform
import statistics
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from sentio_iot.cli.options import config_option, load

if TYPE_CHECKING:
    from sentio_iot.streams.rul.training import Dataset, SeedResult

PLANT_KINDS = ("pump", "motor", "press")
PLANT_WINDOW = 10
PLANT_STEP_S = 60.0  # plant seconds between readings in the training data


@click.group("train")
def train_group() -> None:
    """Train models for the stream."""


@train_group.command("rul")
@config_option
@click.option(
    "--train",
    "train_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="C-MAPSS training file (train_FD00x.txt).",
)
@click.option(
    "--test",
    "test_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="C-MAPSS test file (test_FD00x.txt).",
)
@click.option(
    "--rul",
    "rul_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="True RUL of the test engines (RUL_FD00x.txt).",
)
@click.option(
    "--simulate",
    type=click.Choice(PLANT_KINDS),
    default=None,
    help="Train the model of a simulated-plant machine kind instead of C-MAPSS.",
)
@click.option(
    "--seeds",
    default=3,
    show_default=True,
    type=click.IntRange(1, 20),
    help="Seeds 1..N, a model each.",
)
@click.option(
    "--epochs",
    default=60,
    show_default=True,
    type=click.IntRange(1, 1000),
    help="Most epochs (early stopping on held-out engines ends sooner).",
)
@click.option("--name", default=None, help="Model name (default cmapss_fd00x or plant_<kind>).")
@click.option(
    "--store",
    "store_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Model store folder (default streams.rul.store_dir).",
)
@click.option("--no-promote", is_flag=True, help="Store the new version without serving it.")
@click.option(
    "--window-only",
    is_flag=True,
    help="C-MAPSS: read only the 30-cycle window, not the engine's age and drift since its first cycles.",
)
@click.option("--threads", default=2, show_default=True, help="TensorFlow CPU threads.")
def train_rul(
    config_path: Path | None,
    train_path: Path | None,
    test_path: Path | None,
    rul_path: Path | None,
    simulate: str | None,
    seeds: int,
    epochs: int,
    name: str | None,
    store_dir: Path | None,
    no_promote: bool,
    window_only: bool,
    threads: int,
) -> None:
    """Train a remaining-useful-life model on C-MAPSS files or the simulated plant."""
    config = load(config_path)
    limit_threads(threads)
    from sentio_iot.streams.rul.model import TrainingOptions
    from sentio_iot.streams.rul.store import ModelStore

    began = time.perf_counter()
    if simulate is not None:
        if window_only:
            raise click.UsageError(
                "--window-only is for C-MAPSS; plant models read the window only"
            )
        data, files = plant_dataset(simulate), []
        name = name or f"plant_{simulate}"
    else:
        if not (train_path and test_path and rul_path):
            raise click.UsageError("give --train, --test and --rul, or --simulate KIND")
        from sentio_iot.streams.rul.training import HISTORY, load_dataset

        files = [train_path, test_path, rul_path]
        context = () if window_only else HISTORY
        data = load_dataset(train_path, test_path, rul_path, context=context)
        name = name or "cmapss_" + train_path.stem.removeprefix("train_").lower()
    click.echo(
        f"{name}: {len(data.train_x)} training windows of {data.preprocessing.window} x "
        f"{data.preprocessing.inputs}, {len(data.test_x)} test windows, "
        f"{max(1, len(data.preprocessing.centroids))} operating condition(s)"
    )
    options = TrainingOptions(epochs=epochs)
    results = train_seeds(data, list(range(1, seeds + 1)), options)
    seconds = time.perf_counter() - began
    best = min(results, key=lambda r: r.validation_rmse)
    store = ModelStore(store_dir or config.streams.rul.resolved_store_dir())
    metadata = training_metadata(data, results, best, files, options, seconds)
    version = store.save(name, best.model, data.preprocessing, metadata, promote=not no_promote)
    state = "serving" if version.current else "stored, not promoted"
    click.echo(
        f"saved {name} version {version.version} (seed {best.seed}, best validation RMSE) "
        f"in {version.path} [{state}]; {seconds:.0f} s in all"
    )


def limit_threads(threads: int) -> None:
    """TensorFlow's CPU threads for training (the issue's budget is 2 cores)."""
    tf = importlib.import_module("tensorflow")
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # TensorFlow already running in this process (tests): keep its pools
        pass


def train_seeds(data: Dataset, seeds: list[int], options: Any) -> list[SeedResult]:
    """Train one model per seed, printing every epoch and each seed's test figures."""
    from sentio_iot.streams.rul.training import train_seed

    results = []
    unit = data.preprocessing.rul_unit
    for seed in seeds:

        def progress(epoch: int, logs: dict[str, float], seed: int = seed) -> None:
            click.echo(
                f"  seed {seed} epoch {epoch:>3}/{options.epochs}: "
                f"RMSE train {math.sqrt(logs['loss']):6.2f}  validation {math.sqrt(logs['val_loss']):6.2f}"
            )

        result = train_seed(data, seed, options, progress)
        click.echo(
            f"seed {seed}: test RMSE {result.rmse:.2f} {unit}{_uncapped(result.rmse_uncapped)}, "
            f"NASA score {result.score:.1f} "
            f"(validation RMSE {result.validation_rmse:.2f}, {result.epochs} epochs, {result.seconds:.0f} s)"
        )
        results.append(result)
    rmses, scores = [r.rmse for r in results], [r.score for r in results]
    click.echo(
        f"mean over {len(results)} seed(s): RMSE {statistics.mean(rmses):.2f} ± {_std(rmses):.2f}, "
        f"NASA score {statistics.mean(scores):.1f} ± {_std(scores):.1f}"
    )
    return results


def _uncapped(value: float | None) -> str:
    return "" if value is None else f" (true RUL uncapped: {value:.2f})"


def _std(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def training_metadata(
    data: Dataset,
    results: list[SeedResult],
    best: SeedResult,
    files: list[Path],
    options: Any,
    seconds: float,
) -> dict[str, Any]:
    """What the store keeps beside the weights: data, protocol, figures, environment."""
    import dataclasses

    from sentio_iot.streams.rul.cmapss import fingerprint

    tf = importlib.import_module("tensorflow")

    rmses, scores = [r.rmse for r in results], [r.score for r in results]
    return {
        "data_fingerprint": fingerprint(files) if files else data_source(data),
        "training_files": [p.name for p in files],
        "rul_unit": data.preprocessing.rul_unit,
        "seeds": [r.seed for r in results],
        "chosen_seed": best.seed,
        "metrics": {
            "rmse": best.rmse,
            "nasa_score": best.score,
            "validation_rmse": best.validation_rmse,
            "rmse_uncapped": best.rmse_uncapped,
            "test_target": "true RUL capped at the training cap",
            "rmse_mean": statistics.mean(rmses),
            "rmse_std": _std(rmses),
            "nasa_score_mean": statistics.mean(scores),
            "nasa_score_std": _std(scores),
            "per_seed": [
                {
                    "seed": r.seed,
                    "rmse": r.rmse,
                    "rmse_uncapped": r.rmse_uncapped,
                    "nasa_score": r.score,
                    "epochs": r.epochs,
                }
                for r in results
            ],
        },
        "training_time_s": round(seconds, 1),
        "training": dataclasses.asdict(options),
        "parameters": int(best.model.count_params()),
        "tensorflow": tf.__version__,
        "python": platform.python_version(),
    }


def data_source(data: Dataset) -> str:
    """Fingerprint of generated data: sha256 of the training windows themselves."""
    import hashlib

    return hashlib.sha256(data.train_x.tobytes() + data.train_y.tobytes()).hexdigest()


def plant_dataset(kind: str, devices: int = 40, hours: float = 120.0) -> Dataset:
    """Windows from ``Plant`` runs: seed 1 to train, seed 2 to test (new machines, new lives).

    The simulate connector's defaults hold (life 6 to 48 plant hours, anomalies on); only the
    fleet is all degrading machines of ``kind``, read once a plant minute.
    """
    import numpy as np

    from sentio_iot.streams.rul.preprocessing import fit, windows

    train_runs = plant_runs(kind, seed=1, devices=devices, hours=hours)
    test_runs = plant_runs(kind, seed=2, devices=devices // 2, hours=hours / 2)
    features = _plant_metrics(kind)
    cap = _plant_config(kind, 1, 1).failure_max_h
    prep = fit(
        np.concatenate([rows for rows, _ in train_runs]),
        features,
        window=PLANT_WINDOW,
        cap=cap,
        rul_unit="hours",
        tail=0.001,  # injected spikes and level shifts
    )

    def stack(runs: list[tuple[Any, Any]], stride: int) -> tuple[Any, Any, Any]:
        xs, ys, owners = [], [], []
        for number, (rows, rul) in enumerate(runs):
            x = windows(prep.scale(rows), PLANT_WINDOW)[::stride]
            xs.append(x)
            ys.append(np.minimum(rul[PLANT_WINDOW - 1 :: stride], cap))
            owners.append(np.full(len(x), number, dtype=np.int64))
        return np.concatenate(xs), np.concatenate(ys), np.concatenate(owners)

    from sentio_iot.streams.rul.training import Dataset

    train_x, train_y, owner = stack(train_runs, 10)
    test_x, test_y, _ = stack(test_runs, 10)
    return Dataset(prep, train_x, train_y, owner, test_x, test_y)


def _plant_metrics(kind: str) -> tuple[str, ...]:
    from sentio_iot.producers.simulate.config import DeviceKind
    from sentio_iot.producers.simulate.plant import MODELS

    return tuple(m.name for m in MODELS[DeviceKind(kind)])


def _plant_config(kind: str, seed: int, devices: int) -> Any:
    from sentio_iot.producers.simulate.config import SimulateConfig

    return SimulateConfig.model_validate(
        {
            "devices": devices,
            "seed": seed,
            "kinds": {kind: 1.0},
            "degrading_fraction": 1.0,
            "rate": 1.0,
            "time_acceleration": PLANT_STEP_S,
        }
    )


def plant_runs(kind: str, *, seed: int, devices: int, hours: float) -> list[tuple[Any, Any]]:
    """Per device: its readings as rows (kind's metrics) and the true RUL in hours at each."""
    import numpy as np

    from sentio_iot.producers.simulate.plant import Plant

    config = _plant_config(kind, seed, devices)
    plant = Plant(config, start_us=1_767_225_600_000_000)  # 2026-01-01 UTC
    step_h = plant.step_us / 3.6e9
    ticks = round(hours / step_h)
    rows: list[list[list[float]]] = [[] for _ in plant.devices]
    rul: list[list[float]] = [[] for _ in plant.devices]
    for _ in range(ticks):
        tick = plant.step()
        for number, (device, reading) in enumerate(zip(plant.devices, tick.readings, strict=True)):
            rows[number].append([float(m.value or 0.0) for m in reading.metrics])
            failed_now = device.life_start == tick.tick + 1
            left = 0 if failed_now else (device.failure_tick or tick.tick) - tick.tick
            rul[number].append(left * step_h)
    return [(np.asarray(r), np.asarray(u)) for r, u in zip(rows, rul, strict=True)]
