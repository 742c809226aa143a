"""Access requests: file, approve (provisions the membership), deny, cancel, retry, close, expire.

A request moves through explicit states, each recoverable by a person or by
`reconcile_changes`::

    pending ─approve→ approved ─→ provisioning ─→ provisioned
       │                              ├─→ provisioning failed ─retry→ provisioning
       │                              │          └─close (not possible)→ closed
       │                              └─→ outcome unknown ─reconcile→ provisioned | provisioning failed
       ├─deny→ denied
       └─cancel→ cancelled                      provisioned ─(end date passed)→ expired
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from groups_app.emails import address_problem
from groups_app.models import AccessRequest, AuditEntry, MirrorGroup, SyncRun
from groups_app.roles import CHANGE_MEMBERSHIP, HANDLE_ACCESS_REQUESTS
from groups_app.rules import book
from groups_app.rules.book import Approval, Decision, OwnerApprovalRule, ProposedChange, Verdict
from groups_app.segment import NotFound, SegmentClient, SegmentError, UserGroup
from groups_app.services import queue
from groups_app.services.audit import SYSTEM, actor_name, audited
from groups_app.services.audit_details import details_for
from groups_app.services.errors import ChangeOutcomeUnknown, InvalidInput, NotAllowed, ServiceError
from groups_app.services.groups import group_membership
from groups_app.services.membership import checked_emails, group_members_add, group_members_remove
from groups_app.services.mirror.selectors import mirrored_group_or_none, mirrored_groups
from groups_app.services.reconcile import abandoned_before, reconcile_entry, settle_access_request
from groups_app.services.segment_client import get_client
from groups_app.services.transitions import transition
from groups_app.services.workspace import Membership

logger = logging.getLogger("groups_app.access_requests")

Status = AccessRequest.Status
Action = AuditEntry.Action


@dataclass(frozen=True)
class FileResult:
    filed: tuple[AccessRequest, ...]
    already_members: tuple[str, ...]
    duplicates: tuple[AccessRequest, ...]


@dataclass(frozen=True)
class ExpiryResult:
    expired: tuple[AccessRequest, ...]
    failed: tuple[tuple[AccessRequest, str], ...]


def _for_whom(actor: Any, emails: list[str] | None) -> list[str]:
    """The addresses to file for: the actor's own (no emails given), or, for Help desk, others.

    Raises:
        InvalidInput: no usable own address, unusable addresses, or outside the allowed domains.
        NotAllowed: someone without Help desk's role filing for another person.
    """
    own = (getattr(actor, "email", "") or "").strip().lower()
    if not emails:
        if not book.identity_of(actor):
            message = "Your account has no usable email address; ask an Administrator to set one."
            raise InvalidInput(message, {"emails": message})
        problem = address_problem(own) or book.outside_allowed_domains([own])
        if problem:
            message = f"Your own email cannot be added to groups: {problem}"
            raise InvalidInput(message, {"emails": message})
        return [own]
    cleaned = checked_emails(emails)
    if outside := book.outside_allowed_domains(cleaned):
        raise InvalidInput(outside, {"emails": outside})
    is_only_own = [book.identities(cleaned)[e] for e in cleaned] == [book.identity_of(actor)]
    if not is_only_own and not actor.has_perm(HANDLE_ACCESS_REQUESTS):
        raise NotAllowed("Only Help desk and Administrators can request access for other people.")
    return cleaned


def access_request_file(
    *,
    actor: Any,
    group_id: str,
    justification: str,
    emails: list[str] | None = None,
    needed_until: date | None = None,
    group: UserGroup | None = None,
    members: Membership | None = None,
    renewal: bool = False,
    client: SegmentClient | None = None,
) -> FileResult:
    """File requests for the actor (no emails) or, for Help desk, for others: one per email.

    Emails already in the group, or with a pending request for it, are not filed (but a
    `renewal`: a member asking to keep time-bound access longer). A caller that has just read
    the group and its members passes them, so they are not read again.

    Raises:
        NotAllowed, InvalidInput, NotFound, SegmentError.
    """
    justification = (justification or "").strip()
    errors = {}
    if not justification:
        errors["justification"] = "Say why the access is needed."
    if needed_until and needed_until <= timezone.localdate():
        errors["needed_until"] = "The end date must be in the future."
    if errors:
        raise InvalidInput(" ".join(errors.values()), errors)
    emails = _for_whom(actor, emails)
    client = client or get_client()
    group = group or client.get_user_group(group_id)
    current = () if renewal else (members or group_membership(group_id=group_id, client=client)).emails
    already = tuple(e for e in emails if e in current)
    pending = {
        r.email: r
        for r in AccessRequest.objects.filter(group_id=group_id, email__in=emails, status=Status.PENDING)
    }
    filed, duplicates = [], list(pending.values())
    for email in emails:
        if email in current or email in pending:
            continue
        try:
            with transaction.atomic():
                access_request = AccessRequest.objects.create(
                    group_id=group.id,
                    group_name=group.name,
                    email=email,
                    requester=actor if getattr(actor, "pk", None) else None,
                    requester_username=actor_name(actor),
                    justification=justification,
                    needed_until=needed_until,
                )
        except IntegrityError:  # filed by someone else a moment ago
            duplicates.append(
                AccessRequest.objects.get(group_id=group_id, email=email, status=Status.PENDING)
            )
            continue
        with audited_request(
            access_request,
            actor=actor,
            action=Action.REQUEST_FILE,
            summary=f"{actor_name(actor)} requested access to {group.name} for {email}",
            justification=justification,
            needed_until=str(needed_until or ""),
            **({"renewal": True} if renewal else {}),
        ):
            pass
        filed.append(access_request)
    if filed:
        queue.enqueue_quietly("send_notification", "access_requests_filed", [r.pk for r in filed])
    return FileResult(tuple(filed), already, tuple(duplicates))


def audited_request(access_request: AccessRequest, *, actor: Any, action: str, summary: str, **details: Any):
    """`audited()` for a state change of one access request (linked to it, with its email)."""
    return audited(
        actor=actor,
        action=action,
        summary=summary,
        group_id=access_request.group_id,
        group_name=access_request.group_name,
        details=details_for(action, email=access_request.email, **details),
        access_request=access_request,
    )


def _open_request(access_request_id: int, *statuses: str, allow_stuck: bool = False) -> AccessRequest:
    try:
        access_request = AccessRequest.objects.get(pk=access_request_id)
    except AccessRequest.DoesNotExist:
        raise InvalidInput("That request does not exist.") from None
    if access_request.status not in statuses and not (allow_stuck and is_stuck(access_request)):
        status = access_request.get_status_display().lower()
        raise InvalidInput(f"This request is {status}; it cannot change now.")
    return access_request


def is_stuck(access_request: AccessRequest) -> bool:
    """Approved, but the process provisioning it stopped before recording anything."""
    started = access_request.provisioning_started_at or access_request.decided_at
    return (
        access_request.status in AccessRequest.IN_FLIGHT
        and started is not None
        and started < abandoned_before()
    )


def _decide(access_request: AccessRequest, actor: Any, status: str, reason: str = "") -> None:
    transition(
        access_request,
        from_=(Status.PENDING,),
        to=status,
        decided_at=timezone.now(),
        decided_by_username=actor_name(actor),
        decision_reason=reason,
    )


ROLE_DENIED_DECIDING = "Your role does not allow deciding access requests, and you do not own this group."


def may_handle(actor: Any, group_id: str) -> bool:
    """Whether `actor` may decide requests for this group: by role, or as one of its owners."""
    return book.may_act(actor, HANDLE_ACCESS_REQUESTS, group_id=group_id)


def _check_role(actor: Any, access_request: AccessRequest) -> None:
    if not may_handle(actor, access_request.group_id):
        raise NotAllowed(ROLE_DENIED_DECIDING)


def approval_for(access_request: AccessRequest, approver: Any) -> Approval:
    """The approval a decision on this request gives the change that provisions it."""
    return Approval(
        approved_by=approver,
        source=access_request,
        requested_by_id=access_request.requester_id,
        requested_by_email=access_request.requester.email if access_request.requester else "",
        for_email=access_request.email,
    )


def may_decide(access_request: AccessRequest, actor: Any, group: UserGroup | None = None) -> bool:
    """Whether the rule book lets `actor` decide this request, asked on the mirror's copy of its
    group unless `group` is given: someone else than the requester and the person it is for, and
    for a privileged group an Administrator (or an owner, as one of two). The pages and the inbox
    offer only these; deciding asks the book again on the group as read then."""
    if group is None:
        group = mirrored_group_or_none(access_request.group_id)
    return not approval_refusal(access_request, actor, group)


def decidable_by(actor: Any, access_requests: Iterable[AccessRequest]) -> set[int]:
    """The ids of those requests the rule book lets `actor` decide (`may_decide`), with the
    mirror's copies of their groups read in one query: the inbox, the queue and Groups I own."""
    access_requests = list(access_requests)
    groups = mirrored_groups(r.group_id for r in access_requests)
    return {r.pk for r in access_requests if may_decide(r, actor, group=groups.get(r.group_id))}


