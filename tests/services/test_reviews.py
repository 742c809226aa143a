"""Reviews: snapshot, decisions, stale invites, completion with per-email failure and retry, CSV."""

from datetime import timedelta

import pytest

from groups_app.models import AuditEntry, Review
from groups_app.services.errors import InvalidInput, NotAllowed
from groups_app.services.membership import group_members_add
from groups_app.services.reviews import (
    invite_ages,
    review_complete,
    review_csv_rows,
    review_decide,
    review_progress,
    review_retry_removals,
    review_start,
)
from sandbox.faults import inject_fault
from sandbox.models import Invite, Membership, UserGroup, WorkspaceUser
from tests.factories import administrator, help_desk
from tests.jobs import run_jobs

pytestmark = pytest.mark.django_db

GROUP = "groupReview00000000000000000001"


@pytest.fixture
def group(db):
    group = UserGroup.objects.create(id=GROUP, name="Reviewed Team")
    users = WorkspaceUser.objects.bulk_create(
        [
            WorkspaceUser(id=f"user{n:023d}", name=f"User {n}", email=f"user{n:03d}@example.com")
            for n in range(230)
        ]
    )
    Membership.objects.bulk_create([Membership(group=group, user=user) for user in users])
    Invite.objects.bulk_create([Invite(group=group, email=f"invite{n}@partner.example") for n in range(3)])
    return group


@pytest.fixture
def ada(db):
    return administrator(username="ada")


def members():
    users = set(Membership.objects.filter(group_id=GROUP).values_list("user__email", flat=True))
    return users | set(Invite.objects.filter(group_id=GROUP).values_list("email", flat=True))


def test_snapshot_covers_every_page_and_matches_member_count(group, ada, settings):
    settings.SEGMENT_PAGE_SIZE = 100  # three pages of users

    review = review_start(actor=ada, group_id=GROUP).review

    assert review.snapshot_count == review.expected_count == 233
    assert not review.count_mismatch
    assert review.items.filter(is_invite=False).count() == 230
    assert set(review.items.filter(is_invite=True).values_list("email", flat=True)) == {
        f"invite{n}@partner.example" for n in range(3)
    }
    assert AuditEntry.objects.get(action="review.start").review == review


def test_snapshot_warns_when_the_count_differs(group, ada, monkeypatch):
    from groups_app.segment import SegmentClient

    real = SegmentClient.get_user_group

    def inflated(self, group_id):
        found = real(self, group_id)
        return type(found)(found.id, found.name, found.member_count + 5, found.permissions)

    monkeypatch.setattr(SegmentClient, "get_user_group", inflated)

    review = review_start(actor=ada, group_id=GROUP).review

    assert review.count_mismatch and review.expected_count == 238


def test_help_desk_may_not_start_reviews(group):
    with pytest.raises(NotAllowed):
        review_start(actor=help_desk(), group_id=GROUP)


def test_completion_removes_exactly_the_marked_entries(group, ada):
    review = review_start(actor=ada, group_id=GROUP).review
    Membership.objects.create(
        group=group, user=WorkspaceUser.objects.create(name="Late", email="late@example.com")
    )
    items = list(review.items.all())
    marked = [items[0], items[-1]]  # a user and an invite
    review_decide(actor=ada, review_id=review.pk, item_ids=[i.pk for i in items], decision="keep")
    review_decide(
        actor=ada, review_id=review.pk, item_ids=[i.pk for i in marked], decision="remove", note="left"
    )

    review_decide(actor=ada, review_id=review.pk, item_ids=[items[1].pk], decision="")
    with pytest.raises(InvalidInput, match="1 of 233 entries are still undecided"):
        review_complete(actor=ada, review_id=review.pk)
    review_decide(actor=ada, review_id=review.pk, item_ids=[items[1].pk], decision="keep")
    review_complete(actor=ada, review_id=review.pk)

    assert members() == {i.email for i in items} - {i.email for i in marked} | {"late@example.com"}
    assert set(review.items.filter(removal="removed").values_list("email", flat=True)) == {
        i.email for i in marked
    }
    review.refresh_from_db()
    assert review.status == "completed" and review.completed_by_username == "ada"
    assert AuditEntry.objects.get(action="review.complete").details["remove"] == [
        items[0].email,
        items[-1].email,
    ]
    assert AuditEntry.objects.filter(action="members.remove", status="succeeded").count() == 1
    with pytest.raises(InvalidInput, match="completed"):
        review_decide(actor=ada, review_id=review.pk, item_ids=[items[2].pk], decision="remove")


def test_incomplete_review_cannot_complete(group, ada):
    review = review_start(actor=ada, group_id=GROUP).review

    with pytest.raises(InvalidInput, match="233 of 233 entries are still undecided"):
        review_complete(actor=ada, review_id=review.pk)
    assert review_progress(review) == (0, 233)


