"""Email notifications: access requests, proposals, reviews due, and changes observed outside
Group Admin. Every link starts with SITE_URL (see `site_url`). A failing mail server never blocks
a decision; the worker sends request and proposal mail (`send`), not the request that caused it.

Text that people typed (group names, justifications, reasons) reaches every approver's
mailbox, so it is bounded: in a subject it is one line (a line break there would break the
mail's headers), quoted and at most SUBJECT_TEXT_CHARS long; in a body each piece is at most
BODY_TEXT_CHARS long, with a pointer to the page that has all of it.
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Iterable
from datetime import datetime

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from groups_app.models import AccessRequest, ChangeProposal
from groups_app.services import owners, webhooks
from groups_app.services.audit import origin_var
from groups_app.services.audit_details import ObservedChange, grant_lines, observed_change
from groups_app.services.mirror.selectors import mirrored_resource_names

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
    webhooks.access_requests_filed(requests, site=site_url())
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
    webhooks.access_request_decided(request, site=site_url())
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
    webhooks.review_due(review, decided=decided, total=total, site=site_url())
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
    """Tell the Administrators what a sync found changed outside Group Admin: per group, the roles
    granted and revoked by name (a privileged grant called out), who was added or removed, between
    which two readings (in TIME_ZONE), the sync, and the entry's link."""
    webhooks.drift_observed(entries, site=site_url())
    names = _resource_names()
    changes = [observed_change(entry, resource_names=names) for entry in entries]
    privileged = _unique_names(role for change in changes for role in change.privileged_grants)
    lines = ["Segment's groups were changed outside Group Admin (Segment's app, Terraform or a script):", ""]
    if privileged:
        lines += [
            f"PRIVILEGED: {', '.join(privileged)} granted outside Group Admin, without its rules or a "
            "second Administrator. Check who did it and whether it should stay.",
            "",
        ]
    for change in changes:
        lines += _observed_lines(change)
    count = f"{len(entries)} change{'s' if len(entries) != 1 else ''} observed outside Group Admin"
    subject = f"{', '.join(privileged)} granted outside Group Admin ({count})" if privileged else count
    return _send(subject, "\n".join(lines), administrators_emails())


MAIL_EMAILS_SHOWN = 20


def _observed_lines(change: ObservedChange) -> list[str]:
    lines = [f"- {change.summary}"]
    if change.old_name:
        lines.append(f"  Renamed: from {change.old_name} to {change.new_name}")
    for label, grants in (("Granted", change.granted), ("Revoked", change.revoked)):
        lines += [f"  {label}: {line}" for line in grant_lines(grants)]
    if change.deleted and change.before:
        lines += [f"  The group had: {line}" for line in grant_lines(change.before)]
    for label, emails in (("Added", change.added), ("Removed", change.removed)):
        if emails:
            more = len(emails) - MAIL_EMAILS_SHOWN
            lines.append(
                f"  {label}: {', '.join(emails[:MAIL_EMAILS_SHOWN])}{f' and {more} more' if more > 0 else ''}"
            )
    if change.previous_reading and change.reading:
        lines.append(
            f"  Between the readings of {_local(change.previous_reading)} and {_local(change.reading)}"
        )
    elif change.reading:
        lines.append(f"  Found by the reading of {_local(change.reading)}")
    if change.sync_id is not None:
        sync_link = site_url() + reverse("admin:groups_app_syncrun_change", args=[change.sync_id])
        lines.append(f"  Sync #{change.sync_id}: {sync_link}")
    lines += [f"  {site_url()}{reverse('groups:audit-entry', args=[change.entry_id])}", ""]
    return lines


def _local(moment: datetime) -> str:
    """A moment in TIME_ZONE, with the zone: mail has no browser to ask."""
    return f"{timezone.localtime(moment):%Y-%m-%d %H:%M:%S %Z}"


def _resource_names() -> dict[tuple[str, str], str]:
    """Names of the resources grants name, as the mirror's syncs read them (no upstream call)."""
    return mirrored_resource_names()


def _unique_names(names) -> list[str]:
    return list(dict.fromkeys(names))


def notify_proposal_filed(proposal) -> bool:
    """Tell the other Administrators that a proposed privileged grant waits for one of them."""
    link = site_url() + reverse("groups:inbox")
    grants = ", ".join(sorted({d.get("roleName") or d.get("roleId", "") for d in proposal.summary}))
    body = [
        f"{proposal.proposed_by_username} proposed granting {grants} to {proposal.group_name}.",
        "A second Administrator must approve or reject it.",
    ]
    if proposal.joined_since_privileged:
        body.append(
            f"Joined since the group last granted a privileged role: {', '.join(proposal.joined_since_privileged)}"
        )
    body.append(link)
    proposer = proposal.proposed_by.email if proposal.proposed_by else ""
    recipients = [email for email in administrators_emails() if email != proposer]
    return _send(f"Proposed grant waiting: {proposal.group_name}", "\n".join(body), recipients)


# The mail of each event, sent by the worker (services enqueue `send_notification` by name once
# their change is written), so that no request waits for a mail server.
EVENTS = ("access_requests_filed", "access_request_decided", "owner_approved", "proposal_filed")


def send(kind: str, ids: list[int]) -> bool:
    """Send the mail of one event about the access requests or the proposal `ids`.

    Raises:
        ValueError: an unknown kind of event.
    """
    if kind == "access_requests_filed":
        filed = list(AccessRequest.objects.filter(pk__in=ids).order_by("pk"))
        # The group's owners decide first; a group without owners goes to Help desk and Administrators.
        if filed and notify_new_requests_to_owners(filed, owners.owner_emails(filed[0].group_id)):
            return True
        return notify_new_requests(filed)
    if kind == "owner_approved":
        return any([notify_owner_approved(r) for r in AccessRequest.objects.filter(pk__in=ids)])
    if kind == "access_request_decided":
        sent = False
        for access_request in AccessRequest.objects.filter(pk__in=ids).select_related("requester"):
            requester = access_request.requester.email if access_request.requester else ""
            sent = notify_decision(access_request, requester) or sent
        return sent
    if kind == "proposal_filed":
        proposals = ChangeProposal.objects.filter(pk__in=ids).select_related("proposed_by")
        return any([notify_proposal_filed(proposal) for proposal in proposals])
    raise ValueError(f"Unknown notification {kind!r}.")


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
