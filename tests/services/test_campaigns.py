"""Review campaigns: which groups, one review per group assigned to its owners or a named reviewer,
opened by the worker, progress with overdue and totals, and the evidence CSV."""

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from groups_app.models import AuditEntry, GroupOwner, Review, ReviewCampaign
from groups_app.services.errors import InvalidInput, NotAllowed
from groups_app.services.mirror.sync import sync_workspace
from groups_app.services.reviews import (
    campaign_csv_rows,
    campaign_open_reviews,
    campaign_progress,
    campaign_start,
    review_decide,
    review_start,
)
from sandbox.models import GroupPermission, Membership, Role, UserGroup, WorkspaceUser
from tests.factories import administrator, help_desk, viewer

pytestmark = pytest.mark.django_db

READERS = "groupReaders0000000000000001"
OWNERS = "groupOwners00000000000000001"
EMPTY = "groupEmpty000000000000000001"


@pytest.fixture
def workspace(db):
    owner_role = Role.objects.create(id="roleOwner00000000000000000001", name="Workspace Owner")
    readers = UserGroup.objects.create(id=READERS, name="Readers")
    owners = UserGroup.objects.create(id=OWNERS, name="Owners")
    UserGroup.objects.create(id=EMPTY, name="Empty")
    GroupPermission.objects.create(
        group=owners, role=owner_role, resources=[{"id": "ws1", "type": "WORKSPACE"}]
    )
    alice = WorkspaceUser.objects.create(name="Alice", email="alice@example.com")
    Membership.objects.create(group=readers, user=alice)
    Membership.objects.create(group=owners, user=alice)
    sync_workspace(trigger="test")


@pytest.fixture
def ada(db):
    return administrator(username="ada", email="ada@example.com")


@pytest.fixture
def olga(db):
    user = viewer(username="olga", email="olga@example.com")
    GroupOwner.objects.create(
        group_id=READERS, group_name="Readers", user=user, email=user.email, identity=user.email
    )
    return user


def due():
    return timezone.localdate() + timedelta(days=14)


def test_a_campaign_over_the_groups_with_owners_opens_one_review_assigned_to_the_owner(
    workspace, ada, olga, enqueued, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        campaign = campaign_start(actor=ada, name="Q1", scope="owned", due_date=due())

    assert campaign.group_ids == [READERS]
    assert [name for name, *_ in enqueued()] == ["open_campaign_reviews"]
    campaign_open_reviews(campaign_id=campaign.pk)

    review = Review.objects.get(campaign=campaign)
    assert (review.group_id, review.reviewer, review.due_date) == (READERS, olga, due())
    assert [m.to for m in mail.outbox] == [["olga@example.com"]]
    assert AuditEntry.objects.get(action=AuditEntry.Action.CAMPAIGN_START).details["group_count"] == 1


def test_a_campaign_over_privileged_groups_with_a_named_reviewer(workspace, ada):
    bert = administrator(username="bert", email="bert@example.com")

    campaign = campaign_start(actor=ada, name="Owners", scope="privileged", due_date=due(), reviewer=bert)
    campaign_open_reviews(campaign_id=campaign.pk)

    assert campaign.group_ids == [OWNERS]
    assert Review.objects.get(campaign=campaign).reviewer == bert


def test_an_open_review_of_a_group_is_reused_and_opening_twice_adds_nothing(workspace, ada):
    existing = review_start(actor=ada, group_id=READERS).review
    campaign = campaign_start(
        actor=ada, name="Chosen", scope="chosen", group_ids=[READERS, EMPTY], due_date=due()
    )

    campaign_open_reviews(campaign_id=campaign.pk)
    campaign_open_reviews(campaign_id=campaign.pk)

    assert Review.objects.filter(campaign=campaign).count() == 2
    assert Review.objects.get(group_id=READERS).pk == existing.pk
    assert ReviewCampaign.objects.get().status == ReviewCampaign.Status.OPEN


def test_progress_counts_decisions_completions_and_overdue_reviews(workspace, ada, olga):
    campaign = campaign_start(
        actor=ada, name="Q1", scope="chosen", group_ids=[READERS, OWNERS], due_date=due()
    )
    campaign_open_reviews(campaign_id=campaign.pk)
    readers = Review.objects.get(campaign=campaign, group_id=READERS)
    review_decide(
        actor=olga,
        review_id=readers.pk,
        item_ids=list(readers.items.values_list("pk", flat=True)),
        decision="keep",
    )

    progress = campaign_progress(campaign, today=due() + timedelta(days=1))

    assert (progress.decided, progress.total) == (1, 2)
    assert progress.overdue == 2 and progress.completed == 0
    assert [g.state for g in progress.groups] == ["overdue", "overdue"]
    assert campaign_progress(campaign).overdue == 0


def test_the_evidence_csv_has_every_entry_of_every_review(workspace, ada):
    campaign = campaign_start(
        actor=ada, name="Q1", scope="chosen", group_ids=[READERS, OWNERS], due_date=due()
    )
    campaign_open_reviews(campaign_id=campaign.pk)

    lines = "".join(campaign_csv_rows(campaign)).splitlines()

    assert lines[0].startswith("campaign,group,group_id,reviewer")
    assert sorted(line.split(",")[1] for line in lines[1:]) == ["Owners", "Readers"]


def test_only_administrators_start_campaigns_and_bad_input_stays_by_its_field(workspace, ada):
    with pytest.raises(NotAllowed):
        campaign_start(
            actor=help_desk(username="hana", email="hana@example.com"),
            name="x",
            scope="owned",
            due_date=due(),
        )
    with pytest.raises(InvalidInput) as refused:
        campaign_start(
            actor=ada, name=" ", scope="chosen", group_ids=["groupNope"], due_date=timezone.localdate()
        )

    assert set(refused.value.field_errors) == {"name", "due_date"}
    with pytest.raises(InvalidInput) as refused:
        campaign_start(actor=ada, name="x", scope="chosen", group_ids=["groupNope"], due_date=due())
    assert set(refused.value.field_errors) == {"groups"}
    assert not ReviewCampaign.objects.exists()


def test_a_group_whose_review_cannot_open_is_recorded_and_the_others_still_open(workspace, ada):
    campaign = campaign_start(
        actor=ada, name="Q1", scope="chosen", group_ids=[READERS, OWNERS], due_date=due()
    )
    UserGroup.objects.filter(id=OWNERS).delete()

    campaign_open_reviews(campaign_id=campaign.pk)

    campaign.refresh_from_db()
    assert list(campaign.problems) == [OWNERS]
    assert [g.state for g in campaign_progress(campaign).groups] == ["could not open", "open"]


def test_a_campaign_name_with_a_nul_byte_is_refused_by_its_field(workspace, ada):
    with pytest.raises(InvalidInput) as refused:
        campaign_start(actor=ada, name="Q1\x00", scope="owned", due_date=due())

    assert set(refused.value.field_errors) == {"name"}
