"""The only writer of AuditEntry: `audited()`, around every mutating upstream call."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from groups_app.middleware import RequestOrigin, origin_var
from groups_app.models import AuditEntry
from groups_app.segment import SegmentError
from groups_app.services.errors import DuplicateSubmission

SYSTEM_ACTOR = "system"


class SystemActor:
    """The actor of scheduled jobs (expire_access): every permission, no account."""

    pk = None
    is_authenticated = True
    email = ""

    def get_username(self) -> str:
        return SYSTEM_ACTOR

    def has_perm(self, permission: str) -> bool:
        return True


SYSTEM = SystemActor()


@dataclass
class AuditRecord:
    """Handed to the audited block: the entry, and details to add when it completes."""

    entry: AuditEntry
    details: dict[str, Any] = field(default_factory=dict)
    summary: str | None = None
    group_id: str | None = None  # for a group created by the block: known only after the call
    review: Any = None  # for a review created by the block


def actor_name(actor: Any) -> str:
    return actor.get_username() if actor is not None else SYSTEM_ACTOR


@contextmanager
def audited(
    *,
    actor: Any,
    action: AuditEntry.Action,
    summary: str,
    group_id: str = "",
    group_name: str = "",
    details: dict[str, Any] | None = None,
    submission_key: str | None = None,
    access_request: Any = None,
    review: Any = None,
) -> Iterator[AuditRecord]:
    """Record an action: a pending entry committed before the block, completed once after it.

    On success the entry is marked succeeded; on any exception, failed with the upstream
    status and message, and the exception is re-raised. A killed process leaves the entry
    pending, shown as "outcome unknown".

    Raises:
        DuplicateSubmission: the same form was already submitted and did not fail.
    """
    origin = origin_var.get() or RequestOrigin()
    try:
        with transaction.atomic():
            entry = AuditEntry.objects.create(
                actor=actor if getattr(actor, "pk", None) else None,
                actor_username=actor_name(actor),
                action=action,
                group_id=group_id,
                group_name=group_name,
                summary=summary,
                details=details or {},
                client_ip=origin.client_ip,
                user_agent=origin.user_agent,
                request_id=origin.request_id,
                submission_key=submission_key or None,
                access_request=access_request,
                review=review,
            )
    except IntegrityError:
        earlier = AuditEntry.objects.filter(submission_key=submission_key).exclude(
            status=AuditEntry.Status.FAILED
        )
        raise DuplicateSubmission("This form was already submitted.", entry=earlier.first()) from None
    record = AuditRecord(entry=entry)
    try:
        yield record
    except BaseException as exc:
        _complete(record, AuditEntry.Status.FAILED, exc)
        raise
    _complete(record, AuditEntry.Status.SUCCEEDED, None)


def _complete(record: AuditRecord, status: str, exc: BaseException | None) -> None:
    entry = record.entry
    fields: dict[str, Any] = {
        "status": status,
        "completed_at": timezone.now(),
        "details": {**entry.details, **record.details},
    }
    if record.summary:
        fields["summary"] = record.summary
    if record.group_id:
        fields["group_id"] = record.group_id
    if record.review is not None:
        fields["review"] = record.review
    if exc is not None:
        fields["error"] = f"{type(exc).__name__}: {getattr(exc, 'message', None) or exc}"[:2000]
        if isinstance(exc, SegmentError):
            fields["upstream_status"] = exc.status
            if exc.completed_emails or exc.remaining_emails:
                fields["details"]["applied_emails"] = list(exc.completed_emails)
                fields["details"]["not_applied_emails"] = list(exc.remaining_emails)
    AuditEntry.objects.complete(entry.pk, **fields)
    for name, value in fields.items():
        setattr(entry, name, value)


def audit_entries_for_group(group_id: str, *, limit: int = 10) -> list[AuditEntry]:
    """The latest entries about one group, newest first."""
    return list(AuditEntry.objects.filter(group_id=group_id)[:limit])
