"""Time-bound access: memberships with an end date, the notices before it, renewing or letting go.

A membership with an end is an access request in the state *provisioned* with `needed_until`:
either one that was asked for and approved, or one recorded for a direct addition made with an
end date (`is_direct`). `access_requests_expire` ends them all the same way, and keeps the
membership while another grant for the same email and group still runs (a renewal asked for).

Before the end (`EXPIRY_NOTICE_DAYS`, by default 7 and 1 days) the member and the group's
owners are mailed once per notice; renewing moves the date and starts the notices again; "let
it expire" stops them. Every renewal and every "let it expire" is audited.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils import timezone

from groups_app.models import AccessRequest, AuditEntry, MirrorGroup
from groups_app.roles import HANDLE_ACCESS_REQUESTS
from groups_app.rules import book
from groups_app.rules.book import ProposedChange, Verdict
from groups_app.rules.identity import same_identity
from groups_app.segment import SegmentClient
from groups_app.services.approvals.access_requests import FileResult, access_request_file, audited_request
from groups_app.services.audit import actor_name
from groups_app.services.errors import InvalidInput, NotAllowed
from groups_app.services.mirror.selectors import mirrored_group
from groups_app.services.notifications import notify_access_ending
from groups_app.services.owners import groups_owned_by, owner_emails
from groups_app.services.transitions import transition

Status = AccessRequest.Status
Action = AuditEntry.Action
EXPIRING_WITHIN_DAYS = 30
MAX_REASON = 2000


@dataclass(frozen=True)
class BulkResult:
    done: tuple[AccessRequest, ...]
    refused: tuple[tuple[AccessRequest, str], ...]


def access_ends_record(
    *,
    actor: Any,
    group_id: str,
    group_name: str,
    emails: Iterable[str],
    ends_on: date,
    entry: AuditEntry | None,
) -> list[AccessRequest]:
    """Record the end of the memberships a direct addition just made (each audited).

    Only addresses the addition made members are given: someone already in the group keeps
    the access they had, so the expiry never removes them.
    """
    recorded = []
    for email in emails:
        access_request = AccessRequest(
            group_id=group_id,
            group_name=group_name,
            email=email,
            requester=actor if getattr(actor, "pk", None) else None,
            requester_username=actor_name(actor),
            justification=f"Added directly by {actor_name(actor)} until {ends_on:%Y-%m-%d}.",
            needed_until=ends_on,
            status=Status.PROVISIONED,
            decided_at=timezone.now(),
            decided_by_username=actor_name(actor),
            provisioning_entry=entry,
            is_direct=True,
        )
        access_request.save()
        with audited_request(
            access_request,
            actor=actor,
            action=Action.ACCESS_END_SET,
            summary=f"{actor_name(actor)} added {email} to {group_name} until {ends_on:%Y-%m-%d}",
            needed_until=f"{ends_on:%Y-%m-%d}",
            **({"addition": entry.pk} if entry is not None else {}),
        ):
            pass
        recorded.append(access_request)
    return recorded


def time_bound_superseded(
    *, actor: Any, group_id: str, emails: Iterable[str], entry: AuditEntry | None, read_live: bool
) -> list[AccessRequest]:
    """End the running end dates of people an addition has just made members again (each audited).

    Such an end date belonged to an earlier membership that ended without the expiry (removed
    in Segment or by another change). Left in place, it would remove the person again on its
    day although the later addition was for good, or until an end date of its own. Only an end
    date whose membership is known to have ended is ended: the addition read the group live
    (`read_live`) and did not find them, or the audit log shows them removed since it was set.
    The mirror's word alone never is: a copy that missed a member would end their end date.
    """
    emails = {email.strip().lower() for email in emails}
    stale = AccessRequest.objects.filter(
        group_id=group_id, status=Status.PROVISIONED, needed_until__isnull=False, email__in=emails
    )
    if entry is not None:
        stale = stale.filter(decided_at__lt=entry.created_at)
    ended = []
    for access_request in stale.order_by("id"):
        if not read_live and not _removed_since(access_request):
            continue
        with audited_request(
            access_request,
            actor=actor,
            action=Action.REQUEST_EXPIRE,
            summary=(
                f"{actor_name(actor)} added {access_request.email} to {access_request.group_name} again: "
                f"the earlier end date ({access_request.needed_until:%Y-%m-%d}) no longer applies"
            ),
            removed=False,
            **({"superseded_by": entry.pk} if entry is not None else {}),
        ):
            transition(
                access_request, from_=(Status.PROVISIONED,), to=Status.EXPIRED, expired_at=timezone.now()
            )
        ended.append(access_request)
    return ended


# Where each kind of entry lists the addresses it took out of a group.
_REMOVED_IN = {
    Action.MEMBERS_REMOVE: "emails",
    Action.MEMBERS_REPLACE: "to_remove",
    Action.OBSERVED: "removed",
}


def _removed_since(access_request: AccessRequest) -> bool:
    """Whether the audit log shows the request's email taken out of its group since it was granted:
    a removal or a Replace all that went through, or a removal observed outside Group Admin."""
    since = access_request.decided_at or access_request.created_at
    found = AuditEntry.objects.filter(
        group_id=access_request.group_id, created_at__gt=since, action__in=list(_REMOVED_IN)
    ).filter(
        Q(status=AuditEntry.Status.SUCCEEDED)
        | Q(status=AuditEntry.Status.UNKNOWN, resolution=AuditEntry.Resolution.APPLIED)
    )
    email = access_request.email.lower()
    for action, details in found.values_list("action", "details"):
        if email in {str(e).lower() for e in (details or {}).get(_REMOVED_IN[action]) or []}:
            return True
    return False


def checked_end_date(
    ends_on: date | None, *, field: str = "ends_on", today: date | None = None
) -> date | None:
    """Raises InvalidInput (on `field`) for an end date that is not in the future."""
    today = today or timezone.localdate()
    if ends_on is not None and ends_on <= today:
        message = "The end date must be in the future."
        raise InvalidInput(message, {field: message})
    return ends_on


# --- Who may see and act -------------------------------------------------------------------


def expiring_access(
    *, viewer: Any, within_days: int = EXPIRING_WITHIN_DAYS, today: date | None = None
) -> QuerySet[AccessRequest]:
    """Memberships ending in the next `within_days` days that `viewer` may act on, soonest first:
    every one for Help desk and Administrators, those of the groups they own for owners."""
    today = today or timezone.localdate()
    ending = AccessRequest.objects.filter(
        status=Status.PROVISIONED,
        needed_until__gte=today,
        needed_until__lte=today + timedelta(days=within_days),
    )
    if not book.may_act(viewer, HANDLE_ACCESS_REQUESTS):
        ending = ending.filter(group_id__in=groups_owned_by(viewer).values_list("group_id", flat=True))
    return ending.order_by("needed_until", "group_name", "email", "id")


def my_time_bound_access(account: Any) -> list[AccessRequest]:
    """The signed-in person's own memberships with an end date (to ask for a renewal)."""
    email = (getattr(account, "email", "") or "").strip()
    if not email:
        return []
    ending = AccessRequest.objects.filter(status=Status.PROVISIONED, needed_until__isnull=False)
    return [r for r in ending.order_by("needed_until", "id") if same_identity(r.email, email)]


