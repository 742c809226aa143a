"""Signed webhooks and Slack: events for other systems, delivered by the worker, never in a request.

`webhook_emit()` writes one WebhookDelivery per receiver (each of WEBHOOK_URLS, and Slack when
SLACK_WEBHOOK_URL is set) in the caller's transaction and enqueues its delivery once that
commits, so an event that rolled back is never sent and a slow receiver never slows a page.

A webhook is a POST of the event as JSON with
`X-Group-Admin-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" with WEBHOOK_SECRET>`
(see `signature_problem()` for how a receiver checks it). Slack gets a readable message with
links instead. A failed delivery is tried again after 30 s, 1, 2, 4… minutes (at most an hour
apart) until WEBHOOK_MAX_ATTEMPTS; `webhook_deliveries_due()` (a periodic job) finds them.

This module imports nothing of the audit log (audit.py calls it), so callers pass the
dashboard's address for the links.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from groups_app.models import AccessRequest, AuditEntry, WebhookDelivery
from groups_app.services import queue

logger = logging.getLogger("groups_app.webhooks")

Status = WebhookDelivery.Status
Action = AuditEntry.Action

EVENTS = (
    "access_request.filed",
    "access_request.decided",
    "change.completed",
    "proposal.filed",
    "drift.observed",
    "review.due",
)
SIGNATURE_HEADER = "X-Group-Admin-Signature"
SIGNATURE_TOLERANCE = 300  # seconds a receiver should accept between signing and receiving
FIRST_RETRY = timedelta(seconds=30)
LONGEST_WAIT = timedelta(hours=1)
LEASE = timedelta(minutes=2)  # a delivery being sent is not picked up by another worker meanwhile
CHANGE_ACTIONS = {
    Action.MEMBERS_ADD,
    Action.MEMBERS_REMOVE,
    Action.MEMBERS_REPLACE,
    Action.PERMISSIONS_ADD,
    Action.PERMISSIONS_REPLACE,
    Action.GROUP_CREATE,
    Action.GROUP_RENAME,
    Action.GROUP_DELETE,
}
SENT_OUTCOMES = {AuditEntry.Status.SUCCEEDED, AuditEntry.Status.FAILED, AuditEntry.Status.UNKNOWN}


@dataclass(frozen=True)
class Receiver:
    url: str
    is_slack: bool

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.url.encode()).hexdigest()

    @property
    def shown(self) -> str:
        """The URL without its query (or, for Slack, its secret path)."""
        if self.is_slack:
            return "Slack"
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}{parts.path}"[
            :200
        ]


def receivers() -> list[Receiver]:
    found = [Receiver(url, False) for url in settings.WEBHOOK_URLS if url]
    if settings.SLACK_WEBHOOK_URL:
        found.append(Receiver(settings.SLACK_WEBHOOK_URL, True))
    return found


# -- signing ----------------------------------------------------------------------------------


def sign(body: bytes, *, secret: str, timestamp: int) -> str:
    """The signature header's value for `body` sent at `timestamp`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def signature_problem(header: str, body: bytes, *, secret: str, now: float | None = None) -> str:
    """Why a received signature is not valid ("" when it is): what a receiver should check."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(fields.get("t", ""))
    except ValueError:
        return "no timestamp"
    if abs((now if now is not None else time.time()) - timestamp) > SIGNATURE_TOLERANCE:
        return "too old or from the future"
    expected = sign(body, secret=secret, timestamp=timestamp).split("v1=", 1)[1]
    if not hmac.compare_digest(expected, fields.get("v1", "")):
        return "signature does not match"
    return ""


# -- events -----------------------------------------------------------------------------------


def webhook_emit(
    event: str, data: dict[str, Any], *, text: str, link: str = "", event_id: str = ""
) -> list[WebhookDelivery]:
    """Record the event for every receiver and deliver it once the caller's transaction commits.

    `text` (and `link`) make its Slack message. An `event_id` names an event that happens once
    (a review's due date): emitting it again, as a retried reminder does, records nothing. Never
    raises: events cost freshness, not changes.
    """
    if event not in EVENTS:
        raise ValueError(f"Unknown webhook event {event!r}")
    targets = receivers()
    if not targets:
        return []
    if event_id and WebhookDelivery.objects.filter(event_id=event_id).exists():
        return []
    payload = {
        "id": event_id or str(uuid.uuid4()),
        "type": event,
        "created_at": timezone.now().isoformat(),
        "data": data,
    }
    slack = {"text": _slack_text(text, link)}
    deliveries = []
    try:
        with transaction.atomic():
            for target in targets:
                deliveries.append(
                    WebhookDelivery.objects.create(
                        event=event,
                        event_id=payload["id"],
                        receiver=target.shown,
                        url_digest=target.digest,
                        is_slack=target.is_slack,
                        payload=slack if target.is_slack else payload,
                    )
                )
    except IntegrityError:
        if event_id:  # emitted at the same moment elsewhere: recorded there
            return []
        logger.exception("Could not record the webhook event %s", event)
        return []
    except Exception:
        logger.exception("Could not record the webhook event %s", event)
        return []
    for delivery in deliveries:
        queue.enqueue_after_commit("deliver_webhook", delivery.pk)
    return deliveries


def _slack_text(text: str, link: str) -> str:
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return f"{escaped} <{link}|Open in Group Admin>" if link else escaped


def _base(site: str) -> str:
    return (settings.SITE_URL or site or "http://127.0.0.1:8000").rstrip("/")


def _request_data(access_request: AccessRequest, site: str) -> dict[str, Any]:
    return {
        "access_request": {
            "id": access_request.pk,
            "group_id": access_request.group_id,
            "group_name": access_request.group_name,
            "email": access_request.email,
            "requester": access_request.requester_username,
            "justification": access_request.justification,
            "needed_until": access_request.needed_until.isoformat() if access_request.needed_until else None,
            "status": access_request.status,
            "decided_by": access_request.decided_by_username or None,
            "decision_reason": access_request.decision_reason or None,
        },
        "url": _base(site) + reverse("groups:request", args=[access_request.pk]),
    }


def access_requests_filed(access_requests: list[AccessRequest], *, site: str = "") -> None:
    """access_request.filed, one per request."""
    for r in access_requests:
        data = _request_data(r, site)
        webhook_emit(
            "access_request.filed",
            data,
            text=f"{r.requester_username} asked for {r.email} to join {r.group_name}: “{r.justification[:200]}”",
            link=data["url"],
        )


def access_request_decided(access_request: AccessRequest, *, site: str = "") -> None:
    """access_request.decided: approved (provisioned, or not yet), denied, or closed."""
    data = _request_data(access_request, site)
    by = f" by {access_request.decided_by_username}" if access_request.decided_by_username else ""
    webhook_emit(
        "access_request.decided",
        data,
        text=f"Access for {access_request.email} to {access_request.group_name}{by}: {access_request.get_status_display()}",
        link=data["url"],
    )


def _entry_data(entry: AuditEntry, site: str) -> dict[str, Any]:
    return {
        "audit_entry": {
            "id": entry.pk,
            "action": entry.action,
            "outcome": entry.status,
            "actor": entry.actor_username,
            "via": entry.via or None,
            "group_id": entry.group_id or None,
            "group_name": entry.group_name or None,
            "summary": entry.summary,
            "error": entry.error or None,
        },
        "url": _base(site) + reverse("groups:audit-entry", args=[entry.pk]),
    }


def entry_completed(entry: AuditEntry, *, site: str = "") -> None:
    """change.completed for a change that was not refused (with its outcome); proposal.filed."""
    if not settings.WEBHOOK_URLS and not settings.SLACK_WEBHOOK_URL:
        return  # every completed entry passes here: no work at all when nobody listens
    if entry.action in CHANGE_ACTIONS and entry.status in SENT_OUTCOMES:
        data = _entry_data(entry, site)
        webhook_emit(
            "change.completed",
            data,
            text=f"{entry.summary} — {entry.get_status_display()}",
            link=data["url"],
        )
    elif entry.action == Action.PERMISSIONS_PROPOSE and entry.status == AuditEntry.Status.SUCCEEDED:
        data = _entry_data(entry, site)
        webhook_emit(
            "proposal.filed",
            data,
            text=f"{entry.summary}; a second Administrator decides it.",
            link=data["url"],
        )


def drift_observed(entries: list[AuditEntry], *, site: str = "") -> None:
    """drift.observed, one per group changed outside Group Admin."""
    for entry in entries:
        data = _entry_data(entry, site)
        webhook_emit(
            "drift.observed", data, text=f"Observed outside Group Admin: {entry.summary}", link=data["url"]
        )


def review_due(review: Any, *, decided: int, total: int, site: str = "") -> None:
    """review.due: a review's due date is near."""
    url = _base(site) + reverse("groups:review", args=[review.pk])
    data = {
        "review": {
            "id": review.pk,
            "group_id": review.group_id,
            "group_name": review.group_name,
            "due_date": review.due_date.isoformat() if review.due_date else None,
            "reviewer": review.reviewer_username or None,
            "decided": decided,
            "total": total,
        },
        "url": url,
    }
    webhook_emit(
        "review.due",
        data,
        text=f"The review of {review.group_name} is due on {review.due_date:%Y-%m-%d}: {decided} of {total} decided",
        link=url,
        # Once per review and due date, however often the reminder mail is retried.
        event_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"group-admin:review.due:{review.pk}:{review.due_date}")),
    )


