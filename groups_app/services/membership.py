"""Membership use-cases: add, remove and replace the members (users and invites) of a group."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from groups_app.emails import email_problems
from groups_app.models import AuditEntry
from groups_app.roles import CHANGE_MEMBERSHIP
from groups_app.segment import SegmentClient, SegmentError, User, UserGroup, get_client, normalize_emails
from groups_app.services.audit import actor_name, audited
from groups_app.services.common import group_cache_forget, plural, require_permission
from groups_app.services.errors import InvalidInput, StaleChange


@dataclass(frozen=True)
class Membership:
    """Everyone in a group at one moment: workspace users and pending invites."""

    users: tuple[User, ...]
    invites: tuple[str, ...]

    @property
    def emails(self) -> frozenset[str]:
        return frozenset(u.email.lower() for u in self.users) | frozenset(e.lower() for e in self.invites)

    @property
    def fingerprint(self) -> str:
        """Identifies this exact membership, so a confirmation can tell if it changed since."""
        return hashlib.sha256("\n".join(sorted(self.emails)).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class AddResult:
    group: UserGroup
    added_users: tuple[str, ...]
    invited: tuple[str, ...]
    already_members: tuple[str, ...]
    is_split_known: bool = True

    @property
    def message(self) -> str:
        if not self.is_split_known:
            return (
                f"Added {plural(len(self.added_users) + len(self.invited), 'member')} to {self.group.name}."
            )
        parts = []
        if self.added_users:
            parts.append(f"added {plural(len(self.added_users), 'user')}")
        if len(self.invited) == 1:
            parts.append("invited 1 person who is not yet a workspace user")
        elif self.invited:
            parts.append(f"invited {len(self.invited)} people who are not yet workspace users")
        if len(self.already_members) == 1:
            parts.append("1 was already a member")
        elif self.already_members:
            parts.append(f"{len(self.already_members)} were already members")
        text = ", ".join(parts) or "nothing to change"
        return text[0].upper() + text[1:] + "."


@dataclass(frozen=True)
class ReplacePreview:
    group: UserGroup
    emails: tuple[str, ...]
    to_add: tuple[str, ...]
    to_remove: tuple[str, ...]
    unchanged: tuple[str, ...]
    fingerprint: str

    @property
    def has_changes(self) -> bool:
        return bool(self.to_add or self.to_remove)


def checked_emails(emails: list[str]) -> list[str]:
    """Normalize and validate emails for a change; nothing is sent while any is unusable.

    Raises:
        InvalidInput: empty, too many, invalid or outside the allowed domains (field `emails`).
    """
    cleaned = normalize_emails(emails)
    if not cleaned:
        raise InvalidInput("Enter at least one email.", {"emails": "Enter at least one email."})
    if len(cleaned) > settings.MAX_EMAILS_PER_CHANGE:
        message = f"At most {settings.MAX_EMAILS_PER_CHANGE} emails at once; you entered {len(cleaned)}."
        raise InvalidInput(message, {"emails": message})
    problems = email_problems(cleaned)
    if problems:
        raise InvalidInput(" ".join(problems), {"emails": " ".join(problems)})
    return cleaned


def group_membership(*, group_id: str, client: SegmentClient | None = None) -> Membership:
    """Every user and invite of a group (all pages).

    Raises:
        NotFound, SegmentError.
    """
    client = client or get_client()
    return Membership(
        users=tuple(client.iter_users_from_user_group(group_id)),
        invites=tuple(client.iter_invites_from_user_group(group_id)),
    )


def group_members_add(
    *,
    actor: Any,
    group_id: str,
    emails: list[str],
    submission_key: str | None = None,
    client: SegmentClient | None = None,
) -> AddResult:
    """Add emails to a group; those who are not workspace users become pending invites.

    Raises:
        NotAllowed, InvalidInput, DuplicateSubmission, SegmentError (with `completed_emails`
        and `remaining_emails` when only some batches were applied).
    """
    require_permission(actor, CHANGE_MEMBERSHIP)
    emails = checked_emails(emails)
    client = client or get_client()
    group = client.get_user_group(group_id)
    before = group_membership(group_id=group_id, client=client)
    already = tuple(e for e in emails if e in before.emails)
    new = [e for e in emails if e not in before.emails]
    summary = f"{actor_name(actor)} added {plural(len(new), 'member')} to {group.name}"
    try:
        with audited(
            actor=actor,
            action=AuditEntry.Action.MEMBERS_ADD,
            summary=summary,
            group_id=group.id,
            group_name=group.name,
            details={"emails": emails, "already_members": list(already)},
            submission_key=submission_key,
        ) as record:
            updated = client.add_users_to_user_group(group_id, new) if new else group
            try:
                invites_after = set(client.iter_invites_from_user_group(group_id))
            except SegmentError:
                # The change is made; only the users/invites split could not be read back.
                record.details["split_unknown"] = True
                return AddResult(updated, tuple(new), (), already, is_split_known=False)
            invited = tuple(e for e in new if e in invites_after)
            added = tuple(e for e in new if e not in invites_after)
            record.details.update(added_users=list(added), invited=list(invited))
            return AddResult(updated, added, invited, already)
    finally:
        group_cache_forget(group_id)


def group_members_remove(
    *,
    actor: Any,
    group_id: str,
    emails: list[str],
    submission_key: str | None = None,
    client: SegmentClient | None = None,
) -> None:
    """Remove users and invites from a group; they lose the access it grants.

    Raises:
        NotAllowed, InvalidInput, DuplicateSubmission, SegmentError.
    """
    require_permission(actor, CHANGE_MEMBERSHIP)
    cleaned = normalize_emails(emails)
    if not cleaned:
        raise InvalidInput("Choose at least one member to remove.", {"emails": "Choose at least one member."})
    client = client or get_client()
    group = client.get_user_group(group_id)
    try:
        with audited(
            actor=actor,
            action=AuditEntry.Action.MEMBERS_REMOVE,
            summary=f"{actor_name(actor)} removed {plural(len(cleaned), 'member')} from {group.name}",
            group_id=group.id,
            group_name=group.name,
            details={"emails": cleaned},
            submission_key=submission_key,
        ):
            client.remove_users_from_user_group(group_id, cleaned)
    finally:
        group_cache_forget(group_id)


def group_members_replace_preview(
    *, group_id: str, emails: list[str], client: SegmentClient | None = None
) -> ReplacePreview:
    """What replacing a group's members with `emails` would change.

    Raises:
        InvalidInput, NotFound, SegmentError.
    """
    emails = checked_emails(emails)
    client = client or get_client()
    group = client.get_user_group(group_id)
    current = group_membership(group_id=group_id, client=client)
    wanted = set(emails)
    return ReplacePreview(
        group=group,
        emails=tuple(emails),
        to_add=tuple(e for e in emails if e not in current.emails),
        to_remove=tuple(sorted(current.emails - wanted)),
        unchanged=tuple(sorted(current.emails & wanted)),
        fingerprint=current.fingerprint,
    )


def group_members_replace(
    *,
    actor: Any,
    group_id: str,
    emails: list[str],
    fingerprint: str,
    submission_key: str | None = None,
    client: SegmentClient | None = None,
) -> ReplacePreview:
    """Set a group's members to exactly `emails`, if it has not changed since the preview.

    Raises:
        NotAllowed, InvalidInput, StaleChange (with the new preview), DuplicateSubmission,
        SegmentError.
    """
    require_permission(actor, CHANGE_MEMBERSHIP)
    client = client or get_client()
    preview = group_members_replace_preview(group_id=group_id, emails=emails, client=client)
    if preview.fingerprint != fingerprint:
        raise StaleChange("The group's members changed since the preview; review the new changes.", preview)
    group = preview.group
    try:
        with audited(
            actor=actor,
            action=AuditEntry.Action.MEMBERS_REPLACE,
            summary=(
                f"{actor_name(actor)} replaced the members of {group.name}: "
                f"{len(preview.to_add)} added, {len(preview.to_remove)} removed"
            ),
            group_id=group.id,
            group_name=group.name,
            details={
                "to_add": list(preview.to_add),
                "to_remove": list(preview.to_remove),
                "unchanged_count": len(preview.unchanged),
                "fingerprint": fingerprint,
            },
            submission_key=submission_key,
        ):
            client.replace_users_in_user_group(group_id, list(preview.emails))
    finally:
        group_cache_forget(group_id)
    return preview