def _provision(
    access_request: AccessRequest, actor: Any, from_statuses: tuple[str, ...], client: SegmentClient
) -> None:
    """Add the email to the group and move the request to the outcome; never leaves it in flight.

    The change's submission key is stored on the request first, so that its audit entry is
    found exactly (by reconciliation too, should this process die).
    """
    key = f"request-{access_request.pk}-{uuid.uuid4().hex[:12]}"
    transition(
        access_request,
        from_=from_statuses,
        to=Status.PROVISIONING,
        provisioning_started_at=timezone.now(),
        provisioning_key=key,
    )
    error = ""
    entry = None
    try:
        entry = group_members_add(
            actor=actor,
            group_id=access_request.group_id,
            emails=[access_request.email],
            submission_key=key,
            approval=approval_for(access_request, actor),
            client=client,
        ).entry
    except ChangeOutcomeUnknown as exc:
        entry = exc.entry
    except (SegmentError, ServiceError) as exc:
        error = exc.message
        entry = getattr(exc, "audit_entry", None)
    except Exception as exc:  # a crash must not leave the request in flight with no way out
        logger.exception("Provisioning access request #%s crashed", access_request.pk)
        error = "Provisioning stopped because of an internal error; the audit log has the details."
        entry = getattr(exc, "audit_entry", None)
    if entry is not None:
        settle_access_request(entry)
    access_request.refresh_from_db()
    if access_request.status == Status.PROVISIONING:  # nothing recorded an outcome: nothing was sent
        transition(
            access_request,
            from_=(Status.PROVISIONING,),
            to=Status.PROVISIONING_FAILED,
            provisioning_error=error,
        )
    elif error and access_request.status == Status.PROVISIONING_FAILED:
        transition(
            access_request,
            from_=(Status.PROVISIONING_FAILED,),
            to=Status.PROVISIONING_FAILED,
            provisioning_error=error,
        )


