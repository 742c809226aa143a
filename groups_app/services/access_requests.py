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
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from groups_app.emails import email_problems
from groups_app.models import AccessRequest, AuditEntry
from groups_app.roles import HANDLE_ACCESS_REQUESTS, is_administrator
from groups_app.segment import SegmentClient, SegmentError, UserGroup
from groups_app.services.audit import SYSTEM, actor_name, audited
from groups_app.services.audit_details import details_for
from groups_app.services.errors import ChangeOutcomeUnknown, InvalidInput, NotAllowed, ServiceError
from groups_app.services.groups import Membership, group_is_privileged, group_membership
from groups_app.services.membership import checked_emails, group_members_add, group_members_remove
from groups_app.services.notifications import notify_decision, notify_new_requests
from groups_app.services.reconcile import abandoned_before, reconcile_entry, settle_access_request
from groups_app.services.segment_client import get_client

logger = logging.getLogger("groups_app.access_requests")

Status = AccessRequest.Status
Action = AuditEntry.Action

SELF_APPROVAL = (
    "You cannot approve a request you filed or one for your own email; another approver must decide it."
)
PRIVILEGED_APPROVAL = (
    "{name} is a privileged group: only an Administrator can approve access to it. "
    "The request stays pending for one."
)


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
    own = (actor.email or "").strip().lower()
    if not emails:
        if not own:
            message = "Your account has no email address; ask an administrator to add one."
            raise InvalidInput(message, {"emails": message})
        problems = email_problems([own])
        if problems:
            message = f"Your own email cannot be added to groups: {' '.join(problems)}"
            raise InvalidInput(message, {"emails": message})
        return [own]
    cleaned = checked_emails(emails)
    if cleaned != [own] and not actor.has_perm(HANDLE_ACCESS_REQUESTS):
        raise NotAllowed("Only Help desk and Administrators can request access for other people.")
    return cleaned


def request_file(
    *,
    actor: Any,
    group_id: str,
    justification: str,
    emails: list[str] | None = None,
    needed_until: date | None = None,
    group: UserGroup | None = None,
    members: Membership | None = None,
    client: SegmentClient | None = None,
) -> FileResult:
    """File requests for the actor (no emails) or, for Help desk, for others: one per email.

    Emails already in the group, or with a pending request for it, are not filed. A caller
    that has just read the group and its members passes them, so they are not read again.

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
    current = (members or group_membership(group_id=group_id, client=client)).emails
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
        ):
            pass
        filed.append(access_request)
    notify_new_requests(filed)
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


def _open_request(request_id: int, *statuses: str, allow_stuck: bool = False) -> AccessRequest:
    try:
        access_request = AccessRequest.objects.get(pk=request_id)
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


def _move(access_request: AccessRequest, from_statuses: tuple[str, ...], **fields: Any) -> None:
    """Change a request's state if it is still in one of `from_statuses`; only one of two racers wins.

    Raises:
        InvalidInput: someone else changed it a moment ago.
    """
    moved = AccessRequest.objects.filter(pk=access_request.pk, status__in=from_statuses).update(**fields)
    if not moved:
        access_request.refresh_from_db()
        status = access_request.get_status_display().lower()
        raise InvalidInput(f"This request was changed a moment ago by someone else; it is now {status}.")
    for name, value in fields.items():
        setattr(access_request, name, value)


def _decide(access_request: AccessRequest, actor: Any, status: str, reason: str = "") -> None:
    _move(
        access_request,
        (Status.PENDING,),
        status=status,
        decided_at=timezone.now(),
        decided_by_username=actor_name(actor),
        decision_reason=reason,
    )


def _check_role(actor: Any) -> None:
    if not actor.has_perm(HANDLE_ACCESS_REQUESTS):
        raise NotAllowed("Your role does not allow deciding access requests.")


def is_own(access_request: AccessRequest, actor: Any) -> bool:
    """Filed by the actor, or for the actor's own email: someone else must decide it."""
    own_email = (getattr(actor, "email", "") or "").lower()
    return access_request.requester_id == getattr(actor, "pk", None) or bool(
        own_email and access_request.email == own_email
    )


