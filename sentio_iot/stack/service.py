"""The one interface every local service implements; the stack drives them all the same way."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from sentio_iot.config import StackSettings
from sentio_iot.stack.paths import StackPaths
from sentio_iot.stack.probes import Health

Progress = Callable[[str], None]


class Service(ABC):
    """A program the stack installs, configures, starts and probes.

    Order of calls for a start: ``problems()`` (nothing is touched yet), ``install()``
    (cached), ``prepare()`` (configuration files, storage), then ``command()`` is started
    and ``check()`` is polled until it is healthy; then ``after_start()``.
    """

    name: ClassVar[str]

    def __init__(self, settings: StackSettings, paths: StackPaths) -> None:
        self.settings = settings
        self.paths = paths

    @property
    @abstractmethod
    def address(self) -> str:
        """Where clients reach it: host:port or a URL."""

    @abstractmethod
    def ports(self) -> list[tuple[int, str]]:
        """Every port it listens on, with the StackSettings field that sets it."""

    @abstractmethod
    def problems(self) -> list[str]:
        """One line per missing prerequisite for installing and running it; empty when none."""

    @abstractmethod
    def install(self, progress: Progress) -> None:
        """Download or build what is missing; fast when everything is cached."""

    @abstractmethod
    def prepare(self, progress: Progress) -> None:
        """Write configuration files and initialise storage before each start."""

    @abstractmethod
    def command(self) -> list[str]:
        """The command line that runs it in the foreground."""

    @abstractmethod
    def check(self) -> Health:
        """Whether it really answers now."""

    def environment(self) -> dict[str, str]:
        """Variables added to its environment (secrets a command line would show in ``ps``)."""
        return {}

    def after_start(self, progress: Progress) -> None:
        """Set up what needs the running service (users, ACLs); called after each ``up``."""
        del progress  # nothing by default

    @property
    def data_dir(self) -> Path:
        return self.paths.data(self.name)

    @property
    def log_path(self) -> Path:
        return self.paths.log(self.name)