# -- delivery ---------------------------------------------------------------------------------


def _claim(delivery_id: int) -> WebhookDelivery | None:
    """Take a delivery that is due for this worker alone (a lease, not a lock)."""
    now = timezone.now()
    due = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    claimed = WebhookDelivery.objects.filter(
        due, pk=delivery_id, status__in=[Status.PENDING, Status.RETRYING]
    ).update(next_attempt_at=now + LEASE)
    return WebhookDelivery.objects.get(pk=delivery_id) if claimed else None


def backoff(attempts: int) -> timedelta:
    """The wait after the `attempts`-th failure: 30 s, 1, 2, 4… minutes, at most an hour."""
    return min(FIRST_RETRY * 2 ** max(attempts - 1, 0), LONGEST_WAIT)


def webhook_deliver(delivery_id: int, *, session: Any = None) -> WebhookDelivery | None:
    """Send one delivery if it is due; record the attempt (None: not due, or taken by another worker)."""
    delivery = _claim(delivery_id)
    if delivery is None:
        return None
    target = next((r for r in receivers() if r.digest == delivery.url_digest), None)
    now = timezone.now()
    fields: dict[str, Any] = {"attempts": delivery.attempts + 1, "last_attempt_at": now}
    if target is None:
        fields.update(
            status=Status.FAILED, next_attempt_at=None, last_error="The receiver is no longer configured."
        )
    else:
        error, code = _post(target, delivery, session or requests)
        fields["last_status_code"] = code
        if not error:
            fields.update(status=Status.DELIVERED, delivered_at=now, next_attempt_at=None, last_error="")
        elif fields["attempts"] >= settings.WEBHOOK_MAX_ATTEMPTS:
            fields.update(status=Status.FAILED, next_attempt_at=None, last_error=error[:500])
        else:
            fields.update(
                status=Status.RETRYING,
                next_attempt_at=now + backoff(fields["attempts"]),
                last_error=error[:500],
            )
    WebhookDelivery.objects.filter(pk=delivery.pk).update(**fields)
    delivery.refresh_from_db()
    if delivery.status != Status.DELIVERED:
        logger.warning(
            "Webhook %s #%s to %s: %s", delivery.event, delivery.pk, delivery.receiver, delivery.last_error
        )
    return delivery


