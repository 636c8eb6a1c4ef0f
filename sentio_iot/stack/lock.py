"""One ``up`` or ``down`` at a time per stack home, across processes (two test sessions, a CLI).

Without it, two ``up`` calls could both find Kafka stopped, both start one, and the loser
would overwrite the winner's pid file. The lock is an ``flock`` on ``<home>/state/stack.lock``,
released by the kernel if its holder dies.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sentio_iot.errors import StackError

WAIT_S = 900.0


@contextmanager
def stack_lock(
    path: Path, *, on_wait: Callable[[str], None], timeout_s: float = WAIT_S
) -> Iterator[None]:
    """Hold the lock for the block; say once when another command holds it, then wait."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        _acquire(descriptor, path, on_wait, timeout_s)
        yield
    finally:
        os.close(descriptor)  # closing releases the lock


def _acquire(descriptor: int, path: Path, on_wait: Callable[[str], None], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    waiting = False
    while True:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if not waiting:
                on_wait(f"stack: waiting for another `sentio stack` command to finish ({path})")
                waiting = True
            if time.monotonic() >= deadline:
                raise StackError(
                    f"another `sentio stack` command still holds {path} after {timeout_s:g} s"
                ) from None
            time.sleep(0.2)