def approval_decision(access_request: AccessRequest, actor: Any, group: UserGroup | None) -> Decision:
    """The rule book's answer to `actor` approving this request (self-approval, a privileged
    group; an owner's approval of a privileged group's request needs an Administrator too)."""
    change = ProposedChange(
        actor=actor,
        permission=CHANGE_MEMBERSHIP,
        group=group,
        group_id=access_request.group_id,
        adds=(access_request.email,),
        approval=approval_for(access_request, actor),
    )
    return book.decide(change)


def approval_refusal(access_request: AccessRequest, actor: Any, group: UserGroup | None) -> str:
    """Why the rule book would refuse `actor`'s approval of this request, or "" when it would not.
    A refused address (its domain) is not the approver's to answer for: provisioning fails with
    the reason, and the request can be closed as not possible."""
    decision = approval_decision(access_request, actor, group)
    return decision.reason if decision.verdict == Verdict.REFUSED and not decision.field else ""


def _check_may_provision(access_request: AccessRequest, actor: Any, client: SegmentClient) -> Decision:
    """Ask the rule book, on the group as read now, whether `actor` may approve; returns its decision.

    Raises:
        NotAllowed: the rule book refused the approver.
    """
    group = client.get_user_group(access_request.group_id)
    decision = approval_decision(access_request, actor, group)
    if decision.verdict == Verdict.REFUSED and not decision.field:
        raise NotAllowed(decision.reason)
    return decision