def _post(target: Receiver, delivery: WebhookDelivery, http: Any) -> tuple[str, int | None]:
    """("", status) when the receiver took it (2xx); else why not."""
    body = json.dumps(delivery.payload, separators=(",", ":"), sort_keys=True).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "GroupAdmin-Webhooks/1"}
    if not target.is_slack:
        headers[SIGNATURE_HEADER] = sign(body, secret=settings.WEBHOOK_SECRET, timestamp=int(time.time()))
        headers["X-Group-Admin-Event"] = delivery.event
        headers["X-Group-Admin-Delivery"] = delivery.event_id
    try:
        response = http.post(
            target.url, data=body, headers=headers, timeout=settings.WEBHOOK_TIMEOUT, allow_redirects=False
        )
    except requests.RequestException as exc:
        # Never the URL itself in the message: it may hold a secret.
        return f"Could not reach the receiver: {type(exc).__name__}", None
    if 200 <= response.status_code < 300:
        return "", response.status_code
    return f"The receiver answered HTTP {response.status_code}", response.status_code


def webhook_deliveries_due(*, limit: int = 200) -> list[WebhookDelivery]:
    """Deliver every delivery whose time has come (a periodic job: retries, and first attempts
    whose enqueue was lost)."""
    now = timezone.now()
    due = WebhookDelivery.objects.filter(status__in=[Status.PENDING, Status.RETRYING]).filter(
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    )
    done = []
    for delivery_id in due.order_by("created_at").values_list("pk", flat=True)[:limit]:
        delivered = webhook_deliver(delivery_id)
        if delivered is not None:
            done.append(delivered)
    return done


def webhook_delivery_list(*, status: str = "") -> Any:
    """Deliveries for the deliveries page, newest first."""
    deliveries = WebhookDelivery.objects.all()
    return deliveries.filter(status=status) if status in Status.values else deliveries
