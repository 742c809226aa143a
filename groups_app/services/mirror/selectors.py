"""Reads of the mirror: how fresh it is, a mirrored group, its members, known workspace users."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from groups_app.models import MirrorGroup, MirrorMember, MirrorResource, MirrorRole, SyncRun
from groups_app.segment import (
    IamRole,
    Permission,
    UserGroup,
    WorkspaceUser,
)
from groups_app.services.workspace import Membership

# A requested sync that no worker started within this many seconds may be requested again.
SYNC_REQUEST_SECONDS = 300
# The syncs that read the whole group listing (a quick pass reads it too, then what changed).
LISTING_KINDS = (SyncRun.Kind.FULL, SyncRun.Kind.QUICK)


def pending_sync_requests():
    since = timezone.now() - timedelta(seconds=SYNC_REQUEST_SECONDS)
    return SyncRun.objects.filter(
        kind=SyncRun.Kind.FULL, status=SyncRun.Status.REQUESTED, started_at__gte=since
    )


def permission_records(permissions: Iterable[Permission]) -> list[dict[str, Any]]:
    """Permissions as stored in the mirror: the wire payload, role name and unknown fields kept."""
    return [{**p.to_payload(), "roleName": p.role_name} for p in permissions]


def stored_permissions(group: MirrorGroup) -> tuple[Permission, ...]:
    return tuple(Permission.from_payload(record) for record in group.permissions or ())


# --- reading the mirror ----------------------------------------------------------------------


@dataclass(frozen=True)
class Freshness:
    """How fresh the mirror is, for the "as of" line of the pages that read it."""

    as_of: datetime | None
    running: bool
    last_failed: SyncRun | None
    requested: bool = False

    @property
    def is_updating(self) -> bool:
        return self.running or self.requested

    @property
    def is_empty(self) -> bool:
        return self.as_of is None


def last_sync() -> SyncRun | None:
    """The last successful full sync or quick pass: the mirror is as of its start."""
    return (
        SyncRun.objects.filter(kind__in=LISTING_KINDS, status=SyncRun.Status.SUCCEEDED)
        .order_by("-started_at")
        .first()
    )


def mirror_freshness() -> Freshness:
    """As of the start of the last successful sync, full or quick (when Segment was read)."""
    last = last_sync()
    running = SyncRun.objects.filter(kind=SyncRun.Kind.FULL, status=SyncRun.Status.RUNNING).exists()
    latest = (
        SyncRun.objects.filter(kind=SyncRun.Kind.FULL)
        .exclude(status__in=[SyncRun.Status.RUNNING, SyncRun.Status.REQUESTED])
        .first()
    )
    failed = latest if latest is not None and latest.status != SyncRun.Status.SUCCEEDED else None
    return Freshness(
        as_of=last.started_at if last else None,
        running=running,
        last_failed=failed,
        requested=pending_sync_requests().exists(),
    )


def mirrored_roles() -> dict[str, IamRole]:
    return {r.role_id: IamRole(r.role_id, r.name, r.description) for r in MirrorRole.objects.all()}


def mirrored_resource_names() -> dict[tuple[str, str], str]:
    """Resource names by (type, id), as the last full sync read them."""
    return {
        (resource_type, resource_id): name
        for resource_type, resource_id, name in MirrorResource.objects.values_list(
            "resource_type", "resource_id", "name"
        )
    }


def mirrored_group(group: MirrorGroup) -> UserGroup:
    """A mirrored group as the client's dataclass, permissions exactly as read."""
    return UserGroup(
        id=group.group_id,
        name=group.name,
        member_count=group.member_count,
        permissions=stored_permissions(group),
    )


def mirrored_group_or_none(group_id: str) -> UserGroup | None:
    """The mirror's copy of one group, or None when it does not hold it."""
    stored = MirrorGroup.objects.filter(group_id=group_id).first()
    return mirrored_group(stored) if stored is not None else None


def mirrored_groups(group_ids: Iterable[str]) -> dict[str, UserGroup]:
    """The mirror's copies of these groups, by id, in one query (those it does not hold are left out)."""
    return {
        row.group_id: mirrored_group(row) for row in MirrorGroup.objects.filter(group_id__in=set(group_ids))
    }


def group_seen_missing(group_id: str, *, since: datetime) -> bool:
    """Whether a full sync that started after `since` found no such group (deleted outside)."""
    if MirrorGroup.objects.filter(group_id=group_id).exists():
        return False
    return SyncRun.objects.filter(
        kind__in=LISTING_KINDS, status=SyncRun.Status.SUCCEEDED, started_at__gt=since
    ).exists()


def mirrored_membership(group_id: str, *, among: Iterable[str] | None = None) -> Membership | None:
    """A group's users and invites as the mirror holds them, or only those `among` some emails
    (an indexed lookup, however large the group); None when the mirror holds no such group."""
    if not MirrorGroup.objects.filter(group_id=group_id).exists():
        return None
    members = MirrorMember.objects.filter(group_id=group_id)
    if among is not None:
        members = members.filter(email__in=[e.lower() for e in among])
    users, invites = [], []
    for email, kind, user_id, name in members.values_list("email", "kind", "user_id", "name"):
        if kind == MirrorMember.Kind.USER:
            users.append(WorkspaceUser(id=user_id, name=name, email=email))
        else:
            invites.append(email)
    return Membership(users=tuple(users), invites=tuple(invites))


def known_workspace_users(emails: Iterable[str]) -> set[str]:
    """Which of these emails the mirror has seen as workspace users (in any group)."""
    emails = [e.lower() for e in emails]
    found = MirrorMember.objects.filter(email__in=emails, kind=MirrorMember.Kind.USER)
    return set(found.values_list("email", flat=True))
