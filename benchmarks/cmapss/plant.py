"""``python -m benchmarks.cmapss.plant``: the shipped plant models on a plant they never saw.

Generates 20 degrading machines per kind for 60 plant hours (seed 2, as `sentio train rul
--simulate` tests), predicts every 10th window with the serving model of the store, and
prints RMSE and mean absolute error in hours, overall and by true RUL band.
"""

from __future__ import annotations

import sys

import numpy as np

from sentio_iot.cli.train_cmd import PLANT_KINDS, PLANT_WINDOW, plant_runs
from sentio_iot.streams.rul.model import predict
from sentio_iot.streams.rul.preprocessing import windows
from sentio_iot.streams.rul.store import PACKAGED, ModelStore

BANDS = ((0.0, 6.0), (6.0, 12.0), (12.0, 24.0), (24.0, 48.0))


def main() -> int:
    store = ModelStore(PACKAGED, shipped=None)
    header = ["model", "windows", "RMSE h", "MAE h", *(f"MAE {a:g}-{b:g} h" for a, b in BANDS)]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for kind in PLANT_KINDS:
        served = store.load(f"plant_{kind}")
        prep = served.preprocessing
        xs, ys = [], []
        for rows, rul in plant_runs(kind, seed=2, devices=20, hours=60.0):
            xs.append(windows(prep.scale(rows), PLANT_WINDOW)[::10])
            ys.append(rul[PLANT_WINDOW - 1 :: 10])
        x, truth = np.concatenate(xs), np.minimum(np.concatenate(ys), prep.cap)
        error = predict(served.network, x) - truth
        cells = [f"plant_{kind} v{served.version}", str(len(x))]
        cells += [f"{np.sqrt(np.mean(error**2)):.2f}", f"{np.mean(np.abs(error)):.2f}"]
        for low, high in BANDS:
            band = (truth >= low) & (truth < high)
            cells.append(f"{np.mean(np.abs(error[band])):.2f}" if band.any() else "-")
        print("| " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
