"""What the terminal shows while the pipeline runs: a view that redraws in place, or (headless)
one progress line now and then; and the summary at the end.

``render`` and ``progress_line`` are pure (a :class:`View` in, text out); :class:`LiveScreen`
does the redrawing with plain ANSI escapes.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TextIO

from sentio_iot.pipeline.results import Results

FIRSTS = (("rollups", "rollup"), ("anomalies", "anomaly"), ("rul", "RUL prediction"))
CURSOR_HIDE, CURSOR_SHOW = "\x1b[?25l", "\x1b[?25h"
BOLD, DIM, RED, GREEN, YELLOW, RESET = (
    "\x1b[1m",
    "\x1b[2m",
    "\x1b[31m",
    "\x1b[32m",
    "\x1b[33m",
    "\x1b[0m",
)


@dataclass(frozen=True)
class WorkerRow:
    """One child process as the view shows it."""

    name: str
    state: str  # running, restarting, failed, unavailable, stopped
    healthy: bool
    pid: int | None
    per_s: float | None  # its main counter's rate: readings in, events, records written
    total: float | None
    restarts: int = 0
    note: str | None = None  # the last error, or why it is unavailable


@dataclass
class View:
    elapsed_s: float
    duration_s: float | None
    plant: str
    workers: list[WorkerRow]
    lag: dict[str, int] | None
    results: Results
    where: list[str]
    notices: list[str] = field(default_factory=list)
    lag_error: str | None = None
    lag_trends: dict[str, str] = field(default_factory=dict)  # group -> "falling 300/s, ..."


def fmt_count(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def fmt_rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}/s"


def firsts(results: Results) -> str:
    """``first rollup 23.1 s, first anomaly -, ...`` (seconds after the run began)."""
    parts = []
    for kind, label in FIRSTS:
        at = results.first_s.get(kind)
        parts.append(f"first {label} {'-' if at is None else f'{at:.1f} s'}")
    return ", ".join(parts)


# Where a failed notification is explained: the receiver's error is in Alertmanager's log.
FAILED_HINT = "Alertmanager's receivers refused them, its log says why; see docs/alerting.md"


def notified(counts: dict[str, int]) -> str:
    """``  notifications sent 12`` once Alertmanager's sink reports them, else nothing."""
    if "notifications" not in counts:
        return ""
    failed = counts.get("notifications_failed", 0)
    return f"  notifications sent {counts['notifications']:,}" + (
        f" ({failed:,} failed: {FAILED_HINT})" if failed else ""
    )


def _state(row: WorkerRow, color: bool) -> str:
    text = "healthy" if row.state == "running" and row.healthy else row.state
    if row.state == "running" and not row.healthy:
        text = "starting"
    if not color:
        return text
    tint = GREEN if text == "healthy" else RED if text in ("failed", "unavailable") else YELLOW
    return f"{tint}{text}{RESET}"


def render(view: View, color: bool = True) -> list[str]:
    """The whole screen, one string per line."""
    b, r = (BOLD, RESET) if color else ("", "")
    until = f" of {view.duration_s:.0f} s" if view.duration_s else " (Ctrl-C stops)"
    res = view.results
    lines = [
        f"{b}sentio run{r}  {view.elapsed_s:.0f} s{until}  |  plant: {view.plant}",
        "",
        f"{b}{'worker':<22}{'state':<12}{'pid':>8}{'rate':>12}{'total':>14}  restarts{r}",
    ]
    for row in view.workers:
        state = _state(row, color)
        pad = 12 + (len(state) - len(_state(row, False)))
        lines.append(
            f"{row.name:<22}{state:<{pad}}{row.pid or '-':>8}{fmt_rate(row.per_s):>12}"
            f"{fmt_count(row.total):>14}  {row.restarts}"
        )
        if row.note and row.state != "running":
            lines.append(f"  {row.note}")
    lines += ["", f"{b}consumer lag{r} (messages behind)"]
    if view.lag:
        lines += [
            f"  {group:<36}{lag:>12,}  {view.lag_trends.get(group, '')}".rstrip()
            for group, lag in sorted(view.lag.items())
        ]
    else:
        lines.append(f"  {view.lag_error or 'no consumer group is committing yet'}")
    counts = res.counts
    lines += [
        "",
        f"{b}results{r}  rollups {counts.get('rollups', 0):,}  anomalies "
        f"{counts.get('anomalies', 0):,}  alerts {counts.get('alerts', 0):,}  RUL predictions "
        f"{counts.get('rul', 0):,}{notified(counts)}",
        f"  {firsts(res)}",
        "",
        f"{b}latest anomalies{r}",
        *(f"  {line}" for line in res.anomalies or ["(none yet)"]),
        f"{b}latest alerts{r}",
        *(f"  {line}" for line in res.alerts or ["(none yet)"]),
        f"{b}closest to failure{r} (predicted remaining useful life)",
        *(f"  {device:<24}{rul:>10.1f} {unit}" for device, rul, unit in res.closest),
        *(["  (no prediction yet)"] if not res.closest else []),
        "",
        f"{b}where to look{r}",
        *(f"  {line}" for line in view.where),
    ]
    if view.notices:
        lines += ["", f"{b}notices{r}", *(f"  {line}" for line in view.notices)]
    return lines


