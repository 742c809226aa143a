"""What the doors (pages, People, the API) call to change a group: the change itself, or, when
the rule book wants a second person, its filing for approval.

The change services never file anything: they raise `SecondPersonNeeded` with the facts the
rule book decided on, and these functions file exactly those (the addresses that would have
been new members, the grants that would have been made).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from groups_app.models import ChangeProposal
from groups_app.segment import Permission, SegmentClient
from groups_app.services.approvals.access_requests import access_request_file
from groups_app.services.approvals.expiry import access_ends_record, checked_end_date, time_bound_superseded
from groups_app.services.approvals.proposals import proposal_file
from groups_app.services.audit import actor_name
from groups_app.services.changes import Changed, SecondPersonNeeded
from groups_app.services.errors import AwaitingApproval
from groups_app.services.grants import describe, keep_unedited_fields
from groups_app.services.groups import resource_catalog, roles_by_id
from groups_app.services.membership import AddResult, group_members_add
from groups_app.services.permissions import (
    PermissionsPreview,
    group_permissions_add,
    group_permissions_preview,
    group_permissions_replace,
)
from groups_app.services.segment_client import get_client
from groups_app.services.workspace import Membership


def members_add_or_file(
    *,
    actor: Any,
    group_id: str,
    emails: list[str],
    submission_key: str | None = None,
    ends_on: date | None = None,
    client: SegmentClient | None = None,
) -> Changed[AddResult]:
    """Add emails to a group; for a privileged group under the two-person rule, file an access
    request per new member for a second Administrator instead (nothing is sent).

    With `ends_on`, the memberships the addition makes end after that day (those filed for a
    second Administrator carry it as their end date); people already in the group keep theirs.

    Raises:
        What group_members_add raises, but SecondPersonNeeded; InvalidInput (`ends_on` in the past).
    """
    client = client or get_client()
    checked_end_date(ends_on)
    try:
        changed = group_members_add(
            actor=actor, group_id=group_id, emails=emails, submission_key=submission_key, client=client
        )
    except SecondPersonNeeded as exc:
        change = exc.change
        filed = access_request_file(
            actor=actor,
            group_id=group_id,
            emails=list(change.new_members),
            justification=f"Added by {actor_name(actor)}; a privileged group needs a second Administrator.",
            group=change.group,
            needed_until=ends_on,
            # The change read the group live: these addresses are not in it.
            members=Membership(users=(), invites=()),
            client=client,
        )
        already = tuple(e for e in change.adds if e not in change.new_members)
        awaiting = tuple(r.email for r in (*filed.filed, *filed.duplicates))
        result = AddResult(change.group, (), (), already, awaiting_approval=awaiting)
        return Changed(result, exc.entry)
    added = changed.result
    # Those the addition made members were not in the group: an end date still running for them
    # is left over from a membership that ended otherwise, and must not remove them again
    # (when that is known, see `time_bound_superseded`).
    time_bound_superseded(
        actor=actor,
        group_id=added.group.id,
        emails=[*added.added_users, *added.invited],
        entry=changed.entry,
        read_live=added.is_split_live,
    )
    if ends_on is not None:
        access_ends_record(
            actor=actor,
            group_id=added.group.id,
            group_name=added.group.name,
            emails=[*added.added_users, *added.invited],
            ends_on=ends_on,
            entry=changed.entry,
        )
    return changed


def permissions_add_or_propose(
    *,
    actor: Any,
    group_id: str,
    permissions: list[Permission],
    submission_key: str | None = None,
    confirm_unknown: bool = False,
    client: SegmentClient | None = None,
) -> Changed[list[Permission]]:
    """Grant roles; a privileged grant under the two-person rule is filed as a proposal instead.

    Raises:
        What group_permissions_add raises, but AwaitingApproval instead of SecondPersonNeeded.
    """
    client = client or get_client()
    try:
        return group_permissions_add(
            actor=actor,
            group_id=group_id,
            permissions=permissions,
            submission_key=submission_key,
            confirm_unknown=confirm_unknown,
            client=client,
        )
    except SecondPersonNeeded as exc:
        group = exc.change.group
        roles = roles_by_id(client=client)
        names = resource_catalog(client=client).names
        proposal = proposal_file(
            actor=actor,
            kind=ChangeProposal.Kind.ADD,
            group=group,
            permissions=keep_unedited_fields(permissions, group.permissions),
            summary=[describe(p, roles, names) for p in permissions],
            client=client,
        )
        raise AwaitingApproval(_filed_message(exc), proposal) from None


def permissions_replace_or_propose(
    *,
    actor: Any,
    group_id: str,
    permissions: list[Permission],
    fingerprint: str,
    confirm_empty: bool = False,
    confirm_unknown: bool = False,
    submission_key: str | None = None,
    client: SegmentClient | None = None,
) -> Changed[PermissionsPreview]:
    """Replace the permission set; one that grants a privileged role under the two-person rule is
    filed as a proposal instead.

    Raises:
        What group_permissions_replace raises, but AwaitingApproval instead of SecondPersonNeeded.
    """
    client = client or get_client()
    try:
        return group_permissions_replace(
            actor=actor,
            group_id=group_id,
            permissions=permissions,
            fingerprint=fingerprint,
            confirm_empty=confirm_empty,
            confirm_unknown=confirm_unknown,
            submission_key=submission_key,
            client=client,
        )
    except SecondPersonNeeded as exc:
        preview = group_permissions_preview(group_id=group_id, permissions=permissions, client=client)
        proposal = proposal_file(
            actor=actor,
            kind=ChangeProposal.Kind.REPLACE,
            group=preview.group,
            permissions=preview.wanted,
            summary=list(preview.added),
            fingerprint=fingerprint,
            client=client,
        )
        raise AwaitingApproval(_filed_message(exc), proposal) from None


def _filed_message(exc: SecondPersonNeeded) -> str:
    return f"{exc.message} It was filed as a proposal on the group's page for another Administrator."
