"""Observers of the client's calls (metrics), told of each attempt `_request()` makes.

Plain Python, like the rest of the client: whoever wants the figures (the dashboard's metrics
module) registers an observer; the client never knows what is done with them. An observer
that fails is logged and never fails the call.
"""

from __future__ import annotations

import logging
import re
from typing import Protocol

logger = logging.getLogger("groups_app.segment")

# Path segments that name a collection; any other segment is an id.
_WORDS = frozenset(
    {
        "groups",
        "group",
        "users",
        "invites",
        "permissions",
        "roles",
        "sources",
        "warehouses",
        "spaces",
        "functions",
    }
)
_SEGMENT = re.compile(r"[^/]+")


class CallObserver(Protocol):
    def call(self, operation: str, status: str, seconds: float) -> None:
        """One attempt: `status` is the HTTP status, or "timeout" / "connection_error"."""

    def rate_limit_wait(self, operation: str, seconds: float) -> None:
        """The client waited this long after a 429 before trying again."""


_observers: list[CallObserver] = []


def add_call_observer(observer: CallObserver) -> None:
    """Tell `observer` of every call any client makes (once, however often it is added)."""
    if observer not in _observers:
        _observers.append(observer)


def remove_call_observer(observer: CallObserver) -> None:
    if observer in _observers:
        _observers.remove(observer)


def operation_of(method: str, path: str) -> str:
    """The operation a call is counted under: its method and path with ids left out
    ("GET /groups/{id}/users"), so that labels stay few."""
    return f"{method} " + _SEGMENT.sub(lambda m: m[0] if m[0] in _WORDS else "{id}", path)


def observe_call(method: str, path: str, status: str, seconds: float) -> None:
    for observer in tuple(_observers):
        try:
            observer.call(operation_of(method, path), status, seconds)
        except Exception:  # an observer must never fail the call it watches
            logger.exception("A call observer failed")


def observe_rate_limit_wait(method: str, path: str, seconds: float) -> None:
    for observer in tuple(_observers):
        try:
            observer.rate_limit_wait(operation_of(method, path), seconds)
        except Exception:  # an observer must never fail the call it watches
            logger.exception("A call observer failed")
