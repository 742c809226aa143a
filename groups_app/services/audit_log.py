"""Reading the audit log: filtering and CSV export (writing is audit.audited's alone)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, datetime, time

from django.contrib.auth import get_user_model
from django.db.models import Q, QuerySet
from django.utils import timezone

from groups_app.models import AuditEntry
from groups_app.services.audit import SYSTEM_ACTOR, flush_refusal_tallies
from groups_app.services.exports import csv_chunks

CSV_COLUMNS = (
    "created_at",
    "completed_at",
    "actor",
    "action",
    "group_id",
    "group_name",
    "summary",
    "status",
    "resolution",
    "upstream_status",
    "error",
    "client_ip",
    "request_id",
    "details",
)


def audit_entries(
    *,
    text: str = "",
    actor: str = "",
    action: str = "",
    group: str = "",
    status: str = "",
    date_from: date | None = None,
    date_to: date | None = None,
) -> QuerySet[AuditEntry]:
    """Entries matching every given filter, newest first (counts of refusals over the limit in
    minutes that are over written first, so that the log shows them)."""
    flush_refusal_tallies()
    entries = AuditEntry.objects.all()
    if text:
        # The summary, group, actor, error and details (the emails and permissions a change
        # touched), kept lower-cased in one column a trigram index serves on PostgreSQL.
        entries = entries.filter(search_text__contains=text.strip().lower())
    if actor:
        # A whole username (any letter case), never part of one: "ann" is not "joanna".
        entries = entries.filter(actor_username__iexact=actor.strip())
    if action:
        entries = entries.filter(action=action)
    if group:
        entries = entries.filter(Q(group_id=group) | Q(group_name__icontains=group))
    if status:
        entries = entries.filter(status=status)
    tz = timezone.get_current_timezone()
    if date_from:
        entries = entries.filter(created_at__gte=datetime.combine(date_from, time.min, tz))
    if date_to:
        entries = entries.filter(created_at__lte=datetime.combine(date_to, time.max, tz))
    return entries


def audit_actor_choices() -> list[str]:
    """Who the actor filter offers: every active account, and the system (scheduled jobs)."""
    accounts = get_user_model().objects.filter(is_active=True).order_by("username")
    usernames = accounts.values_list("username", flat=True)
    return [*usernames, SYSTEM_ACTOR]


def audit_csv_rows(entries: QuerySet[AuditEntry]) -> Iterator[str]:
    """The entries as CSV text, produced in chunks (for a streamed download)."""
    rows = (
        (
            entry.created_at.isoformat(),
            entry.completed_at.isoformat() if entry.completed_at else "",
            entry.actor_username,
            entry.action,
            entry.group_id,
            entry.group_name,
            entry.summary,
            entry.get_status_display(),
            entry.get_resolution_display() if entry.resolution else "",
            entry.upstream_status or "",
            entry.error,
            entry.client_ip or "",
            entry.request_id,
            json.dumps(entry.details, sort_keys=True),
        )
        for entry in entries.iterator(chunk_size=2000)
    )
    return csv_chunks(CSV_COLUMNS, rows)