def _is_owner_approval(decision: Decision) -> bool:
    return decision.verdict == Verdict.NEEDS_SECOND_PERSON and decision.rule == OwnerApprovalRule.name


def access_request_approve(
    *, actor: Any, access_request_id: int, client: SegmentClient | None = None
) -> AccessRequest:
    """Approve a pending request and add the email to the group.

    If Segment fails, the request shows it and offers Retry, reconciliation or closing.

    Raises:
        NotAllowed (self-approval, a privileged group for Help desk; audited as refused), InvalidInput.
    """
    client = client or get_client()
    access_request = _open_request(access_request_id, Status.PENDING)
    try:
        with audited_request(
            access_request,
            actor=actor,
            action=Action.REQUEST_APPROVE,
            summary=f"{actor_name(actor)} approved access to {access_request.group_name} for {access_request.email}",
        ) as record:
            try:
                _check_role(actor, access_request)
                decision = _check_may_provision(access_request, actor, client)
            except NotAllowed:
                record.summary = (
                    f"{actor_name(actor)} was refused approving access to {access_request.group_name} "
                    f"for {access_request.email}"
                )
                raise
            if _is_owner_approval(decision):
                if access_request.owner_approved_by_username:
                    raise InvalidInput(
                        f"{access_request.owner_approved_by_username} approved this request as an owner "
                        "already; it waits for an Administrator."
                    )
                record.summary = (
                    f"{actor_name(actor)} approved access to {access_request.group_name} for "
                    f"{access_request.email} as an owner; an Administrator must approve too"
                )
                record.details = details_for(Action.REQUEST_APPROVE, owner_approval=True)
                transition(
                    access_request,
                    from_=(Status.PENDING,),
                    to=Status.PENDING,
                    owner_approved_by_username=actor_name(actor),
                    owner_approved_at=timezone.now(),
                )
                queue.enqueue_quietly("send_notification", "owner_approved", [access_request.pk])
                return access_request
            _decide(access_request, actor, Status.APPROVED)
    except NotFound:
        _close_as_gone(access_request, actor)
        raise InvalidInput(f"{GROUP_GONE} The request was closed.") from None
    _provision(access_request, actor, (Status.APPROVED,), client)
    _tell_decision(access_request)
    return access_request


GROUP_GONE = "The group no longer exists in Segment (it was deleted outside Group Admin)."


def _close_as_gone(access_request: AccessRequest, actor: Any) -> None:
    """Close a request whose group was deleted; the requester is told why."""
    with audited_request(
        access_request,
        actor=actor,
        action=Action.REQUEST_CLOSE,
        summary=f"{actor_name(actor)} closed the request for {access_request.email} to join "
        f"{access_request.group_name}: the group no longer exists",
        reason=GROUP_GONE,
    ):
        transition(
            access_request,
            from_=(Status.PENDING, Status.PROVISIONING_FAILED),
            to=Status.CLOSED,
            decision_reason=GROUP_GONE,
        )
    _tell_decision(access_request)