def _provision(access_request: AccessRequest, actor: Any, from_statuses: tuple[str, ...]) -> None:
    """Add the email to the group and move the request to the outcome; never leaves it in flight."""
    _move(access_request, from_statuses, status=Status.PROVISIONING, provisioning_started_at=timezone.now())
    key = f"request-{access_request.pk}-{uuid.uuid4().hex[:12]}"
    error = ""
    try:
        group_members_add(
            actor=actor,
            group_id=access_request.group_id,
            emails=[access_request.email],
            submission_key=key,
            access_request=access_request,
        )
    except ChangeOutcomeUnknown:
        pass  # the pipeline recorded the outcome; the entry settles the request below
    except (SegmentError, ServiceError) as exc:
        error = exc.message
    except Exception:  # a crash must not leave the request in flight with no way out
        logger.exception("Provisioning access request #%s crashed", access_request.pk)
        error = "Provisioning stopped because of an internal error; the audit log has the details."
    entry = (
        AuditEntry.objects.filter(access_request=access_request, action=Action.MEMBERS_ADD)
        .order_by("-created_at", "-id")
        .first()
    )
    if entry is not None and entry.created_at >= access_request.provisioning_started_at:
        settle_access_request(entry)
    access_request.refresh_from_db()
    if access_request.status == Status.PROVISIONING:  # nothing recorded an outcome: nothing was sent
        _move(
            access_request,
            (Status.PROVISIONING,),
            status=Status.PROVISIONING_FAILED,
            provisioning_error=error,
        )
    elif error and access_request.status == Status.PROVISIONING_FAILED:
        AccessRequest.objects.filter(pk=access_request.pk).update(provisioning_error=error)
        access_request.provisioning_error = error


def _check_may_provision(access_request: AccessRequest, actor: Any, client: SegmentClient) -> None:
    """Raises NotAllowed unless `actor` may provision this request (self-approval, privileged group)."""
    if is_own(access_request, actor):
        raise NotAllowed(SELF_APPROVAL)
    if not is_administrator(actor):
        group = client.get_user_group(access_request.group_id)
        if group_is_privileged(group):
            raise NotAllowed(PRIVILEGED_APPROVAL.format(name=group.name))


def request_approve(
    *, actor: Any, request_id: int, requester_email: str = "", client: SegmentClient | None = None
) -> AccessRequest:
    """Approve a pending request and add the email to the group.

    If Segment fails, the request shows it and offers Retry, reconciliation or closing.

    Raises:
        NotAllowed (self-approval, a privileged group for Help desk; audited as refused), InvalidInput.
    """
    client = client or get_client()
    access_request = _open_request(request_id, Status.PENDING)
    with audited_request(
        access_request,
        actor=actor,
        action=Action.REQUEST_APPROVE,
        summary=f"{actor_name(actor)} approved access to {access_request.group_name} for {access_request.email}",
    ) as record:
        try:
            _check_role(actor)
            _check_may_provision(access_request, actor, client)
        except NotAllowed:
            record.summary = (
                f"{actor_name(actor)} was refused approving access to {access_request.group_name} "
                f"for {access_request.email}"
            )
            raise
        _decide(access_request, actor, Status.APPROVED)
    _provision(access_request, actor, (Status.APPROVED,))
    notify_decision(access_request, requester_email or _requester_email(access_request))
    return access_request


def request_retry(*, actor: Any, request_id: int, client: SegmentClient | None = None) -> AccessRequest:
    """Try again to add the email of an approved request whose provisioning failed or got stuck.

    Raises:
        NotAllowed, InvalidInput.
    """
    client = client or get_client()
    access_request = _open_request(request_id, Status.PROVISIONING_FAILED, allow_stuck=True)
    with audited_request(
        access_request,
        actor=actor,
        action=Action.REQUEST_APPROVE,
        summary=f"{actor_name(actor)} retried provisioning {access_request.email} in {access_request.group_name}",
        retry=True,
    ):
        _check_role(actor)
        _check_may_provision(access_request, actor, client)
    _provision(access_request, actor, (Status.PROVISIONING_FAILED, *AccessRequest.IN_FLIGHT))
    if access_request.status == Status.PROVISIONED:
        notify_decision(access_request, _requester_email(access_request))
    return access_request


