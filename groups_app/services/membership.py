"""Membership use-cases: add, remove and replace the members (users and invites) of a group.

What is sent is what is checked: the rule book sees every address each change sends. For a
privileged group "already a member" is decided by a live read of the group (never by the
mirror, which may be behind a change made in Segment's own app), so that nobody is re-added
without a second person because the mirror still lists them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings

from groups_app.emails import address_problem
from groups_app.models import AuditEntry
from groups_app.roles import CHANGE_MEMBERSHIP
from groups_app.rules.book import Approval, outside_allowed_domains
from groups_app.segment import SegmentClient, SegmentError, UserGroup, normalize_emails
from groups_app.services.audit import actor_name
from groups_app.services.audit_details import details_for
from groups_app.services.changes import Changed, SecondPersonNeeded, change_attempt
from groups_app.services.errors import InvalidInput, StaleChange
from groups_app.services.groups import group_membership
from groups_app.services.mirror.selectors import known_workspace_users, mirrored_membership
from groups_app.services.mirror.write_through import note_members_added, note_members_removed, record_invites
from groups_app.services.segment_client import get_client
from groups_app.services.text import plural
from groups_app.services.workspace import Membership, group_is_privileged

Action = AuditEntry.Action


@dataclass(frozen=True)
class AddResult:
    group: UserGroup
    added_users: tuple[str, ...]
    invited: tuple[str, ...]
    already_members: tuple[str, ...]
    is_split_known: bool = True
    # Who was new came from a live read of the group, not from the mirror.
    is_split_live: bool = False
    # Emails filed as access requests for a second Administrator (a privileged group).
    awaiting_approval: tuple[str, ...] = ()

    @property
    def message(self) -> str:
        if self.awaiting_approval:
            return (
                f"{self.group.name} is a privileged group: a second Administrator must approve adding "
                f"{plural(len(self.awaiting_approval), 'person', 'people')}. "
                "Access requests were filed for them; nothing was changed yet."
            )
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

    @property
    def empties_the_group(self) -> bool:
        return not self.emails and bool(self.to_remove)


def checked_emails(emails: list[str], *, allow_empty: bool = False) -> list[str]:
    """Normalize and validate emails for a change; nothing is sent while any is unusable.

    Whether an address may be added at all (its domain, whose it is) is the rule book's to say.

    Raises:
        InvalidInput: empty (unless allowed), too many, or not usable addresses (field `emails`).
    """
    cleaned = normalize_emails(emails)
    if not cleaned and not allow_empty:
        raise InvalidInput("Enter at least one email.", {"emails": "Enter at least one email."})
    if len(cleaned) > settings.MAX_EMAILS_PER_CHANGE:
        message = f"At most {settings.MAX_EMAILS_PER_CHANGE} emails at once; you entered {len(cleaned)}."
        raise InvalidInput(message, {"emails": message})
    problems = [problem for email in cleaned if (problem := address_problem(email))]
    if problems:
        raise InvalidInput(" ".join(problems), {"emails": " ".join(problems)})
    return cleaned


def _membership_before(group: UserGroup, emails: list[str], client: SegmentClient) -> tuple[Membership, bool]:
    """Who of `emails` is in the group already, and whether that came from the mirror.

    A privileged group is read live: the mirror may still list someone removed in Segment's own
    app, and the two-person rule must see that person as new. Other groups are answered from the
    mirror when it holds them (an indexed lookup, however large the group).
    """
    if not group_is_privileged(group):
        mirrored = mirrored_membership(group.id, among=emails)
        if mirrored is not None:
            return mirrored, True
    return group_membership(group_id=group.id, client=client), False


def group_members_add(
    *,
    actor: Any,
    group_id: str,
    emails: list[str],
    submission_key: str | None = None,
    approval: Approval | None = None,
    client: SegmentClient | None = None,
) -> Changed[AddResult]:
    """Add emails to a group; those who are not workspace users become pending invites.

    Raises:
        RuleRefused (role, privileged group, self-addition, self-approval), InvalidInput,
        SecondPersonNeeded (a privileged group with the two-person rule: nothing was sent),
        DuplicateSubmission, ChangeOutcomeUnknown, SegmentError.
    """
    client = client or get_client()
    with change_attempt(
        actor=actor,
        action=Action.MEMBERS_ADD,
        permission=CHANGE_MEMBERSHIP,
        group_id=group_id,
        client=client,
        approval=approval,
    ) as attempt:
        emails = checked_emails(emails)
        group = client.get_user_group(group_id)
        before, from_mirror = _membership_before(group, emails, client)
        already = tuple(e for e in emails if e in before.emails)
        new = [e for e in emails if e not in before.emails]
        # From the mirror, everyone typed is sent (adding a member again changes nothing), so a
        # stale "already a member" never leaves someone out; from a live read, only the new.
        to_send = emails if from_mirror else new
        attempt.describe(
            summary=f"{actor_name(actor)} sent {plural(len(to_send), 'address', 'addresses')} to add to {group.name}",
            group=group,
            details=details_for(Action.MEMBERS_ADD, emails=to_send, already_members=list(already)),
        )
        # Every typed address is checked, sent or not: typing one's own address is refused.
        attempt.check(group=group, adds=emails, new_members=new)

        def add() -> AddResult:
            updated = client.add_users_to_user_group(group_id, to_send) if to_send else group
            if from_mirror:
                users = known_workspace_users(new)
                if all(e in users for e in new):
                    return _added(updated, tuple(new), (), already)
                # The mirror knows users through their groups only: someone in no group looks
                # new. The group's invites (one page, as a rule) say whom Segment invited.
            try:
                invites_after = set(client.iter_invites_from_user_group(group_id)) if new else set()
            except SegmentError:
                # The change is made; only the users/invites split could not be read back.
                attempt.record.details["split_unknown"] = True
                return AddResult(
                    updated, tuple(new), (), already, is_split_known=False, is_split_live=not from_mirror
                )
            invited = tuple(e for e in new if e in invites_after)
            added = tuple(e for e in new if e not in invites_after)
            return _added(updated, added, invited, already)

        def _added(updated: UserGroup, added: tuple, invited: tuple, already: tuple) -> AddResult:
            attempt.record.details.update(added_users=list(added), invited=list(invited))
            record_invites(group_id, invited)
            return AddResult(updated, added, invited, already, is_split_live=not from_mirror)

        def reported(result: AddResult) -> str:
            """What was sent and what became of it, for the completed entry."""
            count = len(result.added_users) + len(result.invited)
            text = f"{actor_name(actor)} added {plural(count, 'member')} to {group.name}"
            if len(to_send) != count:
                text += (
                    f" ({plural(len(to_send), 'address', 'addresses')} sent; {len(already)} already in it)"
                )
            return text

        changed = attempt.send(add, submission_key=submission_key, summary_on_success=reported)
        note_members_added(group_id, users=changed.result.added_users, invites=changed.result.invited)
        return changed


def group_members_remove(
    *,
    actor: Any,
    group_id: str,
    emails: list[str],
    submission_key: str | None = None,
    review: Any = None,
    client: SegmentClient | None = None,
) -> Changed[UserGroup]:
    """Remove users and invites from a group; they lose the access it grants.

    Raises:
        RuleRefused, InvalidInput, DuplicateSubmission, ChangeOutcomeUnknown, SegmentError.
    """
    client = client or get_client()
    with change_attempt(
        actor=actor,
        action=Action.MEMBERS_REMOVE,
        permission=CHANGE_MEMBERSHIP,
        group_id=group_id,
        client=client,
        review=review,
    ) as attempt:
        cleaned = normalize_emails(emails)
        if not cleaned:
            raise InvalidInput(
                "Choose at least one member to remove.", {"emails": "Choose at least one member."}
            )
        group = client.get_user_group(group_id)
        attempt.describe(
            summary=f"{actor_name(actor)} removed {plural(len(cleaned), 'member')} from {group.name}",
            group=group,
            details=details_for(Action.MEMBERS_REMOVE, emails=cleaned),
        )
        attempt.check(group=group, removes=cleaned)
        changed = attempt.send(
            lambda: client.remove_users_from_user_group(group_id, cleaned), submission_key=submission_key
        )
        note_members_removed(group_id, cleaned)
        return Changed(group, changed.entry)


def _replace_preview(group: UserGroup, current: Membership, emails: list[str]) -> ReplacePreview:
    wanted = set(emails)
    return ReplacePreview(
        group=group,
        emails=tuple(emails),
        to_add=tuple(e for e in emails if e not in current.emails),
        to_remove=tuple(sorted(current.emails - wanted)),
        unchanged=tuple(sorted(current.emails & wanted)),
        fingerprint=current.fingerprint,
    )


def group_members_replace_preview(
    *, group_id: str, emails: list[str], client: SegmentClient | None = None
) -> ReplacePreview:
    """What replacing a group's members with `emails` would change (a read; nothing is recorded).

    Raises:
        InvalidInput, NotFound, SegmentError.
    """
    emails = checked_emails(emails, allow_empty=True)
    if outside := outside_allowed_domains(emails):
        raise InvalidInput(outside, {"emails": outside})
    client = client or get_client()
    group = client.get_user_group(group_id)
    # From the mirror when it holds the group: applying reads the group whole and refuses the
    # change (with a new preview) if it differs from what this preview showed.
    current = mirrored_membership(group_id) or group_membership(group_id=group_id, client=client)
    return _replace_preview(group, current, emails)


def group_members_replace(
    *,
    actor: Any,
    group_id: str,
    emails: list[str],
    fingerprint: str,
    confirm_empty: bool = False,
    submission_key: str | None = None,
    client: SegmentClient | None = None,
) -> Changed[ReplacePreview]:
    """Set a group's members to exactly `emails`, if it has not changed since the preview.

    An empty list removes everyone, only with `confirm_empty`.

    Raises:
        RuleRefused, InvalidInput, StaleChange (with the new preview), DuplicateSubmission,
        ChangeOutcomeUnknown, SegmentError.
    """
    client = client or get_client()
    with change_attempt(
        actor=actor,
        action=Action.MEMBERS_REPLACE,
        permission=CHANGE_MEMBERSHIP,
        group_id=group_id,
        client=client,
    ) as attempt:
        emails = checked_emails(emails, allow_empty=True)
        group = client.get_user_group(group_id)
        current = group_membership(group_id=group_id, client=client)
        preview = _replace_preview(group, current, emails)
        attempt.describe(
            summary=(
                f"{actor_name(actor)} replaced the members of {group.name}: "
                f"{len(preview.to_add)} added, {len(preview.to_remove)} removed"
            ),
            group=group,
            details=details_for(
                Action.MEMBERS_REPLACE,
                emails=list(preview.emails),
                to_add=list(preview.to_add),
                to_remove=list(preview.to_remove),
                unchanged_count=len(preview.unchanged),
                fingerprint=fingerprint,
            ),
        )
        if preview.fingerprint != fingerprint:
            raise StaleChange(
                "The group's members changed since the preview; review the new changes.", preview
            )
        try:
            # The group was read whole and live: its additions are exactly `to_add`.
            attempt.check(
                group=group, adds=preview.to_add, new_members=preview.to_add, removes=preview.to_remove
            )
        except SecondPersonNeeded as exc:
            # A replacement cannot wait for approval as a whole: the additions go through Add members.
            message = f"{exc.message} Add them with Add members (they become access requests), or replace without additions."
            raise InvalidInput(message, {"emails": message}) from None
        if preview.empties_the_group and not confirm_empty:
            message = "This removes every member and invite of the group. Tick the box to confirm."
            raise InvalidInput(message, {"confirm_empty": message})

        def replace() -> None:
            if preview.emails:
                client.replace_users_in_user_group(group_id, list(preview.emails))
            elif preview.to_remove:  # the API replaces with at least one email: empty by removing
                client.remove_users_from_user_group(group_id, list(preview.to_remove))

        changed = attempt.send(replace, submission_key=submission_key)
        return Changed(preview, changed.entry)
