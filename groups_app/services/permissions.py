"""Permission use-cases: grant more roles to a group, or replace its whole set after a preview."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from groups_app.models import AuditEntry
from groups_app.roles import CHANGE_PERMISSIONS
from groups_app.segment import Permission, SegmentClient, UserGroup, get_client
from groups_app.services.audit import actor_name, audited
from groups_app.services.common import group_cache_forget, plural, require_permission
from groups_app.services.errors import InvalidInput, StaleChange
from groups_app.services.groups import role_name, roles_by_id


def permission_key(permission: Permission) -> tuple[str, frozenset[tuple[str, str]]]:
    """What makes two permissions the same grant: the role and the set of resources."""
    return permission.role_id, frozenset((r.type, r.id) for r in permission.resources)


def describe(permission: Permission, roles: dict | None = None) -> dict[str, Any]:
    """A permission as readable JSON for previews and the audit log."""
    return {
        "roleId": permission.role_id,
        "roleName": role_name(permission, roles or {}),
        "resources": [
            {"type": r.type, "id": r.id} for r in sorted(permission.resources, key=lambda r: (r.type, r.id))
        ],
    }


def permissions_fingerprint(permissions: tuple[Permission, ...] | list[Permission]) -> str:
    keys = sorted(
        json.dumps([role, sorted(resources)]) for role, resources in (permission_key(p) for p in permissions)
    )
    return hashlib.sha256("\n".join(keys).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class PermissionsPreview:
    group: UserGroup
    wanted: tuple[Permission, ...]
    added: tuple[dict, ...]
    removed: tuple[dict, ...]
    unchanged: tuple[dict, ...]
    fingerprint: str

    @property
    def has_changes(self) -> bool:
        return bool(self.added or self.removed)

    @property
    def removes_everything(self) -> bool:
        return not self.wanted


def group_permissions_add(
    *,
    actor: Any,
    group_id: str,
    permissions: list[Permission],
    submission_key: str | None = None,
    client: SegmentClient | None = None,
) -> list[Permission]:
    """Grant the group more roles on resources.

    Raises:
        NotAllowed, InvalidInput, DuplicateSubmission, SegmentError (ValidationFailed with
        fields such as `permissions.0.roleId`).
    """
    require_permission(actor, CHANGE_PERMISSIONS)
    if not permissions:
        raise InvalidInput("Choose a role and at least one resource.", {"role": "Choose a role."})
    client = client or get_client()
    group = client.get_user_group(group_id)
    roles = roles_by_id(client=client)
    names = ", ".join(role_name(p, roles) for p in permissions)
    try:
        with audited(
            actor=actor,
            action=AuditEntry.Action.PERMISSIONS_ADD,
            summary=f"{actor_name(actor)} granted {names} to {group.name}",
            group_id=group.id,
            group_name=group.name,
            details={
                "before": [describe(p, roles) for p in group.permissions],
                "added": [describe(p, roles) for p in permissions],
            },
            submission_key=submission_key,
        ) as record:
            result = client.add_permissions_to_user_group(group_id, permissions)
            record.details["after"] = [describe(p, roles) for p in result]
            return result
    finally:
        group_cache_forget(group_id)


def group_permissions_preview(
    *, group_id: str, permissions: list[Permission], client: SegmentClient | None = None
) -> PermissionsPreview:
    """What replacing the group's permissions with `permissions` would change.

    Raises:
        NotFound, SegmentError.
    """
    client = client or get_client()
    group = client.get_user_group(group_id)
    roles = roles_by_id(client=client)
    current = {permission_key(p): p for p in group.permissions}
    wanted = {permission_key(p): p for p in permissions}
    return PermissionsPreview(
        group=group,
        wanted=tuple(wanted.values()),
        added=tuple(describe(p, roles) for k, p in wanted.items() if k not in current),
        removed=tuple(describe(p, roles) for k, p in current.items() if k not in wanted),
        unchanged=tuple(describe(p, roles) for k, p in wanted.items() if k in current),
        fingerprint=permissions_fingerprint(group.permissions),
    )


def group_permissions_replace(
    *,
    actor: Any,
    group_id: str,
    permissions: list[Permission],
    fingerprint: str,
    confirm_empty: bool = False,
    submission_key: str | None = None,
    client: SegmentClient | None = None,
) -> PermissionsPreview:
    """Set the group's permissions to exactly `permissions`, if unchanged since the preview.

    Raises:
        NotAllowed, InvalidInput (an empty set without confirmation), StaleChange,
        DuplicateSubmission, SegmentError.
    """
    require_permission(actor, CHANGE_PERMISSIONS)
    if not permissions and not confirm_empty:
        message = "This removes every permission of the group. Tick the box to confirm."
        raise InvalidInput(message, {"confirm_empty": message})
    client = client or get_client()
    preview = group_permissions_preview(group_id=group_id, permissions=permissions, client=client)
    if preview.fingerprint != fingerprint:
        raise StaleChange(
            "The group's permissions changed since the preview; review the new changes.", preview
        )
    group = preview.group
    try:
        with audited(
            actor=actor,
            action=AuditEntry.Action.PERMISSIONS_REPLACE,
            summary=(
                f"{actor_name(actor)} replaced the permissions of {group.name}: "
                f"{plural(len(preview.added), 'grant')} added, {len(preview.removed)} removed"
            ),
            group_id=group.id,
            group_name=group.name,
            details={
                "added": list(preview.added),
                "removed": list(preview.removed),
                "unchanged": list(preview.unchanged),
                "fingerprint": fingerprint,
            },
            submission_key=submission_key,
        ):
            client.replace_permissions_for_user_group(group_id, list(preview.wanted))
    finally:
        group_cache_forget(group_id)
    return preview
