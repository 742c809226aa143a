"""Confirmed changes written to the mirror at once, before the refresh the change enqueued
reads the truth (names, and whether each email is a user or an invite)."""

from __future__ import annotations

from collections.abc import Iterable

from django.utils import timezone

from groups_app.models import InviteRecord, MirrorGroup, MirrorMember


def note_members_added(group_id: str, *, users: Iterable[str], invites: Iterable[str]) -> None:
    """Write a confirmed addition through to a mirrored group at once (the refresh the change
    enqueued then reads the truth: names, and whether each email is a user or an invite)."""
    if not MirrorGroup.objects.filter(group_id=group_id).exists():
        return
    rows = [(e, MirrorMember.Kind.USER) for e in users] + [(e, MirrorMember.Kind.INVITE) for e in invites]
    MirrorMember.objects.bulk_create(
        [MirrorMember(group_id=group_id, email=email.lower(), kind=kind) for email, kind in rows],
        ignore_conflicts=True,
    )


def note_members_removed(group_id: str, emails: Iterable[str]) -> None:
    """Write a confirmed removal through to the mirror at once."""
    MirrorMember.objects.filter(group_id=group_id, email__in=[e.lower() for e in emails]).delete()


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
