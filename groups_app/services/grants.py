"""What makes two grants the same, and how a grant is described in previews and the audit log.

A grant's identity includes its resources' labels: a label restricts access, so adding,
changing or dropping one is a change.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

from groups_app.segment import IamRole, Label, Permission, Resource
from groups_app.services.workspace import role_name

ResourceKey = tuple[str, str, frozenset[tuple[str, str]]]
PermissionKey = tuple[str, frozenset[ResourceKey]]


def resource_key(resource: Resource) -> ResourceKey:
    return resource.type, resource.id, resource.label_set


def permission_key(permission: Permission) -> PermissionKey:
    """The role and the set of resources, each with its labels."""
    return permission.role_id, frozenset(resource_key(r) for r in permission.resources)


def description_key(description: dict[str, Any]) -> PermissionKey:
    """The key of a permission as `describe()` recorded it (for reconciliation)."""
    return description["roleId"], frozenset(
        (r["type"], r["id"], frozenset((label["key"], label["value"]) for label in r.get("labels") or ()))
        for r in description["resources"]
    )


def describe(
    permission: Permission,
    roles: dict[str, IamRole] | None = None,
    names: dict[tuple[str, str], str] | None = None,
) -> dict[str, Any]:
    """A permission as readable JSON for previews and the audit log: labels included, and each
    resource's name as it was then (when known)."""
    names = names or {}
    return {
        "roleId": permission.role_id,
        "roleName": role_name(permission, roles or {}),
        "resources": [
            {
                "type": r.type,
                "id": r.id,
                "labels": [{"key": label.key, "value": label.value} for label in r.labels],
                **({"name": names[(r.type, r.id)]} if (r.type, r.id) in names else {}),
            }
            for r in sorted(permission.resources, key=lambda r: (r.type, r.id))
        ],
    }


def permissions_fingerprint(permissions: Iterable[Permission]) -> str:
    """Identifies an exact permission set, so a confirmation can tell if it changed since."""
    keys = sorted(
        json.dumps([role, sorted([t, i, sorted(labels)] for t, i, labels in resources)])
        for role, resources in (permission_key(p) for p in permissions)
    )
    return hashlib.sha256("\n".join(keys).encode()).hexdigest()[:32]


def keep_unedited_fields(
    wanted: Iterable[Permission], current: Iterable[Permission]
) -> tuple[Permission, ...]:
    """The wanted grants, with whatever the dashboard does not edit taken from the current ones.

    A resource kept with the same role, type and id keeps its label descriptions and any
    field the API returned that the form has no control for.
    """
    current_resources = {(p.role_id, r.type, r.id): (p, r) for p in current for r in p.resources}
    merged = []
    for permission in wanted:
        resources = []
        extra = permission.extra
        for resource in permission.resources:
            found = current_resources.get((permission.role_id, resource.type, resource.id))
            if found:
                resources.append(resource.keeping_unedited_fields_of(found[1]))
                extra = extra or found[0].extra
            else:
                resources.append(resource)
        merged.append(Permission(permission.role_id, permission.role_name, tuple(resources), extra))
    return tuple(merged)


def permission_from_description(description: dict[str, Any]) -> Permission:
    """The permission a `describe()` recorded, labels included (to restore a set exactly).

    Resource names are descriptions only and are left out; fields Segment returned that
    `describe()` does not keep are taken back from the current grants by `keep_unedited_fields`.
    """
    return Permission(
        role_id=str(description["roleId"]),
        role_name=str(description.get("roleName") or ""),
        resources=tuple(
            Resource(
                id=str(resource["id"]),
                type=str(resource["type"]),
                labels=tuple(
                    Label(key=str(label["key"]), value=str(label["value"]))
                    for label in resource.get("labels") or ()
                ),
            )
            for resource in description.get("resources") or ()
        ),
    )
