"""The end-to-end table as a PNG: readings/s taken per stage and p99 latency, by offered rate."""

from __future__ import annotations

from pathlib import Path

from benchmarks.e2e.stage import Step


def plot(steps: list[Step], ceiling: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    offered = [s.offered for s in steps]
    figure, (rates, latency) = plt.subplots(1, 2, figsize=(11, 4.2))
    rates.plot(offered, offered, "k--", label="offered")
    for label in steps[0].taken:
        rates.plot(offered, [s.taken[label] for s in steps], "o-", label=label)
    rates.set_xlabel("offered readings/s (5 metrics each)")
    rates.set_ylabel("readings/s taken")
    rates.set_title(f"throughput per stage (bare confluent-kafka: {ceiling:,.0f}/s)")
    rates.legend(fontsize=8)
    for label in [k for k in steps[0].p99 if any(s.p99[k] is not None for s in steps)]:
        values = [s.p99[label] for s in steps]
        latency.plot(
            offered, [v if v is not None else float("nan") for v in values], "o-", label=label
        )
    latency.set_xlabel("offered readings/s")
    latency.set_ylabel("p99 latency (s)")
    latency.set_yscale("log")
    latency.set_title("reading sent -> committed by stage / queryable")
    latency.legend(fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