def progress_line(view: View) -> str:
    """One line for headless runs: throughput, lag and results so far."""
    workers = "; ".join(
        f"{row.name} {fmt_rate(row.per_s)}" if row.state == "running" else f"{row.name} {row.state}"
        for row in view.workers
    )
    lag = (
        ", ".join(
            f"{g} {n:,}" + (f" ({view.lag_trends[g]})" if g in view.lag_trends else "")
            for g, n in sorted((view.lag or {}).items())
        )
        or "-"
    )
    c = view.results.counts
    return (
        f"[{view.elapsed_s:5.0f} s] {workers} | lag {lag} | rollups {c.get('rollups', 0):,}, "
        f"anomalies {c.get('anomalies', 0):,}, alerts {c.get('alerts', 0):,}, "
        f"RUL {c.get('rul', 0):,}{notified(c).replace('  notifications sent', ', notifications sent')}"
    )


def summary_lines(view: View, published: int | None, stopped: Sequence[str]) -> list[str]:
    """What the run did, printed at the end in both modes."""
    c = view.results.counts
    lines = [
        f"== summary after {view.elapsed_s:.1f} s",
        f"  readings published: {fmt_count(published)}",
        f"  rollups: {c.get('rollups', 0)}, anomalies: {c.get('anomalies', 0)}, "
        f"alerts: {c.get('alerts', 0)}, RUL predictions: {c.get('rul', 0)}",
        f"  time to {firsts(view.results)} (seconds after the start)",
    ]
    for row in view.workers:
        if row.state == "unavailable" or row.state == "failed":
            lines.append(f"  {row.name}: {row.state}: {row.note}")
        elif row.total is not None and row.name != "producer":
            lines.append(f"  {row.name}: {fmt_count(row.total)} processed")
        elif row.total is None and row.name != "producer":
            lines.append(f"  {row.name}: no metrics from it (it never got ready)")
    lines.append("  stopped: " + ("; ".join(stopped) if stopped else "nothing was running"))
    return lines


class LiveScreen:
    """Redraws a block of lines in place: cursor up over the last frame, clear, write."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self._height = 0

    def draw(self, lines: Sequence[str]) -> None:
        size = shutil.get_terminal_size((120, 40))
        shown = list(lines)[: max(1, size.lines - 1)]
        frame = [CURSOR_HIDE]
        if self._height:
            frame.append(f"\x1b[{self._height}F")  # to the first line of the last frame
        frame.append("\x1b[J")
        frame.extend(_clip(line, size.columns) + "\n" for line in shown)
        self.out.write("".join(frame))
        self.out.flush()
        self._height = len(shown)

    def close(self) -> None:
        self.out.write(CURSOR_SHOW)
        self.out.flush()


def _clip(line: str, width: int) -> str:
    """Cut a line to the terminal width (escapes do not count) so it never wraps."""
    shown, out, i = 0, [], 0
    while i < len(line):
        if line[i] == "\x1b":
            end = line.find("m", i)
            end = len(line) - 1 if end < 0 else end
            out.append(line[i : end + 1])
            i = end + 1
            continue
        if shown >= width - 1:
            break
        out.append(line[i])
        shown += 1
        i += 1
    return "".join(out) + (RESET if "\x1b" in line else "")
