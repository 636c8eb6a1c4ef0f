"""How connectors that own their connection retry it: exponential backoff and quiet failure logs.

A device that is down for a day must neither be hammered nor flood the logs, so:

- :class:`Backoff` waits ``initial_s``, doubling after each failed attempt up to ``max_s``;
- :class:`FailureStreak` counts failed attempts in a row and logs only the 1st, 10th, 100th,
  ... of a streak, then one summary line when the connection works again.

The connectors keep their own connected/disconnected state (and the events about it); these
two only decide when to try again and what to log.
"""

from __future__ import annotations

import asyncio
import logging


def worth_logging(count: int) -> bool:
    """The 1st, 10th, 100th, ... failure of a streak."""
    while count >= 10 and count % 10 == 0:
        count //= 10
    return count == 1


class Backoff:
    """Waits ``initial_s`` before the first retry, doubling after each one up to ``max_s``."""

    def __init__(self, initial_s: float, max_s: float) -> None:
        self.initial_s = initial_s
        self.max_s = max_s
        self.delay_s = initial_s

    def reset(self) -> None:
        """The connection works: the next failure is retried after ``initial_s`` again."""
        self.delay_s = self.initial_s

    def held(self, seconds: float) -> None:
        """A connection that held for ``max_s`` resets the backoff; one that flaps does not."""
        if seconds >= self.max_s:
            self.reset()

    async def wait(self) -> None:
        """Sleep the current delay, then double it (up to ``max_s``) for the next failure."""
        await asyncio.sleep(self.delay_s)
        self.delay_s = min(self.delay_s * 2, self.max_s)


class FailureStreak:
    """Failed attempts in a row of one connection, logged on ``logger`` as ``"<name>: ..."``."""

    def __init__(self, logger: logging.Logger, name: str) -> None:
        self.logger = logger
        self.name = name
        self.count = 0

    def failed(self, reason: object) -> None:
        """Count one failed attempt; a warning for the 1st, 10th, 100th, ... of the streak."""
        self.count += 1
        if worth_logging(self.count):
            text = str(reason)
            # Errors that name their connection already (a ConfigError-style line) are not
            # prefixed twice: "opcua plc1: opcua plc1: the server at ..." read badly.
            text = text.removeprefix(f"{self.name}: ")
            self.logger.warning(
                "%s: %s (failure %d in a row; retrying with backoff)",
                self.name,
                text,
                self.count,
            )

    def ended(self, how: str = "connected again") -> None:
        """The connection works again: one info line summing the streak up (if there was one)."""
        if self.count:
            self.logger.info("%s: %s after %d failed attempts", self.name, how, self.count)
        self.count = 0
