"""Start a service as a detached process group, and stop only the processes we recorded.

A pid file records the pid *and* the process's start time (field 22 of ``/proc/<pid>/stat``).
A process counts as ours only while both match, so a pid the kernel has since handed to
another program is never signalled. Linux only (``/proc``).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from sentio_iot.errors import StackError

log = logging.getLogger(__name__)

# Runs in a throw-away interpreter that exits at once: the service is re-parented to init,
# so it outlives the caller, never becomes our zombie, and leads its own session (pgid == pid).
LAUNCHER = """
import subprocess, sys
log, cwd, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
with open(log, "ab") as out:
    child = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out,
                             stderr=subprocess.STDOUT, start_new_session=True)
print(child.pid, flush=True)
"""


@dataclass(frozen=True)
class ProcessRecord:
    """What a pid file holds: enough to recognise the very process we started."""

    pid: int
    start_time: int  # clock ticks after boot, from /proc/<pid>/stat
    command: tuple[str, ...] = ()


def process_start_time(pid: int) -> int | None:
    """Start time of a live process, or None when there is none (or only a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    return parse_start_time(stat)


def parse_start_time(stat: str) -> int | None:
    """Field 22 of a ``/proc/<pid>/stat`` line; None for a zombie or dead process."""
    # The command name (field 2) may hold spaces and parentheses: count after the last ')'.
    fields = stat[stat.rfind(")") + 2 :].split()
    if len(fields) < 20 or fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def is_running(record: ProcessRecord) -> bool:
    """True while the recorded process is alive and is still the one we started."""
    return process_start_time(record.pid) == record.start_time


def write_record(path: Path, record: ProcessRecord) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"pid": record.pid, "start_time": record.start_time, "command": list(record.command)}
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(data) + "\n", encoding="utf-8")
    temporary.replace(path)


def read_record(path: Path) -> ProcessRecord | None:
    """The record in a pid file; None when there is none or it cannot be read."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return ProcessRecord(
            pid=int(data["pid"]),
            start_time=int(data["start_time"]),
            command=tuple(str(part) for part in data.get("command", [])),
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("ignoring unreadable pid file path=%s error=%s", path, exc)
        return None


def remove_record(path: Path) -> None:
    path.unlink(missing_ok=True)


def rotate_log(path: Path) -> None:
    """Keep the previous run's log as ``<name>.log.1`` so each start begins a fresh file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.replace(path.with_name(path.name + ".1"))


def spawn(
    argv: Sequence[str], *, log_path: Path, cwd: Path, env: Mapping[str, str] | None = None
) -> ProcessRecord:
    """Start ``argv`` detached, stdout and stderr appended to ``log_path``; return its record."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    cwd.mkdir(parents=True, exist_ok=True)
    launcher = [sys.executable, "-I", "-c", LAUNCHER, str(log_path), str(cwd), *argv]
    result = subprocess.run(
        launcher, capture_output=True, text=True, env=env, timeout=60, check=False
    )
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines() or ["no output"]
        raise StackError(f"cannot start {argv[0]}: {lines[-1]}")
    pid = int(result.stdout.strip())
    start_time = process_start_time(pid)
    if start_time is None:
        raise StackError(f"{argv[0]} exited at once; see {log_path}: {log_tail(log_path)}")
    log.debug("started pid=%s command=%s", pid, " ".join(argv))
    return ProcessRecord(pid=pid, start_time=start_time, command=tuple(argv))


def stop(record: ProcessRecord, *, grace_s: float = 15.0, kill_wait_s: float = 5.0) -> bool:
    """SIGTERM the recorded process group, SIGKILL it after ``grace_s``; False if not ours."""
    if not is_running(record):
        return False
    _signal(record, signal.SIGTERM)
    if wait_gone(record, grace_s):
        return True
    log.warning("no exit after SIGTERM, sending SIGKILL pid=%s grace_s=%s", record.pid, grace_s)
    _signal(record, signal.SIGKILL)
    if not wait_gone(record, kill_wait_s):
        raise StackError(f"pid {record.pid} did not exit after SIGKILL")
    return True


def wait_gone(record: ProcessRecord, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while is_running(record):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True


def _signal(record: ProcessRecord, signum: signal.Signals) -> None:
    # Only signal the whole group when the recorded process leads it, as the launcher arranges.
    try:
        if os.getpgid(record.pid) == record.pid:
            os.killpg(record.pid, signum)
        else:
            os.kill(record.pid, signum)
    except ProcessLookupError:
        pass


def log_tail(path: Path, lines: int = 3, max_chars: int = 400) -> str:
    """The last non-empty lines of a log, joined into one line for an error message."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 16384))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return "(no log)"
    kept = [line.strip() for line in text.splitlines() if line.strip()][-lines:]
    tail = " | ".join(kept) or "(empty log)"
    return tail if len(tail) <= max_chars else "..." + tail[-max_chars:]
