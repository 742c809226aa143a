"""Helpers shared by the mutating services."""

from __future__ import annotations

from typing import Any

from groups_app.services.errors import NotAllowed
from groups_app.services.groups import group_index_forget


def require_permission(actor: Any, permission: str) -> None:
    """Raise NotAllowed unless the actor's role grants `permission` (views check too)."""
    if actor is None or not actor.has_perm(permission):
        raise NotAllowed("Your role does not allow this change.")


def group_cache_forget(group_id: str) -> None:
    """Drop the cached reads a change to this group made stale (member counts, names)."""
    group_index_forget()


def plural(count: int, singular: str, plural_form: str | None = None) -> str:
    return f"{count} {singular if count == 1 else plural_form or singular + 's'}"