def access_requests_close_for_deleted_groups() -> list[AccessRequest]:
    """Close the open requests whose group a full sync no longer found (deleted outside Group
    Admin), as the system, with the reason; run after each successful full sync."""
    last = SyncRun.objects.filter(
        kind__in=(SyncRun.Kind.FULL, SyncRun.Kind.QUICK), status=SyncRun.Status.SUCCEEDED
    ).first()
    if last is None:
        return []
    gone = (
        AccessRequest.objects.filter(
            status__in=(Status.PENDING, Status.PROVISIONING_FAILED), created_at__lt=last.started_at
        )
        .exclude(group_id__in=MirrorGroup.objects.values("group_id"))
        .select_related("requester")
    )
    closed = []
    for access_request in gone:
        try:
            _close_as_gone(access_request, SYSTEM)
        except ServiceError:  # decided by someone a moment ago
            continue
        closed.append(access_request)
    return closed


def access_request_retry(
    *, actor: Any, access_request_id: int, client: SegmentClient | None = None
) -> AccessRequest:
    """Try again to add the email of an approved request whose provisioning failed or got stuck.

    Raises:
        NotAllowed, InvalidInput.
    """
    client = client or get_client()
    access_request = _open_request(access_request_id, Status.PROVISIONING_FAILED, allow_stuck=True)
    with audited_request(
        access_request,
        actor=actor,
        action=Action.REQUEST_APPROVE,
        summary=f"{actor_name(actor)} retried provisioning {access_request.email} in {access_request.group_name}",
        retry=True,
    ):
        _check_role(actor, access_request)
        decision = _check_may_provision(access_request, actor, client)
        if _is_owner_approval(decision):
            raise NotAllowed(decision.reason)
    _provision(access_request, actor, (Status.PROVISIONING_FAILED, *AccessRequest.IN_FLIGHT), client)
    if access_request.status == Status.PROVISIONED:
        _tell_decision(access_request)
    return access_request


def access_request_reconcile(
    *, actor: Any, access_request_id: int, client: SegmentClient | None = None
) -> AccessRequest:
    """Read back whether the email of a request with an unknown outcome is now in the group.

    Raises:
        NotAllowed, InvalidInput.
    """
    access_request = _open_request(access_request_id, Status.OUTCOME_UNKNOWN)
    _check_role(actor, access_request)
    entry = access_request.provisioning_entry
    if entry is not None:
        entry = reconcile_entry(entry, by=actor, client=client)
        settle_access_request(entry)
    access_request.refresh_from_db()
    return access_request


def access_request_close(*, actor: Any, access_request_id: int, reason: str) -> AccessRequest:
    """Close an approved request that cannot be provisioned (e.g. outside the allowed domains).

    Raises:
        NotAllowed, InvalidInput (field `reason`).
    """
    access_request = _open_request(access_request_id, Status.PROVISIONING_FAILED)
    reason = (reason or "").strip()
    with audited_request(
        access_request,
        actor=actor,
        action=Action.REQUEST_CLOSE,
        summary=f"{actor_name(actor)} closed the request for {access_request.email} to join {access_request.group_name} as not possible",
        reason=reason,
    ):
        _check_role(actor, access_request)
        if not reason:
            raise InvalidInput("Say why it is not possible.", {"reason": "Say why it is not possible."})
        transition(
            access_request, from_=(Status.PROVISIONING_FAILED,), to=Status.CLOSED, decision_reason=reason
        )
    _tell_decision(access_request)
    return access_request


def access_request_deny(*, actor: Any, access_request_id: int, reason: str) -> AccessRequest:
    """Deny a pending request; the reason is required and sent to the requester.

    Raises:
        NotAllowed, InvalidInput.
    """
    access_request = _open_request(access_request_id, Status.PENDING)
    reason = (reason or "").strip()
    with audited_request(
        access_request,
        actor=actor,
        action=Action.REQUEST_DENY,
        summary=f"{actor_name(actor)} denied access to {access_request.group_name} for {access_request.email}",
        reason=reason,
    ):
        _check_role(actor, access_request)
        if not reason:
            raise InvalidInput("Give a reason for the denial.", {"reason": "Give a reason for the denial."})
        _decide(access_request, actor, Status.DENIED, reason)
    _tell_decision(access_request)
    return access_request


