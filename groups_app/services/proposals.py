"""The two-person rule for privileged grants: propose, then a second Administrator approves or rejects.

A permission change that grants one of PRIVILEGED_ROLES is not sent when an Administrator
makes it (the attempt is recorded as refused); it is filed as a proposal. Another
Administrator approves it, which runs it through the change pipeline in their name, or
rejects it with a reason.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from groups_app.models import AuditEntry, ChangeProposal
from groups_app.roles import is_administrator
from groups_app.segment import Permission, SegmentClient, SegmentError, UserGroup
from groups_app.services.audit import actor_name, audited
from groups_app.services.errors import (
    ChangeOutcomeUnknown,
    InvalidInput,
    NotAllowed,
    ServiceError,
    StaleChange,
)

Action = AuditEntry.Action
Status = ChangeProposal.Status


def proposal_file(
    *,
    actor: Any,
    kind: str,
    group: UserGroup,
    permissions: list[Permission] | tuple[Permission, ...],
    summary: list[dict],
    fingerprint: str = "",
) -> ChangeProposal:
    """Record a privileged grant for a second Administrator to approve (audited)."""
    with audited(
        actor=actor,
        action=Action.PERMISSIONS_PROPOSE,
        summary=f"{actor_name(actor)} proposed granting a privileged role to {group.name}",
        group_id=group.id,
        group_name=group.name,
        details={"added": summary},
    ):
        return ChangeProposal.objects.create(
            kind=kind,
            group_id=group.id,
            group_name=group.name,
            permissions=[{**p.to_payload(), "roleName": p.role_name} for p in permissions],
            summary=summary,
            fingerprint=fingerprint,
            proposed_by=actor if getattr(actor, "pk", None) else None,
            proposed_by_username=actor_name(actor),
        )


def proposals_open(*, group_id: str) -> QuerySet[ChangeProposal]:
    """The proposals of a group still waiting for a decision, oldest first."""
    return ChangeProposal.objects.filter(group_id=group_id, status=Status.PENDING).order_by("proposed_at")


def may_decide(proposal: ChangeProposal, actor: Any) -> bool:
    """Another Administrator than the one who proposed it."""
    return is_administrator(actor) and proposal.proposed_by_username != actor_name(actor)


def _claim(proposal_id: int, actor: Any, status: str, reason: str = "") -> ChangeProposal:
    """Decide a pending proposal; only one of two simultaneous decisions wins.

    Raises:
        InvalidInput: it is no longer pending.
        NotAllowed: the actor proposed it, or is not an Administrator.
    """
    try:
        proposal = ChangeProposal.objects.get(pk=proposal_id)
    except ChangeProposal.DoesNotExist:
        raise InvalidInput("That proposal does not exist.") from None
    if not is_administrator(actor):
        raise NotAllowed("Only Administrators decide proposed grants.")
    if not may_decide(proposal, actor):
        raise NotAllowed("You proposed this grant; a second Administrator must decide it.")
    fields = {
        "status": status,
        "decided_by_username": actor_name(actor),
        "decided_at": timezone.now(),
        "decision_reason": reason,
    }
    if not ChangeProposal.objects.filter(pk=proposal.pk, status=Status.PENDING).update(**fields):
        raise InvalidInput("This proposal was decided a moment ago by someone else.")
    for name, value in fields.items():
        setattr(proposal, name, value)
    return proposal


def proposal_approve(*, actor: Any, proposal_id: int, client: SegmentClient | None = None) -> ChangeProposal:
    """Apply a proposed privileged grant as the second Administrator.

    A known failure (or a group changed since the proposal) puts it back to pending or
    rejects it, with the reason; an unknown outcome stays approved, linked to its entry.

    Raises:
        NotAllowed, InvalidInput, ChangeOutcomeUnknown, SegmentError.
    """
    # Imported here: the permission services import this module to file proposals.
    from groups_app.services.permissions import group_permissions_add, group_permissions_replace

    proposal = _claim(proposal_id, actor, Status.APPROVED)
    permissions = [Permission.from_payload(p) for p in proposal.permissions]
    try:
        if proposal.kind == ChangeProposal.Kind.ADD:
            group_permissions_add(
                actor=actor,
                group_id=proposal.group_id,
                permissions=permissions,
                proposal=proposal,
                client=client,
            )
        else:
            group_permissions_replace(
                actor=actor,
                group_id=proposal.group_id,
                permissions=permissions,
                fingerprint=proposal.fingerprint,
                confirm_empty=True,
                proposal=proposal,
                client=client,
            )
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
    _link(proposal, AuditEntry.objects.filter(group_id=proposal.group_id, action=proposal.kind).first())
    return proposal


def _reopen(proposal: ChangeProposal, status: str, reason: str) -> None:
    fields = {"status": status, "decision_reason": reason}
    if status == Status.PENDING:
        fields.update(decided_by_username="", decided_at=None)
    ChangeProposal.objects.filter(pk=proposal.pk).update(**fields)
    for name, value in fields.items():
        setattr(proposal, name, value)


def _link(proposal: ChangeProposal, entry: AuditEntry | None) -> None:
    ChangeProposal.objects.filter(pk=proposal.pk).update(entry=entry)
    proposal.entry = entry


def proposal_reject(*, actor: Any, proposal_id: int, reason: str) -> ChangeProposal:
    """Reject a proposed privileged grant, with a reason (audited).

    Raises:
        NotAllowed, InvalidInput.
    """
    reason = (reason or "").strip()
    proposal = ChangeProposal.objects.filter(pk=proposal_id).first()
    if proposal is None:
        raise InvalidInput("That proposal does not exist.")
    with audited(
        actor=actor,
        action=Action.PROPOSAL_REJECT,
        summary=f"{actor_name(actor)} rejected a proposed grant to {proposal.group_name}",
        group_id=proposal.group_id,
        group_name=proposal.group_name,
        details={"reason": reason, "added": proposal.summary},
    ):
        if not reason:
            raise InvalidInput("Say why.", {"reason": "Say why."})
        return _claim(proposal_id, actor, Status.REJECTED, reason)
