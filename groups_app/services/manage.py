"""Group use-cases: create, rename and delete user groups."""

from __future__ import annotations

from typing import Any

from groups_app.models import AuditEntry
from groups_app.roles import MANAGE_GROUPS
from groups_app.segment import SegmentClient, UserGroup, get_client
from groups_app.services.audit import actor_name, audited
from groups_app.services.common import group_cache_forget, require_permission
from groups_app.services.errors import InvalidInput
from groups_app.services.groups import roles_by_id
from groups_app.services.permissions import describe

MAX_NAME_LENGTH = 100


def checked_name(name: str) -> str:
    """Raises InvalidInput (field `name`) for an empty or over-long name."""
    name = (name or "").strip()
    if not name:
        raise InvalidInput("Enter a name.", {"name": "Enter a name."})
    if len(name) > MAX_NAME_LENGTH:
        message = f"At most {MAX_NAME_LENGTH} characters."
        raise InvalidInput(message, {"name": message})
    return name


def group_create(
    *, actor: Any, name: str, submission_key: str | None = None, client: SegmentClient | None = None
) -> UserGroup:
    """Create a user group.

    Raises:
        NotAllowed, InvalidInput, DuplicateSubmission, SegmentError (ValidationFailed on `name`).
    """
    require_permission(actor, MANAGE_GROUPS)
    name = checked_name(name)
    client = client or get_client()
    try:
        with audited(
            actor=actor,
            action=AuditEntry.Action.GROUP_CREATE,
            summary=f"{actor_name(actor)} created the group {name}",
            group_name=name,
            details={"name": name},
            submission_key=submission_key,
        ) as record:
            group = client.create_user_group(name)
            record.group_id = group.id
    finally:
        group_cache_forget("")
    return group


def group_rename(
    *,
    actor: Any,
    group_id: str,
    name: str,
    submission_key: str | None = None,
    client: SegmentClient | None = None,
) -> UserGroup:
    """Rename a user group.

    Raises:
        NotAllowed, InvalidInput, DuplicateSubmission, NotFound, SegmentError.
    """
    require_permission(actor, MANAGE_GROUPS)
    name = checked_name(name)
    client = client or get_client()
    group = client.get_user_group(group_id)
    try:
        with audited(
            actor=actor,
            action=AuditEntry.Action.GROUP_RENAME,
            summary=f"{actor_name(actor)} renamed {group.name} to {name}",
            group_id=group.id,
            group_name=group.name,
            details={"old_name": group.name, "new_name": name},
            submission_key=submission_key,
        ):
            return client.update_user_group(group_id, name)
    finally:
        group_cache_forget(group_id)


def group_delete(
    *,
    actor: Any,
    group_id: str,
    confirm_name: str,
    submission_key: str | None = None,
    client: SegmentClient | None = None,
) -> UserGroup:
    """Delete a user group after its name was typed; its members lose the access it granted.

    Raises:
        NotAllowed, InvalidInput (field `confirm_name`), DuplicateSubmission, NotFound, SegmentError.
    """
    require_permission(actor, MANAGE_GROUPS)
    client = client or get_client()
    group = client.get_user_group(group_id)
    if confirm_name.strip() != group.name.strip():
        message = f"Type the group's name exactly as shown: {group.name}"
        raise InvalidInput(message, {"confirm_name": message})
    roles = roles_by_id(client=client)
    try:
        with audited(
            actor=actor,
            action=AuditEntry.Action.GROUP_DELETE,
            summary=f"{actor_name(actor)} deleted the group {group.name} ({group.member_count} members)",
            group_id=group.id,
            group_name=group.name,
            details={
                "member_count": group.member_count,
                "permissions": [describe(p, roles) for p in group.permissions],
            },
            submission_key=submission_key,
        ):
            client.delete_user_group(group_id)
    finally:
        group_cache_forget(group_id)
    return group