def access_request_cancel(*, actor: Any, access_request_id: int) -> AccessRequest:
    """The requester withdraws their own pending request.

    Raises:
        NotAllowed, InvalidInput.
    """
    access_request = _open_request(access_request_id, Status.PENDING)
    with audited_request(
        access_request,
        actor=actor,
        action=Action.REQUEST_CANCEL,
        summary=f"{actor_name(actor)} cancelled their request for {access_request.email} to join {access_request.group_name}",
    ):
        if access_request.requester_id != getattr(actor, "pk", None):
            raise NotAllowed("Only the person who filed a request can cancel it.")
        _decide(access_request, actor, Status.CANCELLED)
    return access_request


def access_requests_expire(*, today: date | None = None, client: SegmentClient | None = None) -> ExpiryResult:
    """Remove the memberships of provisioned requests whose end date has passed (safe to repeat).

    An email keeps its membership while another provisioned request for the same group
    still runs. Failures are left provisioned, to be tried again on the next run.
    """
    today = today or timezone.localdate()
    due = AccessRequest.objects.filter(status=Status.PROVISIONED, needed_until__lt=today)
    by_group: dict[str, list[AccessRequest]] = defaultdict(list)
    for access_request in due:
        by_group[access_request.group_id].append(access_request)
    expired, failed = [], []
    for group_id, group_requests in by_group.items():
        still_granted = set(
            AccessRequest.objects.filter(group_id=group_id, status=Status.PROVISIONED)
            .exclude(needed_until__lt=today)
            .values_list("email", flat=True)
        )
        to_remove = sorted({r.email for r in group_requests} - still_granted)
        try:
            if to_remove:
                group_members_remove(actor=SYSTEM, group_id=group_id, emails=to_remove, client=client)
        except (SegmentError, ServiceError) as exc:
            logger.warning("Could not expire access to %s: %s", group_id, exc)
            failed += [(r, getattr(exc, "message", str(exc))) for r in group_requests]
            continue
        for access_request in group_requests:
            with audited_request(
                access_request,
                actor=SYSTEM,
                action=Action.REQUEST_EXPIRE,
                summary=f"system ended the access of {access_request.email} to {access_request.group_name} (needed until {access_request.needed_until:%Y-%m-%d})",
                removed=access_request.email in to_remove,
            ):
                transition(
                    access_request, from_=(Status.PROVISIONED,), to=Status.EXPIRED, expired_at=timezone.now()
                )
            expired.append(access_request)
    return ExpiryResult(tuple(expired), tuple(failed))


def _tell_decision(access_request: AccessRequest) -> None:
    """Have the worker mail the requester and the person the access is for."""
    queue.enqueue_quietly("send_notification", "access_request_decided", [access_request.pk])


def access_request_queue(
    *, status: str = "pending", group: str = "", requester: str = "", older_than_days: int | None = None
) -> QuerySet[AccessRequest]:
    """Requests for the approvers' queue, oldest first."""
    access_requests = AccessRequest.objects.all()
    if status == "open":
        access_requests = access_requests.needs_person(stuck_before=abandoned_before())
    elif status:
        access_requests = access_requests.filter(status=status)
    if group:
        access_requests = access_requests.filter(Q(group_name__icontains=group) | Q(group_id=group))
    if requester:
        access_requests = access_requests.filter(requester_username__iexact=requester)
    if older_than_days:
        access_requests = access_requests.filter(
            created_at__lte=timezone.now() - timedelta(days=older_than_days)
        )
    return access_requests.order_by("created_at", "id")