def _check_may_renew(actor: Any, access_request: AccessRequest) -> None:
    """The rule book decides: the role or owning the group; a privileged group, Administrators."""
    stored = MirrorGroup.objects.filter(group_id=access_request.group_id).first()
    change = ProposedChange(
        actor=actor,
        permission=HANDLE_ACCESS_REQUESTS,
        group=mirrored_group(stored) if stored is not None else None,
        group_id=access_request.group_id,
    )
    decision = book.decide(change)
    if decision.verdict == Verdict.REFUSED:
        raise NotAllowed(decision.reason)


def _provisioned(ids: Iterable[int]) -> list[AccessRequest]:
    ids = list(ids)
    if not ids:
        raise InvalidInput("Choose at least one membership.", {"ids": "Choose at least one membership."})
    found = list(AccessRequest.objects.filter(pk__in=ids).order_by("needed_until", "id"))
    if len(found) != len(set(ids)):
        raise InvalidInput("Some of those memberships do not exist.")
    return found


def access_renew(
    *, actor: Any, access_request_ids: Iterable[int], ends_on: date | None, reason: str
) -> BulkResult:
    """Move the end of memberships to `ends_on`, with a reason; each renewal audited.

    A row the actor may not renew (or no longer provisioned) is refused and listed; the
    others are renewed.

    Raises:
        InvalidInput (fields `ends_on`, `reason`, `ids`).
    """
    reason = (reason or "").strip()
    errors = {}
    if ends_on is None:
        errors["ends_on"] = "Give the new end date."
    elif ends_on <= timezone.localdate():
        errors["ends_on"] = "The end date must be in the future."
    if not reason:
        errors["reason"] = "Say why the access is still needed."
    elif len(reason) > MAX_REASON or "\x00" in reason:
        errors["reason"] = f"At most {MAX_REASON} characters of plain text."
    if errors:
        raise InvalidInput(" ".join(errors.values()), errors)
    done, refused = [], []
    for access_request in _provisioned(access_request_ids):
        before = access_request.needed_until
        try:
            with audited_request(
                access_request,
                actor=actor,
                action=Action.ACCESS_RENEW,
                summary=(
                    f"{actor_name(actor)} renewed the access of {access_request.email} to "
                    f"{access_request.group_name} until {ends_on:%Y-%m-%d}"
                ),
                needed_until_before=f"{before:%Y-%m-%d}" if before else "",
                needed_until=f"{ends_on:%Y-%m-%d}",
                reason=reason,
            ):
                _check_may_renew(actor, access_request)
                if access_request.status != Status.PROVISIONED:
                    raise InvalidInput("Only access that is in effect can be renewed.")
                transition(
                    access_request,
                    from_=(Status.PROVISIONED,),
                    to=Status.PROVISIONED,
                    needed_until=ends_on,
                    expiry_notified_days=None,
                    expiry_notices_stopped=False,
                )
        except (InvalidInput, NotAllowed) as exc:
            refused.append((access_request, exc.message))
            continue
        done.append(access_request)
    return BulkResult(tuple(done), tuple(refused))


