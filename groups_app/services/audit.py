"""The only writer of AuditEntry.

Every attempt leaves exactly one entry. Upstream changes go through the change pipeline
(`services/changes.py`), which writes a pending entry before the call and completes it
once; local actions (filing or deciding an access request, starting a review) use
`audited()`; attempts refused before anything was sent use `record_refused()`.

Refused attempts are limited per account (anonymous ones per address) and minute: the first
REFUSED_ATTEMPTS_PER_MINUTE are recorded one by one; beyond that `record_refused()` raises
`TooManyRefusals` (the error middleware answers 429) and counts the attempt, and once the
minute is over one entry says how many more were refused. Nobody can flood the log.
"""

from __future__ import annotations

import contextvars
import ipaddress
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from groups_app.models import AuditEntry, RefusalTally
from groups_app.segment import SegmentError
from groups_app.services import webhooks
from groups_app.services.audit_details import details_for
from groups_app.services.errors import DuplicateSubmission, ServiceError, TooManyRefusals

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
    # Entries of changes sent during this request whose outcome Segment did not confirm: an
    # error later in the request must report them, never invite a blind resend.
    unconfirmed_entry_ids: list[int] = field(default_factory=list)
    via: str = ""  # how the actor acts when not through the pages: "API token deploy"


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
        "via": origin.via[:160],
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
    webhooks.entry_completed(entry, site=(origin_var.get() or RequestOrigin()).base_url)


def describe_error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {getattr(exc, 'message', None) or exc}"[:2000]


def record_completed(**fields: Any) -> AuditEntry:
    """One complete, succeeded entry for a local event that has no upstream call (roles, resets)."""
    return AuditEntry.objects.create(
        **_entry_fields(**fields), status=AuditEntry.Status.SUCCEEDED, completed_at=timezone.now()
    )


def record_refused(*, reason: str, **fields: Any) -> AuditEntry:
    """One complete entry for an attempt refused before anything was sent (role, input, rules).

    Raises:
        TooManyRefusals: the actor passed REFUSED_ATTEMPTS_PER_MINUTE refusals this minute; the
            attempt is counted (see `flush_refusal_tallies`), not recorded on its own.
    """
    flush_refusal_tallies()
    values = _entry_fields(**fields)
    _limit_refusals(fields.get("actor"), values, reason=reason)
    return AuditEntry.objects.create(
        **values, status=AuditEntry.Status.REFUSED, completed_at=timezone.now(), error=reason[:2000]
    )


REFUSAL_WINDOW = timedelta(minutes=1)
_REFUSALS = "audit:refusals:{actor}:{window:%Y%m%d%H%M}"
NOT_TRIED = "it was not tried: too many of your attempts were refused in the last minute."


def _limit_refusals(actor: Any, values: dict[str, Any], *, reason: str, before_trying: bool = False) -> None:
    """Count a refusal against the actor's allowance for the minute; over it, tally it instead
    and raise. `before_trying`: a local action about to start is refused (and counted) only if
    the actor is over the allowance already; its own refusal, if any, is counted when it ends.

    Raises:
        TooManyRefusals: over the allowance.
    """
    actor_key = _refusal_actor_key(actor, values["client_ip"])
    if actor_key is None:
        return
    window = refusal_window()
    limit = settings.REFUSED_ATTEMPTS_PER_MINUTE
    if before_trying and (cache.get(_REFUSALS.format(actor=actor_key, window=window)) or 0) < limit:
        return
    if _count_refusal(actor_key, window) > limit:
        _tally_refusal(actor_key, window, values)
        retry_after = max(1, math.ceil((window + REFUSAL_WINDOW - timezone.now()).total_seconds()))
        raise TooManyRefusals(reason, retry_after=retry_after)


def refusal_window() -> datetime:
    """The start of the minute whose refusals are being counted."""
    return timezone.now().replace(second=0, microsecond=0)


def address_block(client_ip: str | None) -> str:
    """The addresses counted as one client: an IPv4 address, or an IPv6 client's whole /64
    (which one machine or site usually holds, and can rotate through at will)."""
    try:
        address = ipaddress.ip_address(client_ip or "")
    except ValueError:
        return "unknown"
    prefix = 64 if address.version == 6 else 32
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


def _refusal_actor_key(actor: Any, client_ip: str | None) -> str | None:
    """Whose refusals are counted together: the account, or for anonymous attempts the address
    block. None: scheduled jobs."""
    if isinstance(actor, SystemActor) or actor is None:
        return None
    if getattr(actor, "is_authenticated", False) and actor.pk is not None:
        return f"user:{actor.pk}"
    return f"address:{address_block(client_ip)}"


