"""Campaign pages: starting one (Administrators), its progress page, the evidence CSV and print."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from groups_app.models import GroupOwner, ReviewCampaign
from groups_app.services.mirror.sync import sync_workspace
from groups_app.services.reviews import campaign_open_reviews
from sandbox.models import Membership, UserGroup, WorkspaceUser
from tests.factories import administrator, help_desk, viewer

pytestmark = pytest.mark.django_db

READERS = "groupReaders0000000000000001"


def html(response):
    return response.content.decode()


@pytest.fixture
def readers(db):
    group = UserGroup.objects.create(id=READERS, name="Readers")
    Membership.objects.create(
        group=group, user=WorkspaceUser.objects.create(name="Alice", email="alice@example.com")
    )
    sync_workspace(trigger="test")
    olga = viewer(username="olga", email="olga@example.com")
    GroupOwner.objects.create(
        group_id=READERS, group_name="Readers", user=olga, email=olga.email, identity=olga.email
    )
    return group


def due():
    return f"{timezone.localdate() + timedelta(days=14):%Y-%m-%d}"


def test_an_administrator_starts_a_campaign_and_follows_it(client, readers):
    client.force_login(administrator(username="ada", email="ada@example.com"))

    response = client.post(
        reverse("groups:campaign-new"),
        {"name": "Q1 review", "scope": "chosen", "groups": [READERS], "due_date": due()},
    )
    campaign = ReviewCampaign.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse(
        "groups:campaign", args=[campaign.pk]
    )

    opening = client.get(reverse("groups:campaign", args=[campaign.pk]))
    assert 'hx-trigger="every 3s"' in html(opening) and "1 still opening" in html(opening)

    campaign_open_reviews(campaign_id=campaign.pk)
    page = client.get(
        reverse("groups:campaign", args=[campaign.pk]),
        headers={"HX-Request": "true", "HX-Target": "campaign-progress"},
    )
    export = client.get(reverse("groups:campaign-export", args=[campaign.pk]))
    printed = client.get(reverse("groups:campaign-print", args=[campaign.pk]))

    assert "<html" not in html(page) and "0 of 1 group reviewed" in html(page) and "olga" in html(page)
    assert 'hx-trigger="every 3s"' not in html(page)
    assert b"alice@example.com" in b"".join(export.streaming_content)
    assert "Access review evidence: Q1 review" in html(printed) and "alice@example.com" in html(printed)


def test_choosing_groups_without_any_is_refused_by_the_field(client, readers):
    client.force_login(administrator(username="ada", email="ada@example.com"))

    response = client.post(
        reverse("groups:campaign-new"), {"name": "Q1", "scope": "chosen", "due_date": due()}
    )

    assert response.status_code == 422 and "Choose at least one group." in html(response)
    assert not ReviewCampaign.objects.exists()


def test_help_desk_cannot_start_a_campaign(client, readers):
    client.force_login(help_desk(username="hana", email="hana@example.com"))

    assert client.get(reverse("groups:campaign-new")).status_code == 403
    assert (
        client.post(
            reverse("groups:campaign-new"), {"name": "Q1", "scope": "owned", "due_date": due()}
        ).status_code
        == 403
    )
    assert not ReviewCampaign.objects.exists()


def test_the_campaign_pages_list_and_offer_starting_to_administrators(client, readers):
    client.force_login(administrator(username="ada", email="ada@example.com"))

    form = client.get(reverse("groups:campaign-new"))
    listing = client.get(reverse("groups:campaigns"))

    assert form.status_code == 200 and "Every group with owners" in html(form) and "Readers" in html(form)
    assert listing.status_code == 200 and "No campaign yet." in html(listing)
    assert reverse("groups:campaign-new") in html(listing)
