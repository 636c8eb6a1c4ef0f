"""Where the stack keeps its files: caches in ``<home>``, the running stack in ``<home>/state``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class StackPaths:
    """Every path the stack writes, derived from one home folder."""

    home: Path

    @property
    def bin(self) -> Path:
        """Binaries built by ``go install``."""
        return self.home / "bin"

    @property
    def state(self) -> Path:
        """Pid files, logs, generated configuration and data of the running stack."""
        return self.home / "state"

    @property
    def lock(self) -> Path:
        """Held by ``up`` and ``down`` so two of them never run at once."""
        return self.state / "stack.lock"

    @property
    def conf(self) -> Path:
        return self.state / "conf"

    @property
    def logs(self) -> Path:
        return self.state / "logs"

    def data(self, service: str) -> Path:
        return self.state / "data" / service

    def log(self, service: str) -> Path:
        return self.logs / f"{service}.log"

    def pid(self, service: str) -> Path:
        return self.state / f"{service}.pid"
