"""The one way an access request or a proposal changes state: compare-and-set.

Two people deciding the same request at once, or a person and reconciliation, race; the
transition that finds the object still in an expected state wins, and the other is told what
became of it. Callers audit the attempt (`audited()` around the transition).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import models

from groups_app.services.errors import InvalidInput


class ConcurrentChange(InvalidInput):
    """Someone else changed the object a moment ago; `instance` is as it is now."""

    def __init__(self, message: str, instance: models.Model) -> None:
        super().__init__(message)
        self.instance = instance


def transition(instance: models.Model, *, to: str, from_: Iterable[str], **fields: Any) -> None:
    """Move `instance` to status `to` (with `fields`) if it is still in one of `from_`.

    Raises:
        ConcurrentChange: it is no longer in any of `from_` (reloaded, with its current state).
    """
    values = {"status": to, **fields}
    moved = type(instance).objects.filter(pk=instance.pk, status__in=list(from_)).update(**values)
    if not moved:
        instance.refresh_from_db()
        noun = type(instance)._meta.verbose_name
        now = instance.get_status_display().lower()
        raise ConcurrentChange(
            f"This {noun} was changed a moment ago by someone else; it is now {now}.", instance
        )
    for name, value in values.items():
        setattr(instance, name, value)
