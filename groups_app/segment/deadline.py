"""A time budget shared by every Public API call made on behalf of one caller.

A web request sets it once (see the dashboard's middleware); timeouts, retries and
rate-limit waits of all calls inside it then fit in what is left. It lives in a context
variable, so threads that run reads side by side carry it when started with
`contextvars.copy_context().run`.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Iterator
from contextlib import contextmanager

_ends_at: contextvars.ContextVar[float | None] = contextvars.ContextVar("segment_deadline", default=None)


@contextmanager
def deadline(seconds: float | None) -> Iterator[None]:
    """Limit the calls inside the block to `seconds` in all (never extends an outer limit)."""
    if seconds is None:
        yield
        return
    ends_at = time.monotonic() + seconds
    outer = _ends_at.get()
    token = _ends_at.set(ends_at if outer is None else min(outer, ends_at))
    try:
        yield
    finally:
        _ends_at.reset(token)


def time_left() -> float | None:
    """Seconds left in the current budget, or None when there is no limit."""
    ends_at = _ends_at.get()
    return None if ends_at is None else ends_at - time.monotonic()
