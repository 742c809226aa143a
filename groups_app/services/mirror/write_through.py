"""Confirmed changes written to the mirror at once. When Segment's answer (the group's member
count) then agrees with the mirror, nothing is re-read; otherwise the worker refreshes the
group, once a minute at most (`refresh_soon`), and the quick passes catch the rest."""

from __future__ import annotations

from collections.abc import Iterable

from django.core.cache import cache
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from groups_app.models import InviteRecord, MirrorGroup, MirrorMember
from groups_app.services import queue
from groups_app.services.mirror.people import people_recount

# A group is re-read after a change once in this many seconds at most.
REFRESH_SPACING = 60


def note_members_added(group_id: str, *, users: Iterable[str], invites: Iterable[str]) -> None:
    """Write a confirmed addition through to a mirrored group at once (the refresh the change
    enqueued then reads the truth: names, and whether each email is a user or an invite)."""
    if not MirrorGroup.objects.filter(group_id=group_id).exists():
        return
    users = [e.lower() for e in users]
    # A user the mirror knows from another group keeps the id and name read there.
    known = {
        email: (user_id, name)
        for email, user_id, name in MirrorMember.objects.filter(
            email__in=users, kind=MirrorMember.Kind.USER
        ).values_list("email", "user_id", "name")
    }
    rows = [
        MirrorMember(
            group_id=group_id,
            email=email,
            kind=MirrorMember.Kind.USER,
            user_id=known.get(email, ("", ""))[0],
            name=known.get(email, ("", ""))[1],
            name_key=known.get(email, ("", ""))[1].casefold(),
        )
        for email in users
    ]
    rows += [MirrorMember(group_id=group_id, email=e.lower(), kind=MirrorMember.Kind.INVITE) for e in invites]
    MirrorMember.objects.bulk_create(rows, ignore_conflicts=True)
    people_recount(row.email for row in rows)


def note_members_removed(group_id: str, emails: Iterable[str]) -> None:
    """Write a confirmed removal through to the mirror at once."""
    emails = [e.lower() for e in emails]
    MirrorMember.objects.filter(group_id=group_id, email__in=emails).delete()
    people_recount(emails)


def record_invites(group_id: str, emails: tuple[str, ...] | list[str]) -> None:
    """Remember when emails were first invited to a group (reviews show invite ages from it)."""
    now = timezone.now()
    InviteRecord.objects.bulk_create(
        [InviteRecord(group_id=group_id, email=email, invited_at=now) for email in emails],
        ignore_conflicts=True,
    )


def record_verified_invites(group_id: str, emails: list[str]) -> None:
    """After a refresh: remember the invite time of the added emails that are pending invites."""
    invited = MirrorMember.objects.filter(
        group_id=group_id, email__in=[e.lower() for e in emails], kind=MirrorMember.Kind.INVITE
    ).values_list("email", flat=True)
    record_invites(group_id, list(invited))


def confirmed_by_answer(group_id: str, member_count: int) -> bool:
    """Whether Segment's member count after a change agrees with the mirror, the change written
    through; if so the mirrored group's counts are brought level, and no re-reading is needed."""
    with transaction.atomic():
        group = MirrorGroup.objects.select_for_update().filter(group_id=group_id).first()
        if group is None:
            return False
        counts = MirrorMember.objects.filter(group_id=group_id).aggregate(
            users=Count("pk", filter=Q(kind=MirrorMember.Kind.USER)),
            invites=Count("pk", filter=Q(kind=MirrorMember.Kind.INVITE)),
        )
        if counts["users"] + counts["invites"] != member_count:
            return False
        group.member_count, group.user_count, group.invite_count = (
            member_count,
            counts["users"],
            counts["invites"],
        )
        group.save(update_fields=["member_count", "user_count", "invite_count"])
    return True


def refresh_soon(group_id: str, *, trigger: str, verify_emails: list[str]) -> bool:
    """Have the worker re-read a group after a change, unless it was asked to in the last
    REFRESH_SPACING seconds and there is no email to verify (that refresh, the write-through
    and the next quick pass cover this change). True when a refresh was enqueued."""
    asked = cache.add(f"mirror:refresh-asked:{group_id}", True, timeout=REFRESH_SPACING)
    if not asked and not verify_emails:
        return False
    queue.enqueue_quietly("refresh_group", group_id, trigger=trigger, verify_emails=verify_emails)
    return True
