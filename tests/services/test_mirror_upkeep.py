"""Upkeep of the mirror after changes made through Group Admin: nothing is re-read when
Segment's answer proves the written-through mirror right, and a group is refreshed once a
minute at most otherwise."""

import pytest
from django.core.cache.backends import locmem

from groups_app.models import InviteRecord, MirrorGroup, MirrorMember
from groups_app.services.membership import group_members_add, group_members_remove
from groups_app.services.mirror.sync import sync_changed, sync_workspace
from groups_app.services.mirror.write_through import REFRESH_SPACING
from groups_app.services.segment_client import get_client
from sandbox.faults import inject_fault
from sandbox.models import Membership, UserGroup, WorkspaceUser
from tests.factories import help_desk
from tests.services.test_mirror import GROUP, workspace  # noqa: F401 - the fixture

pytestmark = pytest.mark.django_db


@pytest.fixture
def hana(db):
    return help_desk(username="hana")


@pytest.fixture
def mirrored(workspace):  # noqa: F811 - the fixture imported above
    """The workspace, synced; Carol is a user the mirror knows (from another group)."""
    other = UserGroup.objects.create(name="Analysts")
    Membership.objects.create(group=other, user=WorkspaceUser.objects.get(email="carol@example.com"))
    sync_workspace(trigger="baseline")
    return workspace


def refreshes(enqueued):
    return [args for name, args, _ in enqueued() if name == "refresh_group"]


def test_an_addition_segment_confirms_is_not_re_read(mirrored, hana, enqueued):
    group_members_add(actor=hana, group_id=GROUP, emails=["carol@example.com"])

    assert refreshes(enqueued) == []
    carol = MirrorMember.objects.get(group_id=GROUP, email="carol@example.com")
    assert (carol.kind, carol.name) == ("user", "Carol")  # her name, from the other group
    group = MirrorGroup.objects.get(group_id=GROUP)
    assert (group.member_count, group.user_count, group.invite_count) == (4, 3, 1)


def test_after_a_confirmed_addition_the_quick_pass_reads_nothing_of_the_group(mirrored, hana):
    group_members_add(actor=hana, group_id=GROUP, emails=["carol@example.com"])

    run = sync_changed(trigger="test")

    assert run.groups_read == run.rotated_count  # only the rotation's share: nothing changed
    assert run.observed_count == 0


def test_an_addition_segment_counts_differently_is_re_read(mirrored, hana, enqueued):
    get_client().add_users_to_user_group(GROUP, ["outsider@example.org"])  # meanwhile, elsewhere

    group_members_add(actor=hana, group_id=GROUP, emails=["carol@example.com"])

    assert refreshes(enqueued) == [(GROUP,)]


def test_an_address_the_mirror_never_saw_is_told_apart_at_once_and_needs_no_refresh(mirrored, hana, enqueued):
    group_members_add(actor=hana, group_id=GROUP, emails=["new@example.org"])

    assert refreshes(enqueued) == []
    assert InviteRecord.objects.filter(group_id=GROUP, email="new@example.org").exists()
    assert MirrorMember.objects.filter(group_id=GROUP, email="new@example.org", kind="invite").exists()


def test_an_addition_whose_invites_could_not_be_read_is_verified_by_a_refresh(mirrored, hana, enqueued):
    inject_fault("list_invites_from_user_group", "503", times=5)

    changed = group_members_add(actor=hana, group_id=GROUP, emails=["new@example.org"])

    assert changed.entry.details["split_unknown"] is True
    ((name, args, kwargs),) = enqueued()
    assert (name, args, kwargs["verify_emails"]) == ("refresh_group", (GROUP,), ["new@example.org"])


def test_a_group_is_refreshed_once_a_minute_at_most(mirrored, hana, enqueued, monkeypatch, settings):
    # The minute passes on the local-memory cache's clock, which the test can move (Redis keeps
    # its own time).
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    group_members_remove(actor=hana, group_id=GROUP, emails=["bob@example.com"])
    group_members_remove(actor=hana, group_id=GROUP, emails=["alice@example.com"])

    assert refreshes(enqueued) == [(GROUP,)]
    assert not MirrorMember.objects.filter(group_id=GROUP, email="alice@example.com").exists()

    later = locmem.time.time() + REFRESH_SPACING + 1
    monkeypatch.setattr(locmem.time, "time", lambda: later)
    group_members_remove(actor=hana, group_id=GROUP, emails=["newbie@example.com"])

    assert refreshes(enqueued) == [(GROUP,), (GROUP,)]


def test_a_refresh_skipped_within_the_minute_is_caught_by_the_next_quick_pass(mirrored, hana):
    group_members_remove(actor=hana, group_id=GROUP, emails=["bob@example.com"])
    group_members_remove(actor=hana, group_id=GROUP, emails=["alice@example.com"])

    run = sync_changed(trigger="test")  # no refresh ran: the count differs from the mirror's

    group = MirrorGroup.objects.get(group_id=GROUP)
    assert group.sync_id == run.pk and group.member_count == 1
    assert run.observed_count == 0  # both removals are Group Admin's own