def _count_refusal(actor_key: str, window: datetime) -> int:
    """This refusal's number in its minute, counted in the cache every process shares."""
    key = _REFUSALS.format(actor=actor_key, window=window)
    cache.add(key, 0, timeout=int(REFUSAL_WINDOW.total_seconds()) * 2)
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.add(key, 1, timeout=int(REFUSAL_WINDOW.total_seconds()) * 2)
        return 1


def _tally_refusal(actor_key: str, window: datetime, values: dict[str, Any]) -> None:
    """Count one refusal over the limit in the minute's tally (exact across processes)."""
    counted = {"refused": F("refused") + 1, "client_ip": values["client_ip"]}
    if RefusalTally.objects.filter(actor_key=actor_key, window_start=window).update(**counted):
        return
    try:
        with transaction.atomic():
            RefusalTally.objects.create(
                actor_key=actor_key,
                window_start=window,
                actor_user_id=values["actor_user_id"],
                actor_username=values["actor_username"],
                actor_email=values["actor_email"],
                client_ip=values["client_ip"],
                refused=1,
            )
    except IntegrityError:  # another process opened it first
        RefusalTally.objects.filter(actor_key=actor_key, window_start=window).update(**counted)


def flush_refusal_tallies() -> list[AuditEntry]:
    """Write one entry for each minute that is over and had refusals beyond the limit, saying how
    many; each tally is claimed (deleted) by the one process that writes its entry."""
    written = []
    over = RefusalTally.objects.filter(window_start__lte=refusal_window() - REFUSAL_WINDOW)
    for tally in over.order_by("window_start")[:100]:
        with transaction.atomic():
            if not RefusalTally.objects.filter(pk=tally.pk).delete()[0]:
                continue
            written.append(_write_tally_entry(tally))
    return written


def _write_tally_entry(tally: RefusalTally) -> AuditEntry:
    limit = settings.REFUSED_ATTEMPTS_PER_MINUTE
    # In the dashboard's time zone, whoever's request happens to write it.
    start = timezone.localtime(tally.window_start, timezone.get_default_timezone())
    end = start + REFUSAL_WINDOW
    attempts = "attempt" if tally.refused == 1 else "attempts"
    summary = (
        f"and {tally.refused} more refused {attempts} by {tally.actor_username} between "
        f"{start:%H:%M} and {end:%H:%M} ({start:%Z}), not recorded one by one"
    )
    reason = f"More than {limit} refused attempts in a minute: answered 429 (Too Many Requests)."
    entry = AuditEntry(
        actor_user_id=tally.actor_user_id,
        actor_username=tally.actor_username,
        actor_email=tally.actor_email,
        action=AuditEntry.Action.REFUSALS_OVER_LIMIT,
        summary=summary[:500],
        details=details_for(
            AuditEntry.Action.REFUSALS_OVER_LIMIT,
            refused=tally.refused,
            limit_per_minute=limit,
            **{"from": start.isoformat(), "until": end.isoformat()},
        ),
        status=AuditEntry.Status.REFUSED,
        completed_at=timezone.now(),
        error=reason,
        client_ip=tally.client_ip,
    )
    entry.save()
    return entry


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
        TooManyRefusals: the actor's refusals passed REFUSED_ATTEMPTS_PER_MINUTE this minute;
            the block does not run and nothing but the count is recorded.
    """
    flush_refusal_tallies()
    _limit_refusals(
        actor,
        _entry_fields(actor=actor, action=action, summary=summary),
        reason=NOT_TRIED,
        before_trying=True,
    )
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
        refused_key = _refusal_actor_key(actor, entry.client_ip)
        if refused_key is not None:
            _count_refusal(refused_key, refusal_window())  # toward the allowance; on record already
        raise
    except BaseException as exc:
        complete(record, AuditEntry.Status.FAILED, exc)
        raise
    complete(record, AuditEntry.Status.SUCCEEDED)


@dataclass(frozen=True)
class GroupHistory:
    """A group's latest changes (refused attempts left out) and how many refused ones were folded."""

    entries: list[AuditEntry]
    refused: int  # refused attempts on the group since the oldest change shown (all, if fewer shown)

    def __bool__(self) -> bool:
        return bool(self.entries or self.refused)


def audit_entries_for_group(group_id: str, *, limit: int = 10) -> GroupHistory:
    """The latest attempted changes of one group, newest first; refused attempts only counted,
    so that however many there are they never push the group's real changes out of sight."""
    flush_refusal_tallies()
    about_group = AuditEntry.objects.filter(group_id=group_id)
    entries = list(about_group.exclude(status=AuditEntry.Status.REFUSED)[:limit])
    refused = about_group.filter(status=AuditEntry.Status.REFUSED)
    if len(entries) == limit:
        refused = refused.filter(created_at__gte=entries[-1].created_at)
    return GroupHistory(entries=entries, refused=refused.count())
