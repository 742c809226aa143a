"""Drift: differences between a reading of Segment and the mirror that Group Admin did not make.

A difference that none of Group Admin's own audit entries explains was made outside it (in
Segment's app, with Terraform, by a script) and becomes one "observed" audit entry per group.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings

from groups_app.models import AuditEntry, MirrorGroup, SyncRun
from groups_app.segment import (
    IamRole,
    UserGroup,
    WorkspaceUser,
)
from groups_app.services.grants import describe, permissions_fingerprint
from groups_app.services.mirror.selectors import stored_permissions

OBSERVED_ACTOR = "outside Group Admin"
Action = AuditEntry.Action
# Audit entries of these outcomes changed nothing, so they explain no difference.
NOT_APPLIED = (AuditEntry.Status.FAILED, AuditEntry.Status.REFUSED)
MemberRow = tuple[str, str, str]  # kind, user id, name


@dataclass
class GroupSnapshot:
    """One group as read from Segment, with every user and invite."""

    group: UserGroup
    users: tuple[WorkspaceUser, ...]
    invites: tuple[str, ...]
    read_at: datetime


@dataclass
class Difference:
    """What changed in one group between the mirror and Segment, not explained by Group Admin."""

    group_id: str
    group_name: str
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    permissions_before: list[dict] | None = None
    permissions_after: list[dict] | None = None
    old_name: str = ""
    new_name: str = ""
    created: bool = False
    deleted: bool = False
    previous_read_at: datetime | None = None
    read_at: datetime | None = None

    def __bool__(self) -> bool:
        return bool(
            self.added
            or self.removed
            or self.permissions_after is not None
            or self.old_name
            or self.created
            or self.deleted
        )

    @property
    def summary(self) -> str:
        parts = []
        if self.created:
            parts.append("group created")
        if self.deleted:
            parts.append("group deleted")
        if self.old_name:
            parts.append(f"renamed from {self.old_name}")
        if self.added:
            parts.append(f"added {', '.join(self.added[:3])}{' …' if len(self.added) > 3 else ''}")
        if self.removed:
            parts.append(f"removed {', '.join(self.removed[:3])}{' …' if len(self.removed) > 3 else ''}")
        if self.permissions_after is not None:
            parts.append("permissions changed")
        return f"Observed outside Group Admin in {self.group_name}: {'; '.join(parts)}"


def difference_between(
    old: MirrorGroup | None,
    snap: GroupSnapshot,
    before: dict[str, tuple[int, MemberRow]],
    after: dict[str, MemberRow],
    roles: dict[str, IamRole],
) -> Difference:
    """Everything that differs between the mirror's group and what Segment returned now.

    An invite that became a user is the same member: accepting an invite is no change of access.
    """
    difference = Difference(snap.group.id, snap.group.name, read_at=snap.read_at)
    if old is None:
        difference.created = True
        difference.added = sorted(after)
        if snap.group.permissions:
            difference.permissions_before = []
            difference.permissions_after = [describe(p, roles) for p in snap.group.permissions]
        return difference
    difference.previous_read_at = old.read_at
    difference.added = sorted(set(after) - set(before))
    difference.removed = sorted(set(before) - set(after))
    if old.name != snap.group.name:
        difference.old_name, difference.new_name = old.name, snap.group.name
    previous = stored_permissions(old)
    if permissions_fingerprint(previous) != permissions_fingerprint(snap.group.permissions):
        difference.permissions_before = [describe(p, roles) for p in previous]
        difference.permissions_after = [describe(p, roles) for p in snap.group.permissions]
    return difference


def _explanations(group_id: str, since: datetime | None) -> list[AuditEntry]:
    """Group Admin's own entries that may have changed this group since the earlier reading.

    The window starts before that reading by the time a change may take to apply (an entry is
    written before its call is sent, and Segment may apply it after the reading).
    """
    entries = AuditEntry.objects.filter(group_id=group_id).exclude(status__in=NOT_APPLIED)
    entries = entries.exclude(action=Action.OBSERVED).exclude(resolution=AuditEntry.Resolution.NOT_APPLIED)
    if since is not None:
        margin = max(60.0, 3 * settings.SEGMENT_REQUEST_DEADLINE)
        entries = entries.filter(created_at__gte=since - timedelta(seconds=margin))
    return list(entries.only("action", "details", "status", "resolution"))


ADDING_FIELDS = {
    Action.MEMBERS_ADD: ("emails", "added_users", "invited", "applied_emails"),
    Action.MEMBERS_REPLACE: ("to_add", "emails"),
}
REMOVING_FIELDS = {
    Action.MEMBERS_REMOVE: ("emails", "applied_emails"),
    Action.MEMBERS_REPLACE: ("to_remove",),
}
PERMISSION_ACTIONS = {Action.PERMISSIONS_ADD, Action.PERMISSIONS_REPLACE}


def _emails_in(entries: list[AuditEntry], fields_by_action: dict[str, tuple[str, ...]]) -> set[str]:
    emails: set[str] = set()
    for entry in entries:
        for name in fields_by_action.get(entry.action, ()):
            value = (entry.details or {}).get(name) or ()
            emails.update(str(e).lower() for e in value if isinstance(value, list))
    return emails


def _unexplained(difference: Difference) -> Difference:
    entries = _explanations(difference.group_id, difference.previous_read_at)
    actions = {entry.action for entry in entries}
    if (difference.created and Action.GROUP_CREATE in actions) or (
        difference.deleted and Action.GROUP_DELETE in actions
    ):
        return Difference(difference.group_id, difference.group_name)
    if difference.created:
        return difference
    rest = Difference(
        difference.group_id,
        difference.group_name,
        previous_read_at=difference.previous_read_at,
        read_at=difference.read_at,
        deleted=difference.deleted,
        permissions_before=difference.permissions_before if difference.deleted else None,
        removed=difference.removed if difference.deleted else [],
    )
    if difference.deleted:
        return rest
    added_here = _emails_in(entries, ADDING_FIELDS)
    removed_here = _emails_in(entries, REMOVING_FIELDS)
    rest.added = [e for e in difference.added if e not in added_here]
    rest.removed = [e for e in difference.removed if e not in removed_here]
    if difference.old_name and Action.GROUP_RENAME not in actions:
        rest.old_name, rest.new_name = difference.old_name, difference.new_name
    if difference.permissions_after is not None and not actions & PERMISSION_ACTIONS:
        rest.permissions_before = difference.permissions_before
        rest.permissions_after = difference.permissions_after
    return rest


def record_unexplained(run: SyncRun, differences: list[Difference]) -> list[AuditEntry]:
    """One "observed" audit entry per group whose difference Group Admin does not explain."""
    observed = []
    for difference in differences:
        rest = _unexplained(difference)
        if not rest:
            continue
        details = {
            "added": rest.added,
            "removed": rest.removed,
            "old_name": rest.old_name,
            "new_name": rest.new_name,
            "group_created": rest.created,
            "group_deleted": rest.deleted,
            "permissions_before": rest.permissions_before,
            "permissions_after": rest.permissions_after,
            "previous_reading": rest.previous_read_at.isoformat() if rest.previous_read_at else "",
            "reading": (rest.read_at or run.started_at).isoformat(),
            "sync": run.pk,
        }
        entry = AuditEntry.objects.create(
            actor_username=OBSERVED_ACTOR,
            action=Action.OBSERVED,
            group_id=rest.group_id,
            group_name=rest.group_name[:200],
            summary=rest.summary[:500],
            details={k: v for k, v in details.items() if v not in (None, "", [], False)},
        )
        # Complete at the instant it was written (created_at is stamped on insert, so a
        # completed_at passed to create() would come before it).
        entry.status, entry.completed_at = AuditEntry.Status.SUCCEEDED, entry.created_at
        AuditEntry.objects.complete(entry.pk, status=entry.status, completed_at=entry.completed_at)
        observed.append(entry)
    return observed
