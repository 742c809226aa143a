"""Group use-cases: create, rename and delete user groups."""

from __future__ import annotations

from typing import Any

from groups_app.models import AuditEntry
from groups_app.roles import MANAGE_GROUPS
from groups_app.segment import SegmentClient, UserGroup
from groups_app.services.audit import actor_name
from groups_app.services.audit_details import details_for
from groups_app.services.changes import Changed, change_attempt
from groups_app.services.errors import InvalidInput
from groups_app.services.grants import describe
from groups_app.services.groups import resource_catalog, roles_by_id
from groups_app.services.segment_client import get_client

Action = AuditEntry.Action
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
) -> Changed[UserGroup]:
    """Create a user group.

    Raises:
        RuleRefused, InvalidInput, DuplicateSubmission, ChangeOutcomeUnknown,
        SegmentError (ValidationFailed on `name`).
    """
    client = client or get_client()
    with change_attempt(
        actor=actor, action=Action.GROUP_CREATE, permission=MANAGE_GROUPS, client=client
    ) as attempt:
        name = checked_name(name)
        attempt.describe(
            summary=f"{actor_name(actor)} created the group {name}",
            group_name=name,
            details=details_for(Action.GROUP_CREATE, name=name),
        )
        attempt.check()

        def create() -> Changed[UserGroup]:
            group = client.create_user_group(name)
            attempt.record.group_id = group.id
            return group

        return attempt.send(create, submission_key=submission_key)


def group_rename(
    *,
    actor: Any,
    group_id: str,
    name: str,
    submission_key: str | None = None,
    client: SegmentClient | None = None,
) -> Changed[UserGroup]:
    """Rename a user group.

    Raises:
        RuleRefused, InvalidInput, DuplicateSubmission, NotFound, ChangeOutcomeUnknown, SegmentError.
    """
    client = client or get_client()
    with change_attempt(
        actor=actor, action=Action.GROUP_RENAME, permission=MANAGE_GROUPS, group_id=group_id, client=client
    ) as attempt:
        name = checked_name(name)
        group = client.get_user_group(group_id)
        attempt.describe(
            summary=f"{actor_name(actor)} renamed {group.name} to {name}",
            group=group,
            details=details_for(Action.GROUP_RENAME, old_name=group.name, new_name=name),
        )
        attempt.check(group=group)
        return attempt.send(lambda: client.update_user_group(group_id, name), submission_key=submission_key)


def group_delete(
    *,
    actor: Any,
    group_id: str,
    confirm_name: str,
    submission_key: str | None = None,
    client: SegmentClient | None = None,
) -> Changed[UserGroup]:
    """Delete a user group after its name was typed; its members lose the access it granted.

    Raises:
        RuleRefused, InvalidInput (field `confirm_name`), DuplicateSubmission, NotFound,
        ChangeOutcomeUnknown, SegmentError.
    """
    client = client or get_client()
    with change_attempt(
        actor=actor, action=Action.GROUP_DELETE, permission=MANAGE_GROUPS, group_id=group_id, client=client
    ) as attempt:
        group = client.get_user_group(group_id)
        roles = roles_by_id(client=client)
        names = resource_catalog(client=client).names
        attempt.describe(
            summary=f"{actor_name(actor)} deleted the group {group.name} ({group.member_count} members)",
            group=group,
            details=details_for(
                Action.GROUP_DELETE,
                member_count=group.member_count,
                permissions=[describe(p, roles, names) for p in group.permissions],
            ),
        )
        if confirm_name.strip() != group.name.strip():
            message = f"Type the group's name exactly as shown: {group.name}"
            raise InvalidInput(message, {"confirm_name": message})
        attempt.check(group=group)
        changed = attempt.send(lambda: client.delete_user_group(group_id), submission_key=submission_key)
        return Changed(group, changed.entry)
