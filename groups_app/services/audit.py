"""The only writer of AuditEntry.

Every attempt leaves exactly one entry. Upstream changes go through the change pipeline
(`services/changes.py`), which writes a pending entry before the call and completes it
once; local actions (filing or deciding an access request, starting a review) use
`audited()`; attempts refused before anything was sent use `record_refused()`.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from groups_app.models import AuditEntry
from groups_app.segment import SegmentError
from groups_app.services.errors import DuplicateSubmission, ServiceError

SYSTEM_ACTOR = "system"


@dataclass(frozen=True)
class RequestOrigin:
    """Where the current action comes from, for the audit log (empty outside web requests)."""

    request_id: str = ""
    inbound_request_id: str = ""  # what the client or a proxy sent as X-Request-ID, kept apart
    client_ip: str | None = None
    user_agent: str = ""
    user: Any = None  # the signed-in person, once authentication has run
    base_url: str = ""  # scheme and host the request came to, for links in emails


origin_var: contextvars.ContextVar[RequestOrigin | None] = contextvars.ContextVar("origin", default=None)


class SystemActor:
    """The actor of scheduled jobs (expiry, reconciliation): every permission, no account."""

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
    """Handed to an audited block: the entry, and what to add when it completes."""

    entry: AuditEntry
    details: dict[str, Any] = field(default_factory=dict)
    summary: str | None = None
    group_id: str | None = None  # for a group created by the block: known only after the call
    review: Any = None  # for a review created by the block


def actor_name(actor: Any) -> str:
    if actor is None:
        return SYSTEM_ACTOR
    return actor.get_username() or "anonymous"


def _entry_fields(
    *,
    actor: Any,
    action: str,
    summary: str,
    group_id: str = "",
    group_name: str = "",
    details: dict[str, Any] | None = None,
    access_request: Any = None,
    review: Any = None,
    proposal: Any = None,
) -> dict[str, Any]:
    origin = origin_var.get() or RequestOrigin()
    return {
        "actor_user_id": getattr(actor, "pk", None),
        "actor_username": actor_name(actor),
        "actor_email": (getattr(actor, "email", "") or "")[:254],
        "action": action,
        "group_id": group_id,
        "group_name": group_name[:200],
        "summary": summary[:500],
        "details": details or {},
        "client_ip": origin.client_ip,
        "user_agent": origin.user_agent,
        "request_id": origin.request_id,
        "inbound_request_id": origin.inbound_request_id,
        "access_request": access_request,
        "review": review,
        "proposal": proposal,
    }


def write_pending(*, submission_key: str | None = None, **fields: Any) -> AuditEntry:
    """Commit a pending entry before anything is sent, so that even a killed process leaves a trace.

    Raises:
        DuplicateSubmission: the same form was already submitted and was not known to fail.
    """
    try:
        with transaction.atomic():
            return AuditEntry.objects.create(submission_key=submission_key or None, **_entry_fields(**fields))
    except IntegrityError:
        earlier = AuditEntry.objects.filter(submission_key=submission_key).exclude(
            status__in=[AuditEntry.Status.FAILED, AuditEntry.Status.REFUSED]
        )
        raise DuplicateSubmission("This form was already submitted.", entry=earlier.first()) from None


def complete(record: AuditRecord, status: str, exc: BaseException | None = None) -> None:
    """Complete a pending entry once: its outcome, and the error that decided it."""
    entry = record.entry
    fields: dict[str, Any] = {
        "status": status,
        "completed_at": timezone.now(),
        "details": {**entry.details, **record.details},
    }
    if record.summary:
        fields["summary"] = record.summary[:500]
    if record.group_id:
        fields["group_id"] = record.group_id
    if record.review is not None:
        fields["review"] = record.review
    if exc is not None:
        fields["error"] = describe_error(exc)
        if isinstance(exc, SegmentError):
            fields["upstream_status"] = exc.status
            if exc.completed_emails or exc.remaining_emails:
                fields["details"]["applied_emails"] = list(exc.completed_emails)
                fields["details"]["unconfirmed_emails"] = list(exc.remaining_emails)
    for name, value in fields.items():
        setattr(entry, name, value)
    entry.search_text = entry.text_to_search()
    AuditEntry.objects.complete(entry.pk, **fields, search_text=entry.search_text)


def describe_error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {getattr(exc, 'message', None) or exc}"[:2000]


def record_completed(**fields: Any) -> AuditEntry:
    """One complete, succeeded entry for a local event that has no upstream call (roles, resets)."""
    return AuditEntry.objects.create(
        **_entry_fields(**fields), status=AuditEntry.Status.SUCCEEDED, completed_at=timezone.now()
    )


def record_refused(*, reason: str, **fields: Any) -> AuditEntry:
    """One complete entry for an attempt refused before anything was sent (role, input, rules)."""
    now = timezone.now()
    values = _entry_fields(**fields)
    return AuditEntry.objects.create(
        **values, status=AuditEntry.Status.REFUSED, completed_at=now, error=reason[:2000]
    )


@contextmanager
def audited(
    *,
    actor: Any,
    action: str,
    summary: str,
    group_id: str = "",
    group_name: str = "",
    details: dict[str, Any] | None = None,
    submission_key: str | None = None,
    access_request: Any = None,
    review: Any = None,
) -> Iterator[AuditRecord]:
    """Record a local action (no upstream call): pending before the block, completed once after.

    A ServiceError from the block (a rule refused it) completes the entry as refused; any
    other exception as failed. Either is re-raised.

    Raises:
        DuplicateSubmission: the same form was already submitted.
    """
    entry = write_pending(
        submission_key=submission_key,
        actor=actor,
        action=action,
        summary=summary,
        group_id=group_id,
        group_name=group_name,
        details=details,
        access_request=access_request,
        review=review,
    )
    record = AuditRecord(entry=entry)
    try:
        yield record
    except ServiceError as exc:
        complete(record, AuditEntry.Status.REFUSED, exc)
        raise
    except BaseException as exc:
        complete(record, AuditEntry.Status.FAILED, exc)
        raise
    complete(record, AuditEntry.Status.SUCCEEDED)


def audit_entries_for_group(group_id: str, *, limit: int = 10) -> list[AuditEntry]:
    """The latest entries about one group, newest first."""
    return list(AuditEntry.objects.filter(group_id=group_id)[:limit])
