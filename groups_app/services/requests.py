"""Access requests: file, approve (provisions the membership), deny, cancel, retry, expire."""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from groups_app.models import AccessRequest, AuditEntry
from groups_app.roles import HANDLE_ACCESS_REQUESTS
from groups_app.segment import SegmentClient, SegmentError, get_client
from groups_app.services.audit import SYSTEM, actor_name, audited
from groups_app.services.common import require_permission
from groups_app.services.errors import InvalidInput, NotAllowed, ServiceError
from groups_app.services.membership import (
    checked_emails,
    group_members_add,
    group_members_remove,
    group_membership,
)
from groups_app.services.notifications import notify_decision, notify_new_requests

logger = logging.getLogger("groups_app.requests")

SELF_APPROVAL = (
    "You cannot approve a request you filed or one for your own email; another approver must decide it."
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
    client: SegmentClient | None = None,
) -> FileResult:
    """File requests for the actor (no emails) or, for Help desk, for others: one per email.

    Emails already in the group, or with a pending request for it, are not filed.

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
    group = client.get_user_group(group_id)
    members = group_membership(group_id=group_id, client=client).emails
    already = tuple(e for e in emails if e in members)
    pending = {
        r.email: r
        for r in AccessRequest.objects.filter(
            group_id=group_id, email__in=emails, status=AccessRequest.Status.PENDING
        )
    }
    filed, duplicates = [], list(pending.values())
    for email in emails:
        if email in members or email in pending:
            continue
        try:
            with transaction.atomic():
                request = AccessRequest.objects.create(
                    group_id=group.id,
                    group_name=group.name,
                    email=email,
                    requester=actor,
                    requester_username=actor_name(actor),
                    justification=justification,
                    needed_until=needed_until,
                )
        except IntegrityError:  # filed by someone else a moment ago
            duplicates.append(
                AccessRequest.objects.get(group_id=group_id, email=email, status=AccessRequest.Status.PENDING)
            )
            continue
        with audited_request(
            request,
            actor=actor,
            action=AuditEntry.Action.REQUEST_FILE,
            summary=f"{actor_name(actor)} requested access to {group.name} for {email}",
            justification=justification,
            needed_until=str(needed_until or ""),
        ):
            pass
        filed.append(request)
    notify_new_requests(filed)
    return FileResult(tuple(filed), already, tuple(duplicates))


def audited_request(request: AccessRequest, *, actor: Any, action: str, summary: str, **details: Any):
    """`audited()` for a state change of one access request (linked to it, with its email)."""
    return audited(
        actor=actor,
        action=action,
        summary=summary,
        group_id=request.group_id,
        group_name=request.group_name,
        details={"email": request.email, **details},
        access_request=request,
    )


def _open_request(request_id: int, *statuses: str) -> AccessRequest:
    try:
        request = AccessRequest.objects.get(pk=request_id)
    except AccessRequest.DoesNotExist:
        raise InvalidInput("That request does not exist.") from None
    if request.status not in statuses:
        raise InvalidInput(f"This request is {request.get_status_display().lower()}; it cannot change now.")
    return request


def _decide(request: AccessRequest, actor: Any, status: str, reason: str = "") -> None:
    """Move a pending request to `status`; only one of two simultaneous decisions wins.

    Raises:
        InvalidInput: someone else decided it a moment ago.
    """
    fields = {
        "status": status,
        "decided_at": timezone.now(),
        "decided_by_username": actor_name(actor),
        "decision_reason": reason,
    }
    claimed = AccessRequest.objects.filter(pk=request.pk, status=AccessRequest.Status.PENDING).update(
        **fields
    )
    if not claimed:
        request.refresh_from_db()
        raise InvalidInput(
            f"This request was {request.get_status_display().lower()} a moment ago by someone else."
        )
    for name, value in fields.items():
        setattr(request, name, value)


def _is_own(request: AccessRequest, actor: Any) -> bool:
    own_email = (getattr(actor, "email", "") or "").lower()
    return request.requester_id == getattr(actor, "pk", None) or (own_email and request.email == own_email)


def _provision(request: AccessRequest, actor: Any) -> None:
    """Add the email to the group; record the outcome on the request."""
    key = f"request-{request.pk}-{uuid.uuid4().hex[:12]}"
    try:
        group_members_add(actor=actor, group_id=request.group_id, emails=[request.email], submission_key=key)
    except (SegmentError, ServiceError) as exc:
        request.status = AccessRequest.Status.PROVISIONING_FAILED
        request.provisioning_error = exc.message
    else:
        request.status = AccessRequest.Status.APPROVED
        request.provisioning_error = ""
    request.provisioning_entry = AuditEntry.objects.filter(submission_key=key).first()
    request.save(update_fields=["status", "provisioning_error", "provisioning_entry"])


def request_approve(*, actor: Any, request_id: int, requester_email: str = "") -> AccessRequest:
    """Approve a pending request and add the email to the group.

    If Segment fails, the request is "approved — provisioning failed" and can be retried.

    Raises:
        NotAllowed (also for self-approval, which is audited), InvalidInput.
    """
    require_permission(actor, HANDLE_ACCESS_REQUESTS)
    request = _open_request(request_id, AccessRequest.Status.PENDING)
    with audited_request(
        request,
        actor=actor,
        action=AuditEntry.Action.REQUEST_APPROVE,
        summary=f"{actor_name(actor)} approved access to {request.group_name} for {request.email}",
    ) as record:
        if _is_own(request, actor):
            record.summary = (
                f"{actor_name(actor)} tried to approve their own request for {request.group_name}"
            )
            raise NotAllowed(SELF_APPROVAL)
        _decide(request, actor, AccessRequest.Status.APPROVED)
        _provision(request, actor)
        record.details["provisioned"] = request.status == AccessRequest.Status.APPROVED
    notify_decision(request, requester_email or _requester_email(request))
    return request


def request_retry(*, actor: Any, request_id: int) -> AccessRequest:
    """Try again to add the email of an approved request whose provisioning failed.

    Raises:
        NotAllowed, InvalidInput.
    """
    require_permission(actor, HANDLE_ACCESS_REQUESTS)
    request = _open_request(request_id, AccessRequest.Status.PROVISIONING_FAILED)
    if _is_own(request, actor):
        raise NotAllowed(SELF_APPROVAL)
    with audited_request(
        request,
        actor=actor,
        action=AuditEntry.Action.REQUEST_APPROVE,
        summary=f"{actor_name(actor)} retried provisioning {request.email} in {request.group_name}",
        retry=True,
    ) as record:
        _provision(request, actor)
        record.details["provisioned"] = request.status == AccessRequest.Status.APPROVED
    if request.status == AccessRequest.Status.APPROVED:
        notify_decision(request, _requester_email(request))
    return request


def request_deny(*, actor: Any, request_id: int, reason: str) -> AccessRequest:
    """Deny a pending request; the reason is required and sent to the requester.

    Raises:
        NotAllowed, InvalidInput.
    """
    require_permission(actor, HANDLE_ACCESS_REQUESTS)
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("Give a reason for the denial.", {"reason": "Give a reason for the denial."})
    request = _open_request(request_id, AccessRequest.Status.PENDING)
    with audited_request(
        request,
        actor=actor,
        action=AuditEntry.Action.REQUEST_DENY,
        summary=f"{actor_name(actor)} denied access to {request.group_name} for {request.email}",
        reason=reason,
    ):
        _decide(request, actor, AccessRequest.Status.DENIED, reason)
    notify_decision(request, _requester_email(request))
    return request


def request_cancel(*, actor: Any, request_id: int) -> AccessRequest:
    """The requester withdraws their own pending request.

    Raises:
        NotAllowed, InvalidInput.
    """
    request = _open_request(request_id, AccessRequest.Status.PENDING)
    if request.requester_id != getattr(actor, "pk", None):
        raise NotAllowed("Only the person who filed a request can cancel it.")
    with audited_request(
        request,
        actor=actor,
        action=AuditEntry.Action.REQUEST_CANCEL,
        summary=f"{actor_name(actor)} cancelled their request for {request.email} to join {request.group_name}",
    ):
        _decide(request, actor, AccessRequest.Status.CANCELLED)
    return request


def requests_expire(*, today: date | None = None, client: SegmentClient | None = None) -> ExpiryResult:
    """Remove the memberships of approved requests whose end date has passed (safe to repeat).

    An email keeps its membership while another approved request for the same group
    still runs. Failures are left approved, to be tried again on the next run.
    """
    today = today or timezone.localdate()
    due = AccessRequest.objects.filter(status=AccessRequest.Status.APPROVED, needed_until__lt=today)
    by_group: dict[str, list[AccessRequest]] = defaultdict(list)
    for request in due:
        by_group[request.group_id].append(request)
    expired, failed = [], []
    for group_id, requests in by_group.items():
        still_granted = set(
            AccessRequest.objects.filter(group_id=group_id, status=AccessRequest.Status.APPROVED)
            .exclude(needed_until__lt=today)
            .values_list("email", flat=True)
        )
        to_remove = sorted({r.email for r in requests} - still_granted)
        try:
            if to_remove:
                group_members_remove(actor=SYSTEM, group_id=group_id, emails=to_remove, client=client)
        except (SegmentError, ServiceError) as exc:
            logger.warning("Could not expire access to %s: %s", group_id, exc)
            failed += [(r, getattr(exc, "message", str(exc))) for r in requests]
            continue
        for request in requests:
            with audited_request(
                request,
                actor=SYSTEM,
                action=AuditEntry.Action.REQUEST_EXPIRE,
                summary=f"system ended the access of {request.email} to {request.group_name} (needed until {request.needed_until:%Y-%m-%d})",
                removed=request.email in to_remove,
            ):
                request.status = AccessRequest.Status.EXPIRED
                request.expired_at = timezone.now()
                request.save(update_fields=["status", "expired_at"])
            expired.append(request)
    return ExpiryResult(tuple(expired), tuple(failed))


def _requester_email(request: AccessRequest) -> str:
    return request.requester.email if request.requester else ""


def request_queue(
    *, status: str = "pending", group: str = "", requester: str = "", older_than_days: int | None = None
) -> QuerySet[AccessRequest]:
    """Requests for the approvers' queue, oldest first."""
    requests = AccessRequest.objects.all()
    if status == "open":
        requests = requests.filter(
            status__in=[AccessRequest.Status.PENDING, AccessRequest.Status.PROVISIONING_FAILED]
        )
    elif status:
        requests = requests.filter(status=status)
    if group:
        requests = requests.filter(group_name__icontains=group) | requests.filter(group_id=group)
    if requester:
        requests = requests.filter(requester_username__iexact=requester)
    if older_than_days:
        requests = requests.filter(created_at__lte=timezone.now() - timedelta(days=older_than_days))
    return requests.order_by("created_at", "id")


def pending_count() -> int:
    return AccessRequest.objects.filter(status=AccessRequest.Status.PENDING).count()