def request_reconcile(*, actor: Any, request_id: int, client: SegmentClient | None = None) -> AccessRequest:
    """Read back whether the email of a request with an unknown outcome is now in the group.

    Raises:
        NotAllowed, InvalidInput.
    """
    _check_role(actor)
    access_request = _open_request(request_id, Status.OUTCOME_UNKNOWN)
    entry = access_request.provisioning_entry or (
        AuditEntry.objects.filter(access_request=access_request, action=Action.MEMBERS_ADD)
        .order_by("-created_at", "-id")
        .first()
    )
    if entry is not None:
        entry = reconcile_entry(entry, by=actor, client=client)
        settle_access_request(entry)
    access_request.refresh_from_db()
    return access_request


def request_close(*, actor: Any, request_id: int, reason: str) -> AccessRequest:
    """Close an approved request that cannot be provisioned (e.g. outside the allowed domains).

    Raises:
        NotAllowed, InvalidInput (field `reason`).
    """
    access_request = _open_request(request_id, Status.PROVISIONING_FAILED)
    reason = (reason or "").strip()
    with audited_request(
        access_request,
        actor=actor,
        action=Action.REQUEST_CLOSE,
        summary=f"{actor_name(actor)} closed the request for {access_request.email} to join {access_request.group_name} as not possible",
        reason=reason,
    ):
        _check_role(actor)
        if not reason:
            raise InvalidInput("Say why it is not possible.", {"reason": "Say why it is not possible."})
        _move(access_request, (Status.PROVISIONING_FAILED,), status=Status.CLOSED, decision_reason=reason)
    notify_decision(access_request, _requester_email(access_request))
    return access_request


def request_deny(*, actor: Any, request_id: int, reason: str) -> AccessRequest:
    """Deny a pending request; the reason is required and sent to the requester.

    Raises:
        NotAllowed, InvalidInput.
    """
    access_request = _open_request(request_id, Status.PENDING)
    reason = (reason or "").strip()
    with audited_request(
        access_request,
        actor=actor,
        action=Action.REQUEST_DENY,
        summary=f"{actor_name(actor)} denied access to {access_request.group_name} for {access_request.email}",
        reason=reason,
    ):
        _check_role(actor)
        if not reason:
            raise InvalidInput("Give a reason for the denial.", {"reason": "Give a reason for the denial."})
        _decide(access_request, actor, Status.DENIED, reason)
    notify_decision(access_request, _requester_email(access_request))
    return access_request


def request_cancel(*, actor: Any, request_id: int) -> AccessRequest:
    """The requester withdraws their own pending request.

    Raises:
        NotAllowed, InvalidInput.
    """
    access_request = _open_request(request_id, Status.PENDING)
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


def requests_expire(*, today: date | None = None, client: SegmentClient | None = None) -> ExpiryResult:
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
                _move(access_request, (Status.PROVISIONED,), status=Status.EXPIRED, expired_at=timezone.now())
            expired.append(access_request)
    return ExpiryResult(tuple(expired), tuple(failed))


def _requester_email(access_request: AccessRequest) -> str:
    return access_request.requester.email if access_request.requester else ""


def _needs_person() -> Q:
    """Requests someone has to act on: decide, retry, reconcile, close, or rescue from a dead process."""
    stuck = Q(status__in=AccessRequest.IN_FLIGHT) & (
        Q(provisioning_started_at__lt=abandoned_before())
        | Q(provisioning_started_at__isnull=True, decided_at__lt=abandoned_before())
    )
    return Q(status__in=AccessRequest.NEEDS_PERSON) | stuck


def request_queue(
    *, status: str = "pending", group: str = "", requester: str = "", older_than_days: int | None = None
) -> QuerySet[AccessRequest]:
    """Requests for the approvers' queue, oldest first."""
    access_requests = AccessRequest.objects.all()
    if status == "open":
        access_requests = access_requests.filter(_needs_person())
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


def needs_person_count() -> int:
    """How many requests wait for a person (the queue badge)."""
    return AccessRequest.objects.filter(_needs_person()).count()
