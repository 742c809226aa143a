"""Email notifications of access requests. A failing mail server never blocks a decision."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db.models import Q
from django.urls import reverse

from groups_app.models import AccessRequest
from groups_app.services.audit import origin_var

logger = logging.getLogger("groups_app.notifications")


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
    lines = [f"{first.requester_username} asked for access to {first.group_name} for:"]
    lines += [f"  - {r.email}: {_link(r)}" for r in requests]
    lines += ["", f"Justification: {first.justification}"]
    if first.needed_until:
        lines.append(f"Needed until: {first.needed_until:%Y-%m-%d}")
    return _send(f"Access request: {first.group_name}", "\n".join(lines), approvers_emails())


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
    body = [f"Your request for {request.email} to join {request.group_name}: {status}."]
    if request.decision_reason:
        body.append(f"Reason: {request.decision_reason}")
    if request.provisioning_error and request.status != AccessRequest.Status.CLOSED:
        body.append(f"Segment did not apply it yet: {request.provisioning_error}")
    if request.needed_until and request.status == AccessRequest.Status.PROVISIONED:
        body.append(f"The access ends after {request.needed_until:%Y-%m-%d}.")
    body.append(_link(request))
    recipients = {requester_email, request.email}
    words = DECISION_WORDS.get(request.status, status.lower())
    return _send(f"Access request {words}: {request.group_name}", "\n".join(body), recipients)


def notify_review_due(review, email: str, *, decided: int, total: int) -> bool:
    """Remind whoever runs a review that it is due soon."""
    link = site_url() + reverse("groups:review", args=[review.pk])
    body = (
        f"The review of {review.group_name} is due on {review.due_date:%Y-%m-%d}: "
        f"{decided} of {total} entries are decided.\n{link}"
    )
    return _send(f"Review due {review.due_date:%Y-%m-%d}: {review.group_name}", body, [email])


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
        lines.append(f"- {entry.summary}")
        lines.append(f"  {site_url()}{reverse('groups:audit-entry', args=[entry.pk])}")
    subject = f"{len(entries)} change{'s' if len(entries) != 1 else ''} observed outside Group Admin"
    return _send(subject, "\n".join(lines), administrators_emails())


def notify_new_requests_to_owners(requests: list[AccessRequest], owner_emails: list[str]) -> bool:
    """Tell a group's owners that requests for it are waiting; False when it has no owner to tell."""
    if not requests or not owner_emails:
        return False
    first = requests[0]
    lines = [f"{first.requester_username} asked for access to {first.group_name}, a group you own, for:"]
    lines += [f"  - {r.email}: {_link(r)}" for r in requests]
    lines += ["", f"Justification: {first.justification}"]
    if first.needed_until:
        lines.append(f"Needed until: {first.needed_until:%Y-%m-%d}")
    return _send(f"Access request for a group you own: {first.group_name}", "\n".join(lines), owner_emails)


def notify_owner_approved(request: AccessRequest) -> bool:
    """Tell the Administrators that an owner approved a request for a privileged group."""
    body = (
        f"{request.owner_approved_by_username} approved, as an owner, access to {request.group_name} "
        f"for {request.email}. It is a privileged group: an Administrator must approve too.\n\n{_link(request)}"
    )
    return _send(f"Owner approved, your approval needed: {request.group_name}", body, administrators_emails())


def notify_access_ending(request: AccessRequest, recipients: list[str], days_left: int) -> bool:
    """Tell the member and the group's owners that a membership ends soon."""
    when = "today" if days_left == 0 else "tomorrow" if days_left == 1 else f"in {days_left} days"
    body = (
        f"The access of {request.email} to {request.group_name} ends {when} ({request.needed_until:%Y-%m-%d}).\n\n"
        "Owners, Help desk and Administrators can renew it with a new end date or let it expire:\n"
        f"{site_url()}{reverse('groups:expiring')}\n\n"
        "If it is your access and you still need it, ask for a renewal on the same page."
    )
    return _send(f"Access ending {when}: {request.group_name}", body, recipients)


def notify_campaign_review(review, campaign, recipients: list[str]) -> bool:
    """Tell a group's owners (and its named reviewer) that a campaign asks them to review it."""
    body = (
        f"The review campaign {campaign.name} asks you to review who is in {review.group_name} "
        f"by {campaign.due_date:%Y-%m-%d}: keep or remove each user and invite.\n\n"
        f"{site_url()}{reverse('groups:review', args=[review.pk])}"
    )
    return _send(f"Review {review.group_name} by {campaign.due_date:%Y-%m-%d}", body, recipients)
