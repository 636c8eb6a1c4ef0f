"""Find the records a backend refuses when it can only refuse a whole request.

Send everything; if the backend refuses, send each half again, down to single records.
A good batch costs one request; each refused record about ``2 * log2(n)`` more.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

Send = Callable[[list[int]], Awaitable[str | None]]  # None: taken; else the backend's answer


async def refused_records(indexes: list[int], send: Send) -> dict[int, str]:
    """``index -> answer`` for every record the backend refused; the rest were taken."""
    if not indexes:
        return {}
    answer = await send(indexes)
    if answer is None:
        return {}
    if len(indexes) == 1:
        return {indexes[0]: answer}
    middle = len(indexes) // 2
    refused = await refused_records(indexes[:middle], send)
    refused.update(await refused_records(indexes[middle:], send))
    return refused
