"""Permission use-cases: grant more roles to a group, or replace its whole set after a preview.

Grants round-trip losslessly: labels and fields the forms do not edit are kept from the
group's current grants (`grants.keep_unedited_fields`), and a label change is a change.
A grant of a privileged role is decided by the rule book like every change: with the
two-person rule it raises SecondPersonNeeded, and the approvals layer files a proposal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from groups_app.models import AuditEntry
from groups_app.roles import CHANGE_PERMISSIONS
from groups_app.rules.book import Approval
from groups_app.segment import Permission, SegmentClient, UserGroup
from groups_app.services.audit import actor_name
from groups_app.services.audit_details import details_for
from groups_app.services.changes import Changed, change_attempt
from groups_app.services.errors import InvalidInput, StaleChange
from groups_app.services.grants import (
    describe,
    keep_unedited_fields,
    permission_key,
    permissions_fingerprint,
)
from groups_app.services.groups import ResourceCatalog, resource_catalog, roles_by_id
from groups_app.services.segment_client import get_client
from groups_app.services.text import plural
from groups_app.services.workspace import role_name

Action = AuditEntry.Action
UNKNOWN_RESOURCES = (
    "Not found in this workspace: {items}. Check the ids; to grant them as typed anyway, tick “Grant anyway”."
)


def unknown_resources(
    permissions: list[Permission] | tuple[Permission, ...], catalog: ResourceCatalog
) -> tuple[str, ...]:
    """The resources of these grants that a listing of their type was read and does not hold (a
    type whose listing could not be read is not judged)."""
    read = set(catalog.by_type) - set(catalog.missing)
    names = catalog.names
    return tuple(
        dict.fromkeys(
            f"{r.id} ({r.type.title()})"
            for p in permissions
            for r in p.resources
            if r.type in read and (r.type, r.id) not in names
        )
    )


def _check_known(unknown: tuple[str, ...], confirmed: bool) -> None:
    if unknown and not confirmed:
        message = UNKNOWN_RESOURCES.format(items=", ".join(unknown))
        raise InvalidInput(message, {"resources": message, "confirm_unknown": message})


@dataclass(frozen=True)
class PermissionsPreview:
    group: UserGroup
    wanted: tuple[Permission, ...]
    added: tuple[dict, ...]
    removed: tuple[dict, ...]
    unchanged: tuple[dict, ...]
    fingerprint: str
    unknown: tuple[str, ...] = ()  # granted resources that the workspace's listings do not have

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
    confirm_unknown: bool = False,
    approval: Approval | None = None,
    client: SegmentClient | None = None,
) -> Changed[list[Permission]]:
    """Grant the group more roles on resources.

    A resource id that the workspace's listings do not have is refused unless `confirm_unknown`.
    `approval` is a second Administrator's approval of a proposed privileged grant.

    Raises:
        RuleRefused, InvalidInput, SecondPersonNeeded, DuplicateSubmission, ChangeOutcomeUnknown,
        SegmentError (ValidationFailed with fields such as `permissions.0.roleId`).
    """
    client = client or get_client()
    with change_attempt(
        actor=actor,
        action=Action.PERMISSIONS_ADD,
        permission=CHANGE_PERMISSIONS,
        group_id=group_id,
        client=client,
        approval=approval,
    ) as attempt:
        if not permissions:
            raise InvalidInput("Choose a role and at least one resource.", {"role": "Choose a role."})
        group = client.get_user_group(group_id)
        roles = roles_by_id(client=client)
        catalog = resource_catalog(client=client)
        names = catalog.names
        permissions = list(keep_unedited_fields(permissions, group.permissions))
        attempt.describe(
            summary=f"{actor_name(actor)} granted {', '.join(role_name(p, roles) for p in permissions)} to {group.name}",
            group=group,
            details=details_for(
                Action.PERMISSIONS_ADD,
                before=[describe(p, roles, names) for p in group.permissions],
                added=[describe(p, roles, names) for p in permissions],
            ),
        )
        _check_known(unknown_resources(permissions, catalog), confirm_unknown or approval is not None)
        attempt.check(group=group, grants=[role_name(p, roles) for p in permissions])

        def grant() -> list[Permission]:
            result = client.add_permissions_to_user_group(group_id, permissions)
            attempt.record.details["after"] = [describe(p, roles, names) for p in result]
            return result

        return attempt.send(grant, submission_key=submission_key)


def _preview(
    group: UserGroup, permissions: list[Permission], roles: dict, catalog: ResourceCatalog
) -> PermissionsPreview:
    names = catalog.names
    wanted_list = keep_unedited_fields(permissions, group.permissions)
    current = {permission_key(p): p for p in group.permissions}
    wanted = {permission_key(p): p for p in wanted_list}
    added = [p for k, p in wanted.items() if k not in current]
    return PermissionsPreview(
        group=group,
        wanted=tuple(wanted.values()),
        added=tuple(describe(p, roles, names) for k, p in wanted.items() if k not in current),
        removed=tuple(describe(p, roles, names) for k, p in current.items() if k not in wanted),
        unchanged=tuple(describe(p, roles, names) for k, p in wanted.items() if k in current),
        fingerprint=permissions_fingerprint(group.permissions),
        unknown=unknown_resources(added, catalog),
    )


def group_permissions_preview(
    *, group_id: str, permissions: list[Permission], client: SegmentClient | None = None
) -> PermissionsPreview:
    """What replacing the group's permissions with `permissions` would change (a read).

    Raises:
        NotFound, SegmentError.
    """
    client = client or get_client()
    group = client.get_user_group(group_id)
    return _preview(group, permissions, roles_by_id(client=client), resource_catalog(client=client))


def group_permissions_replace(
    *,
    actor: Any,
    group_id: str,
    permissions: list[Permission],
    fingerprint: str,
    confirm_empty: bool = False,
    confirm_unknown: bool = False,
    submission_key: str | None = None,
    approval: Approval | None = None,
    client: SegmentClient | None = None,
) -> Changed[PermissionsPreview]:
    """Set the group's permissions to exactly `permissions`, if unchanged since the preview.

    Raises:
        RuleRefused, InvalidInput (an empty set without confirmation), StaleChange,
        SecondPersonNeeded, DuplicateSubmission, ChangeOutcomeUnknown, SegmentError.
    """
    client = client or get_client()
    with change_attempt(
        actor=actor,
        action=Action.PERMISSIONS_REPLACE,
        permission=CHANGE_PERMISSIONS,
        group_id=group_id,
        client=client,
        approval=approval,
    ) as attempt:
        if not permissions and not confirm_empty:
            message = "This removes every permission of the group. Tick the box to confirm."
            raise InvalidInput(message, {"confirm_empty": message})
        group = client.get_user_group(group_id)
        roles = roles_by_id(client=client)
        catalog = resource_catalog(client=client)
        names = catalog.names
        preview = _preview(group, permissions, roles, catalog)
        attempt.describe(
            summary=(
                f"{actor_name(actor)} replaced the permissions of {group.name}: "
                f"{plural(len(preview.added), 'grant')} added, {len(preview.removed)} removed"
            ),
            group=group,
            details=details_for(
                Action.PERMISSIONS_REPLACE,
                added=list(preview.added),
                removed=list(preview.removed),
                unchanged=list(preview.unchanged),
                wanted=[describe(p, roles, names) for p in preview.wanted],
                fingerprint=fingerprint,
            ),
        )
        if preview.fingerprint != fingerprint:
            raise StaleChange(
                "The group's permissions changed since the preview; review the new changes.", preview
            )
        _check_known(preview.unknown, confirm_unknown or approval is not None)
        attempt.check(group=group, grants=[d["roleName"] for d in preview.added])
        changed = attempt.send(
            lambda: client.replace_permissions_for_user_group(group_id, list(preview.wanted)),
            submission_key=submission_key,
        )
        return Changed(preview, changed.entry)