def access_let_expire(*, actor: Any, access_request_ids: Iterable[int]) -> BulkResult:
    """No further notices: the access ends on its date (each audited)."""
    done, refused = [], []
    for access_request in _provisioned(access_request_ids):
        try:
            with audited_request(
                access_request,
                actor=actor,
                action=Action.ACCESS_LET_EXPIRE,
                summary=(
                    f"{actor_name(actor)} let the access of {access_request.email} to "
                    f"{access_request.group_name} expire on {access_request.needed_until:%Y-%m-%d}"
                ),
            ):
                _check_may_renew(actor, access_request)
                if access_request.status != Status.PROVISIONED:
                    raise InvalidInput("Only access that is in effect can be let expire.")
                transition(
                    access_request,
                    from_=(Status.PROVISIONED,),
                    to=Status.PROVISIONED,
                    expiry_notices_stopped=True,
                )
        except (InvalidInput, NotAllowed) as exc:
            refused.append((access_request, exc.message))
            continue
        done.append(access_request)
    return BulkResult(tuple(done), tuple(refused))


def access_renewal_ask(
    *,
    actor: Any,
    access_request_id: int,
    ends_on: date | None,
    justification: str,
    client: SegmentClient | None = None,
) -> FileResult:
    """The member asks to keep their access longer: a request, decided like any other.

    Raises:
        NotAllowed: it is not the actor's own access.
        InvalidInput (fields `ends_on`, `justification`).
    """
    access_request = AccessRequest.objects.filter(pk=access_request_id, status=Status.PROVISIONED).first()
    if access_request is None or not same_identity(access_request.email, getattr(actor, "email", "") or ""):
        raise NotAllowed("You can ask to renew only your own access.")
    if ends_on is None:
        raise InvalidInput("Give the new end date.", {"ends_on": "Give the new end date."})
    if access_request.needed_until and ends_on <= access_request.needed_until:
        message = f"Ask for a date after {access_request.needed_until:%Y-%m-%d}, when it ends now."
        raise InvalidInput(message, {"ends_on": message})
    return access_request_file(
        actor=actor,
        group_id=access_request.group_id,
        justification=justification,
        needed_until=checked_end_date(ends_on),
        renewal=True,
        client=client,
    )


# --- Notices --------------------------------------------------------------------------------


def _due_notice(days_left: int, already: int | None) -> int | None:
    """The notice due with `days_left` days to go, unless it (or a later one) was sent."""
    due = [days for days in settings.EXPIRY_NOTICE_DAYS if days_left <= days]
    if not due:
        return None
    notice = min(due)
    return notice if already is None or notice < already else None


def expiry_notices_send(*, today: date | None = None) -> list[AccessRequest]:
    """Mail the member and the group's owners about access ending soon (safe to repeat)."""
    today = today or timezone.localdate()
    horizon = today + timedelta(days=max(settings.EXPIRY_NOTICE_DAYS, default=0))
    ending = AccessRequest.objects.filter(
        status=Status.PROVISIONED,
        expiry_notices_stopped=False,
        needed_until__gte=today,
        needed_until__lte=horizon,
    ).filter(Q(expiry_notified_days__isnull=True) | Q(expiry_notified_days__gt=0))
    notified = []
    for access_request in ending.order_by("needed_until", "id"):
        days_left = (access_request.needed_until - today).days
        notice = _due_notice(days_left, access_request.expiry_notified_days)
        if notice is None:
            continue
        recipients = sorted({access_request.email, *owner_emails(access_request.group_id)})
        # Claimed first: two workers never send the same notice twice.
        claimed = AccessRequest.objects.filter(
            pk=access_request.pk, status=Status.PROVISIONED, expiry_notices_stopped=False
        ).filter(Q(expiry_notified_days__isnull=True) | Q(expiry_notified_days__gt=notice))
        if not claimed.update(expiry_notified_days=notice):
            continue
        notify_access_ending(access_request, recipients, days_left)
        notified.append(access_request)
    return notified
