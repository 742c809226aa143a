"""The two-person rule for privileged grants: propose, then a second Administrator approves or rejects.

A permission change that grants one of PRIVILEGED_ROLES is not sent when an Administrator
makes it: the rule book wants a second person, and it is filed here as a proposal. Another
Administrator approves it, which runs it through the change pipeline in their name with an
explicit `Approval`, or rejects it with a reason. Every decision, allowed or refused, is audited.

No laundering: a proposal records who is in the group and who joined since it last granted a
privileged role, so the approver sees who would gain the role (someone added while the grant
was briefly removed included).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from groups_app.models import AuditEntry, ChangeProposal
from groups_app.roles import is_administrator
from groups_app.rules import book
from groups_app.rules.book import Approval
from groups_app.segment import Permission, SegmentClient, SegmentError, UserGroup
from groups_app.services import queue
from groups_app.services.audit import actor_name, audited
from groups_app.services.audit_details import details_for
from groups_app.services.changes import Changed
from groups_app.services.errors import (
    ChangeOutcomeUnknown,
    InvalidInput,
    NotAllowed,
    ServiceError,
    StaleChange,
)
from groups_app.services.groups import group_membership
from groups_app.services.permissions import group_permissions_add, group_permissions_replace
from groups_app.services.segment_client import get_client
from groups_app.services.transitions import transition
from groups_app.services.workspace import is_privileged_role

Action = AuditEntry.Action
Status = ChangeProposal.Status
NOT_ADMINISTRATOR = "Only Administrators decide proposed grants."

# Audit entries that add members, and the detail fields naming whom.
ADDING = {
    Action.MEMBERS_ADD: ("added_users", "invited", "emails"),
    Action.MEMBERS_REPLACE: ("to_add",),
    Action.OBSERVED: ("added",),
}
APPLIED = (AuditEntry.Status.SUCCEEDED, AuditEntry.Status.UNKNOWN)


def _grants_privileged(descriptions: list[dict] | None) -> bool:
    return any(is_privileged_role(d.get("roleName") or "") for d in descriptions or ())


def last_privileged_at(group: UserGroup, privileged_now: bool) -> datetime | None:
    """When the group last granted a privileged role, as far as the audit log knows: now if it
    does, else the moment a change (through Group Admin or observed outside it) took it away."""
    if privileged_now:
        return timezone.now()
    entries = AuditEntry.objects.filter(
        group_id=group.id,
        action__in=[Action.PERMISSIONS_REPLACE, Action.OBSERVED],
        status__in=APPLIED,
    ).exclude(resolution=AuditEntry.Resolution.NOT_APPLIED)
    for entry in entries.order_by("-created_at", "-id").iterator():
        details = entry.details or {}
        if entry.action == Action.PERMISSIONS_REPLACE and _grants_privileged(details.get("removed")):
            return entry.created_at
        if entry.action == Action.OBSERVED and _grants_privileged(details.get("permissions_before")):
            return entry.created_at
    return None


def joined_since(group_id: str, since: datetime, members: frozenset[str]) -> list[str]:
    """Who of the current `members` was added to the group after `since`."""
    joined: set[str] = set()
    entries = AuditEntry.objects.filter(
        group_id=group_id, action__in=list(ADDING), status__in=APPLIED, created_at__gte=since
    ).exclude(resolution=AuditEntry.Resolution.NOT_APPLIED)
    for entry in entries.iterator():
        for name in ADDING[entry.action]:
            value = (entry.details or {}).get(name) or []
            if isinstance(value, list):
                joined.update(str(email).lower() for email in value)
    return sorted(joined & members)


def proposal_file(
    *,
    actor: Any,
    kind: str,
    group: UserGroup,
    permissions: list[Permission] | tuple[Permission, ...],
    summary: list[dict],
    fingerprint: str = "",
    client: SegmentClient | None = None,
) -> ChangeProposal:
    """Record a privileged grant for a second Administrator to approve (audited), with who is in
    the group now and who joined since it last granted a privileged role.

    Raises:
        SegmentError: the group's members could not be read (recorded as failed; nothing filed).
    """
    client = client or get_client()
    privileged_now = any(is_privileged_role(p.role_name) for p in group.permissions)
    with audited(
        actor=actor,
        action=Action.PERMISSIONS_PROPOSE,
        summary=f"{actor_name(actor)} proposed granting a privileged role to {group.name}",
        group_id=group.id,
        group_name=group.name,
        details=details_for(Action.PERMISSIONS_PROPOSE, added=summary),
    ) as record:
        membership = group_membership(group_id=group.id, client=client)
        since = last_privileged_at(group, privileged_now)
        joined = joined_since(group.id, since, membership.emails) if since else []
        record.details.update(joined_since_privileged=joined, member_count=len(membership.emails))
        members = [{"email": u.email.lower(), "name": u.name, "kind": "user"} for u in membership.users]
        members += [{"email": e.lower(), "name": "", "kind": "invite"} for e in membership.invites]
        proposal = ChangeProposal.objects.create(
            kind=kind,
            group_id=group.id,
            group_name=group.name,
            permissions=[{**p.to_payload(), "roleName": p.role_name} for p in permissions],
            summary=summary,
            fingerprint=fingerprint,
            proposed_by=actor if getattr(actor, "pk", None) else None,
            proposed_by_username=actor_name(actor),
            members=sorted(members, key=lambda m: m["email"]),
            joined_since_privileged=joined,
            last_privileged_at=since,
        )
    queue.enqueue_quietly("send_notification", "proposal_filed", [proposal.pk])
    return proposal


def proposals_open(*, group_id: str) -> QuerySet[ChangeProposal]:
    """The proposals of a group still waiting for a decision, oldest first."""
    return ChangeProposal.objects.open_for(group_id)


def approval_for(proposal: ChangeProposal, approver: Any) -> Approval:
    return Approval(
        approved_by=approver,
        source=proposal,
        requested_by_id=proposal.proposed_by_id,
        requested_by_email=proposal.proposed_by.email if proposal.proposed_by else "",
    )


def may_decide(proposal: ChangeProposal, actor: Any) -> bool:
    """Another Administrator than the one who proposed it."""
    return (
        is_administrator(actor)
        and proposal.proposed_by_username != actor_name(actor)
        and book.may_approve(
            actor,
            requested_by_id=proposal.proposed_by_id,
            requested_by_email=proposal.proposed_by.email if proposal.proposed_by else "",
        )
    )


def _get(proposal_id: int) -> ChangeProposal:
    proposal = ChangeProposal.objects.select_related("proposed_by").filter(pk=proposal_id).first()
    if proposal is None:
        raise InvalidInput("That proposal does not exist.")
    return proposal


def _check_may_decide(proposal: ChangeProposal, actor: Any) -> None:
    if not is_administrator(actor):
        raise NotAllowed(NOT_ADMINISTRATOR)
    if not may_decide(proposal, actor):
        raise NotAllowed(book.SELF_APPROVAL)


def _decided(actor: Any, reason: str = "") -> dict[str, Any]:
    return {"decided_by_username": actor_name(actor), "decided_at": timezone.now(), "decision_reason": reason}


def proposal_approve(*, actor: Any, proposal_id: int, client: SegmentClient | None = None) -> ChangeProposal:
    """Apply a proposed privileged grant as the second Administrator (the attempt is audited).

    A known failure puts it back to pending, a group changed since the proposal rejects it, each
    with the reason; an unknown outcome stays approved, linked to its entry. The proposal links
    exactly the entry its change wrote.

    Raises:
        NotAllowed (audited as refused), InvalidInput, ChangeOutcomeUnknown, SegmentError.
    """
    proposal = _get(proposal_id)
    with audited(
        actor=actor,
        action=Action.PROPOSAL_APPROVE,
        summary=f"{actor_name(actor)} approved a proposed grant to {proposal.group_name}",
        group_id=proposal.group_id,
        group_name=proposal.group_name,
        details=details_for(Action.PROPOSAL_APPROVE, added=proposal.summary, proposal=proposal.pk),
    ) as record:
        try:
            _check_may_decide(proposal, actor)
        except NotAllowed:
            record.summary = (
                f"{actor_name(actor)} was refused approving a proposed grant to {proposal.group_name}"
            )
            raise
        transition(proposal, from_=(Status.PENDING,), to=Status.APPROVED, **_decided(actor))
    try:
        changed = _apply(proposal, actor, client)
    except StaleChange:
        _reopen(
            proposal,
            Status.REJECTED,
            "The group's permissions changed since it was proposed; propose it again.",
        )
        raise
    except ChangeOutcomeUnknown as exc:
        _link(proposal, exc.entry)
        raise
    except (SegmentError, ServiceError) as exc:
        _reopen(proposal, Status.PENDING, f"Approving failed: {exc.message}")
        raise
    _link(proposal, changed.entry)
    return proposal


def _apply(proposal: ChangeProposal, actor: Any, client: SegmentClient | None) -> Changed:
    permissions = [Permission.from_payload(p) for p in proposal.permissions]
    approval = approval_for(proposal, actor)
    if proposal.kind == ChangeProposal.Kind.ADD:
        return group_permissions_add(
            actor=actor, group_id=proposal.group_id, permissions=permissions, approval=approval, client=client
        )
    return group_permissions_replace(
        actor=actor,
        group_id=proposal.group_id,
        permissions=permissions,
        fingerprint=proposal.fingerprint,
        confirm_empty=True,
        approval=approval,
        client=client,
    )


def _reopen(proposal: ChangeProposal, status: str, reason: str) -> None:
    fields: dict[str, Any] = {"decision_reason": reason}
    if status == Status.PENDING:
        fields.update(decided_by_username="", decided_at=None)
    transition(proposal, from_=(Status.APPROVED,), to=status, **fields)


def _link(proposal: ChangeProposal, entry: AuditEntry) -> None:
    ChangeProposal.objects.filter(pk=proposal.pk).update(entry=entry)
    proposal.entry = entry


def proposal_reject(*, actor: Any, proposal_id: int, reason: str) -> ChangeProposal:
    """Reject a proposed privileged grant, with a reason (audited, refused or not).

    Raises:
        NotAllowed, InvalidInput.
    """
    reason = (reason or "").strip()
    if not reason:  # a form error, not an attempt
        raise InvalidInput("Say why.", {"reason": "Say why."})
    proposal = _get(proposal_id)
    with audited(
        actor=actor,
        action=Action.PROPOSAL_REJECT,
        summary=f"{actor_name(actor)} rejected a proposed grant to {proposal.group_name}",
        group_id=proposal.group_id,
        group_name=proposal.group_name,
        details=details_for(
            Action.PROPOSAL_REJECT, reason=reason, added=proposal.summary, proposal=proposal.pk
        ),
    ) as record:
        try:
            _check_may_decide(proposal, actor)
        except NotAllowed:
            record.summary = (
                f"{actor_name(actor)} was refused rejecting a proposed grant to {proposal.group_name}"
            )
            raise
        transition(proposal, from_=(Status.PENDING,), to=Status.REJECTED, **_decided(actor, reason))
    return proposal
