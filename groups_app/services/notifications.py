"""Email notifications of access requests. A failing mail server never blocks a decision.

Text that people typed (group names, justifications, reasons) reaches every approver's
mailbox, so it is bounded: in a subject it is one line (a line break there would break the
mail's headers), quoted and at most SUBJECT_TEXT_CHARS long; in a body each piece is at most
BODY_TEXT_CHARS long, with a pointer to the page that has all of it.
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Iterable

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db.models import Q
from django.urls import reverse

from groups_app.models import AccessRequest
from groups_app.services.audit import origin_var

logger = logging.getLogger("groups_app.notifications")

SUBJECT_TEXT_CHARS = 80
SUBJECT_CHARS = 150
BODY_TEXT_CHARS = 1000
ELLIPSIS = "…"


def one_line(text: object, limit: int = SUBJECT_TEXT_CHARS) -> str:
    """`text` on one line: every line break, control or format character becomes a space,
    runs of spaces one, cut to `limit` characters (ending in …)."""
    flat = "".join(
        " " if char.isspace() or unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp") else char
        for char in str(text or "")
    )
    flat = " ".join(flat.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + ELLIPSIS


def quoted(text: object, limit: int = SUBJECT_TEXT_CHARS) -> str:
    """Text someone typed, as a subject shows it: on one line, bounded, in quotes."""
    return f"“{one_line(text, limit)}”"


def subject_line(text: str) -> str:
    """A mail subject: one line, at most SUBJECT_CHARS characters."""
    return one_line(text, SUBJECT_CHARS)


def bounded(text: object, limit: int = BODY_TEXT_CHARS) -> str:
    """Text someone typed, as a body shows it: its lines kept, control characters dropped, and at
    most `limit` characters, saying so when cut."""
    kept = "".join(
        char
        for char in str(text or "").replace("\r\n", "\n")
        if char in "\n\t" or unicodedata.category(char) not in ("Cc", "Cf", "Zl", "Zp")
    ).strip()
    if len(kept) <= limit:
        return kept
    return kept[:limit].rstrip() + f"{ELLIPSIS} (shortened; the whole text is on the page linked below)"


def approvers_emails() -> list[str]:
    """Active people who may decide requests: Help desk, Administrators and superusers."""
    users = get_user_model().objects.filter(is_active=True).exclude(email="")
    deciders = users.filter(
        Q(is_superuser=True)
        | Q(
            groups__permissions__codename="handle_access_requests",
            groups__permissions__content_type__app_label="groups_app",
        )
    ).distinct()
    return sorted({user.email for user in deciders})


def site_url() -> str:
    """The dashboard's address for links in emails: SITE_URL, else the current request's address."""
    origin = origin_var.get()
    return (settings.SITE_URL or (origin.base_url if origin else "") or "http://127.0.0.1:8000").rstrip("/")


def _link(access_request: AccessRequest) -> str:
    return site_url() + reverse("groups:request", args=[access_request.pk])


def _send(subject: str, body: str, recipients: Iterable[str]) -> bool:
    recipients = [r for r in recipients if r]
    if not recipients:
        return False
    try:
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, recipients)
    except Exception:
        logger.exception("Could not send the notification %r", subject)
        return False
    return True


def notify_new_requests(requests: list[AccessRequest]) -> bool:
    """Tell the approvers that requests are waiting."""
    if not requests:
        return False
    first = requests[0]
    lines = [f"{one_line(first.requester_username)} asked for access to {quoted(first.group_name)} for:"]
    lines += [f"  - {one_line(r.email, 254)}: {_link(r)}" for r in requests]
    lines += ["", f"Justification: {bounded(first.justification)}"]
    if first.needed_until:
        lines.append(f"Needed until: {first.needed_until:%Y-%m-%d}")
    subject = subject_line(f"Access request: {quoted(first.group_name)}")
    return _send(subject, "\n".join(lines), approvers_emails())


# How each outcome is told to the requester, in the subject line.
DECISION_WORDS = {
    AccessRequest.Status.PROVISIONED: "approved",
    AccessRequest.Status.PROVISIONING_FAILED: "approved, not yet applied",
    AccessRequest.Status.OUTCOME_UNKNOWN: "approved, being checked",
    AccessRequest.Status.DENIED: "denied",
    AccessRequest.Status.CLOSED: "closed as not possible",
}


def notify_decision(request: AccessRequest, requester_email: str) -> bool:
    """Tell the requester (and the person the access is for) what was decided."""
    status = request.get_status_display()
    body = [
        f"Your request for {one_line(request.email, 254)} to join {quoted(request.group_name)}: {status}."
    ]
    if request.decision_reason:
        body.append(f"Reason: {bounded(request.decision_reason)}")
    if request.provisioning_error and request.status != AccessRequest.Status.CLOSED:
        body.append(f"Segment did not apply it yet: {bounded(request.provisioning_error)}")
    if request.needed_until and request.status == AccessRequest.Status.PROVISIONED:
        body.append(f"The access ends after {request.needed_until:%Y-%m-%d}.")
    body.append(_link(request))
    recipients = {requester_email, request.email}
    words = DECISION_WORDS.get(request.status, status.lower())
    subject = subject_line(f"Access request {words}: {quoted(request.group_name)}")
    return _send(subject, "\n".join(body), recipients)


def notify_review_due(review, email: str, *, decided: int, total: int) -> bool:
    """Remind whoever runs a review that it is due soon."""
    link = site_url() + reverse("groups:review", args=[review.pk])
    body = (
        f"The review of {quoted(review.group_name)} is due on {review.due_date:%Y-%m-%d}: "
        f"{decided} of {total} entries are decided.\n{link}"
    )
    subject = subject_line(f"Review due {review.due_date:%Y-%m-%d}: {quoted(review.group_name)}")
    return _send(subject, body, [email])


def administrators_emails() -> list[str]:
    """Active Administrators (who may manage groups) and superusers."""
    users = get_user_model().objects.filter(is_active=True).exclude(email="")
    admins = users.filter(
        Q(is_superuser=True)
        | Q(
            groups__permissions__codename="manage_groups",
            groups__permissions__content_type__app_label="groups_app",
        )
    ).distinct()
    return sorted({user.email for user in admins})


def notify_observed_changes(entries: list) -> bool:
    """Tell the Administrators what a sync found changed outside Group Admin."""
    lines = ["Segment's groups were changed outside Group Admin (Segment's app, Terraform or a script):", ""]
    for entry in entries:
        lines.append(f"- {one_line(entry.summary, BODY_TEXT_CHARS)}")
        lines.append(f"  {site_url()}{reverse('groups:audit-entry', args=[entry.pk])}")
    subject = f"{len(entries)} change{'s' if len(entries) != 1 else ''} observed outside Group Admin"
    return _send(subject, "\n".join(lines), administrators_emails())
