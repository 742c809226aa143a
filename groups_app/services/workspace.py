"""Small shared facts about a workspace's groups, used by every layer above the client.

A leaf: it imports nothing of the services, so the change services, the mirror and the
read services can all rely on it without importing each other.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from django.conf import settings

from groups_app.segment import IamRole, Permission, UserGroup, WorkspaceUser


@dataclass(frozen=True)
class Membership:
    """Everyone in a group at one moment: workspace users and pending invites."""

    users: tuple[WorkspaceUser, ...]
    invites: tuple[str, ...]

    @property
    def emails(self) -> frozenset[str]:
        return frozenset(u.email.lower() for u in self.users) | frozenset(e.lower() for e in self.invites)

    @property
    def fingerprint(self) -> str:
        """Identifies this exact membership, so a confirmation can tell if it changed since."""
        return membership_fingerprint(self.emails)


def membership_fingerprint(emails: frozenset[str] | set[str]) -> str:
    return hashlib.sha256("\n".join(sorted(emails)).encode()).hexdigest()[:32]


def role_name(permission: Permission, roles: dict[str, IamRole]) -> str:
    """The role's name from list_roles, else the payload's roleName, else its id."""
    role = roles.get(permission.role_id)
    return role.name if role else permission.role_name or permission.role_id


def is_privileged_role(name: str) -> bool:
    """Whether a role name is one of PRIVILEGED_ROLES (compared without case)."""
    return name.casefold() in {role.casefold() for role in settings.PRIVILEGED_ROLES}


def privileged_role_names(permissions: tuple[Permission, ...] | list[Permission], roles=None) -> list[str]:
    """The privileged roles among these grants, by name, sorted."""
    return sorted({name for p in permissions if is_privileged_role(name := role_name(p, roles or {}))})


def group_is_privileged(group: UserGroup, roles: dict[str, IamRole] | None = None) -> bool:
    """A group is privileged when it grants any of PRIVILEGED_ROLES, on any resource."""
    return bool(privileged_role_names(group.permissions, roles))
