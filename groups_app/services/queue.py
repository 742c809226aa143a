"""The one way services hand work to the background worker.

Services never import `groups_app.tasks` (the tasks call the services): `tasks.py` registers
each of its tasks here when the app loads, and services enqueue them by name. A queue that
cannot be reached costs freshness only; the callers decide whether that may fail them.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.tasks import Task

logger = logging.getLogger("groups_app.queue")

_registry: dict[str, Task] = {}


def register(task: Task) -> Task:
    """Make a task enqueueable by its function's name (tasks.py calls this for each task)."""
    _registry[task.name] = task
    return task


def enqueue(name: str, /, *args: Any, **kwargs: Any) -> Any:
    """Enqueue the registered task `name` now.

    Raises:
        LookupError: no task of that name was registered (groups_app.tasks was not loaded).
    """
    try:
        task = _registry[name]
    except KeyError:
        raise LookupError(f"No background task named {name!r} is registered.") from None
    return task.enqueue(*args, **kwargs)


def enqueue_quietly(name: str, /, *args: Any, **kwargs: Any) -> None:
    """Enqueue, logging instead of raising when the queue cannot be reached.

    In a savepoint, so that a failed enqueue leaves the caller's transaction usable.
    """
    try:
        with transaction.atomic():
            enqueue(name, *args, **kwargs)
    except Exception:
        logger.exception("Could not enqueue the background task %s", name)


def enqueue_after_commit(name: str, /, *args: Any, **kwargs: Any) -> None:
    """Enqueue once the caller's transaction commits (at once outside a transaction)."""
    transaction.on_commit(lambda: enqueue_quietly(name, *args, **kwargs))