def test_failed_removals_are_marked_per_email_and_can_be_retried(group, ada, settings):
    settings.SEGMENT_MAX_RETRIES = 0
    review = review_start(actor=ada, group_id=GROUP).review
    items = list(review.items.all())
    review_decide(actor=ada, review_id=review.pk, item_ids=[i.pk for i in items[:60]], decision="remove")
    review_decide(actor=ada, review_id=review.pk, item_ids=[i.pk for i in items[60:]], decision="keep")
    inject_fault("remove_users_from_user_group", "503")  # the first batch of 50 fails

    review = review_complete(actor=ada, review_id=review.pk)
    # More than one batch: the worker removes them, a job with one item a batch.
    job = review.removal_job
    assert job.total == 2 and not review.items.exclude(removal="").exists()
    assert members() >= {i.email for i in items[:60]}  # nothing sent in the request
    run_jobs()

    assert list(job.items.values_list("status", flat=True)) == ["failed", "succeeded"]
    failed = set(review.items.filter(removal="failed").values_list("email", flat=True))
    removed = set(review.items.filter(removal="removed").values_list("email", flat=True))
    assert failed == {i.email for i in items[:50]} and removed == {i.email for i in items[50:60]}
    assert "it was not applied" in review.items.filter(removal="failed").first().removal_error
    assert AuditEntry.objects.get(action="members.remove", status="unknown").review == review

    review_retry_removals(actor=ada, review_id=review.pk)

    assert not review.items.filter(removal="failed").exists()
    assert not (members() & {i.email for i in items[:60]})


def test_stale_invites_are_flagged_from_when_group_admin_invited_them(
    group, ada, settings, django_assert_max_num_queries
):
    from groups_app.models import InviteRecord

    settings.STALE_INVITE_DAYS = 14
    group_members_add(
        actor=help_desk(), group_id=GROUP, emails=["fresh@partner.example", "old@partner.example"]
    )
    review = review_start(actor=ada, group_id=GROUP).review
    invited_at = InviteRecord.objects.get(group_id=GROUP, email="old@partner.example").invited_at
    entry = AuditEntry.objects.get(action="members.add")
    assert invited_at >= entry.created_at
    later = invited_at + timedelta(days=20)
    with django_assert_max_num_queries(2):  # one lookup, however many past entries the group has
        invite_ages(review, now=later)

    ages = invite_ages(review, now=later)

    assert (
        ages["old@partner.example"].is_stale and ages["old@partner.example"].label == "stale invite (20 days)"
    )
    assert (
        ages["invite0@partner.example"].label == "age unknown"
        and not ages["invite0@partner.example"].is_stale
    )
    assert (
        invite_ages(review, now=invited_at + timedelta(days=3))["fresh@partner.example"].label
        == "invited 3 days ago"
    )


def test_csv_export(group, ada):
    review = review_start(actor=ada, group_id=GROUP).review
    first = review.items.first()
    review_decide(actor=ada, review_id=review.pk, item_ids=[first.pk], decision="remove", note="=cmd|x")

    lines = "".join(review_csv_rows(review)).splitlines()

    assert lines[0].startswith("email,name,kind,decision,removal,reviewer,note,decided_at")
    assert len(lines) == 234
    assert f"{first.email},User 0,user,removed,,ada,'=cmd|x," in lines[1]
    assert ",undecided," in lines[2]


def test_keeping_the_rest_of_a_page_leaves_decided_entries_alone(group, ada):
    review = review_start(actor=ada, group_id=GROUP).review
    items = list(review.items.all()[:3])
    review_decide(actor=ada, review_id=review.pk, item_ids=[items[0].pk], decision="remove")

    review_decide(
        actor=ada, review_id=review.pk, item_ids=[i.pk for i in items], decision="keep", only_undecided=True
    )

    assert [
        i.decision for i in review.items.filter(pk__in=[i.pk for i in items]).order_by("is_invite", "email")
    ] == ["remove", "keep", "keep"]


def test_a_group_has_one_open_review_and_starting_again_opens_it(group, ada):
    first = review_start(actor=ada, group_id=GROUP)
    second = review_start(actor=ada, group_id=GROUP)

    assert first.is_new and not second.is_new and second.review == first.review
    assert Review.objects.count() == 1
    assert AuditEntry.objects.filter(action="review.start").count() == 1


def test_reviewer_and_due_date_are_assigned_audited_and_reminded_once(group, ada, settings):
    from django.core import mail
    from django.utils import timezone

    from groups_app.services.reviews import review_assign, reviews_remind

    settings.REVIEW_REMINDER_DAYS = 3
    review = review_start(actor=ada, group_id=GROUP).review
    bea = administrator(username="bea", email="bea@example.com")
    today = timezone.localdate()

    with pytest.raises(InvalidInput, match="choose an Administrator"):
        review_assign(actor=ada, review_id=review.pk, reviewer=help_desk(), due_date=None)
    review_assign(actor=ada, review_id=review.pk, reviewer=bea, due_date=today + timedelta(days=10))
    assert reviews_remind(today=today) == []  # not due soon yet

    reminded = reviews_remind(today=today + timedelta(days=8))
    again = reviews_remind(today=today + timedelta(days=9))

    assert reminded == [review] and again == []
    assert mail.outbox[-1].to == ["bea@example.com"] and "is due on" in mail.outbox[-1].body
    assert AuditEntry.objects.get(action="review.assign", status="succeeded").summary.endswith(
        f"to bea, due {today + timedelta(days=10)}"
    )


def test_invites_made_before_the_record_existed_are_taken_from_the_audit_log(db):
    from importlib import import_module

    from django.apps import apps

    from groups_app.models import InviteRecord

    AuditEntry.objects.create(
        actor_username="hana",
        action="members.add",
        group_id=GROUP,
        summary="s",
        status="succeeded",
        details={"invited": ["Old@Partner.example"]},
    )

    import_module("groups_app.migrations.0012_invite_records").record_past_invites(apps, None)

    record = InviteRecord.objects.get()
    assert (record.group_id, record.email) == (GROUP, "old@partner.example")
