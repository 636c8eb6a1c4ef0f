"""Refusals of the API: every one is a 401 or 403 with a reason and no data."""

from __future__ import annotations

from sentio_iot.errors import SentioError


class Refused(SentioError):
    """A request the API refuses; ``status`` is 401 (who are you?) or 403 (not allowed)."""

    status = 403

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Unauthenticated(Refused):
    """No credentials, or credentials that do not prove who the caller is (401)."""

    status = 401


class Forbidden(Refused):
    """The caller is known but may not do this, or not to this tenant's data (403)."""

    status = 403


class RateLimited(Refused):
    """Too many login attempts (429); ``retry_after_s`` says when to try again."""

    status = 429

    def __init__(self, reason: str, retry_after_s: float) -> None:
        super().__init__(reason)
        self.retry_after_s = retry_after_s


class UserError(SentioError):
    """A users-store request that cannot be done: unknown user, name taken, bad role."""
