"""Hostile or oversized input — NUL characters, huge pastes, over-long ids and text — gets a 4xx
or a message next to its field, never a 500, and changes nothing."""

import pytest
from django.urls import Resolver404, resolve, reverse

from groups_app.models import AuditEntry, ChangeProposal, Review, ReviewItem
from groups_app.services.mirror.sync import sync_workspace
from sandbox.models import Invite, Membership, UserGroup, WorkspaceUser
from tests.factories import administrator, help_desk, viewer

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}


@pytest.fixture
def data_group(db):
    ada = WorkspaceUser.objects.create(name="Ada Lovelace", email="ada@example.com")
    group = UserGroup.objects.create(name="Data")
    Membership.objects.create(group=group, user=ada)
    sync_workspace(trigger="test")
    return group


def html(response):
    return response.content.decode()


def test_a_group_id_of_64_characters_is_routed_and_one_of_65_is_not():
    assert resolve(f"/groups/{'a' * 64}/").url_name == "detail"
    with pytest.raises(Resolver404):
        resolve(f"/groups/{'a' * 65}/")


def test_a_post_to_a_65_character_group_id_is_a_404_and_reaches_no_view(client, db):
    client.force_login(help_desk(username="hana"))

    response = client.post(f"/groups/{'a' * 65}/members/add/", {"emails": "ada@example.com"})

    assert response.status_code == 404
    assert not AuditEntry.objects.exists()


def test_a_nul_in_a_group_id_is_a_404(client, db):
    client.force_login(viewer(username="vera"))

    assert client.get("/groups/ab%00cd/").status_code == 404


def test_a_nul_in_member_search_is_refused_next_to_the_box(client, data_group):
    client.force_login(viewer(username="vera"))
    url = reverse("groups:members-search", args=[data_group.id])

    fragment = client.post(url, {"q": "ada\x00"}, headers=HTMX)
    page = client.post(url, {"q": "a" * 300})

    assert fragment.status_code == 422 and "Null characters are not allowed." in html(fragment)
    assert page.status_code == 422 and "at most 254 characters" in html(page)


def test_a_nul_or_a_bad_id_in_the_reviews_filter_is_a_400_with_a_message(client, db):
    client.force_login(viewer(username="vera"))

    nul = client.get(reverse("groups:reviews"), {"group": "g1\x00"})
    long = client.get(reverse("groups:reviews"), {"group": "a" * 65})

    assert nul.status_code == 400 and "Not a group id" in html(nul)
    assert long.status_code == 400 and "Not a group id" in html(long)


def test_a_nul_in_the_audit_filter_is_a_form_error_not_a_500(client, db):
    client.force_login(viewer(username="vera"))

    response = client.get(reverse("groups:audit"), {"q": "ada\x00", "actor": "x\x00"})

    assert response.status_code == 200
    assert "Null characters are not allowed." in html(response)


def test_a_nul_in_the_request_queue_filter_is_not_a_500(client, db):
    client.force_login(help_desk(username="hana"))

    response = client.get(reverse("groups:requests"), {"group": "g\x00", "requester": "x\x00"})

    assert response.status_code == 200


def test_a_nul_in_a_justification_is_refused_next_to_the_field(client, data_group):
    client.force_login(viewer(username="vera", email="vera@example.com"))

    response = client.post(
        reverse("groups:request-new"), {"group": data_group.id, "justification": "on call\x00"}
    )

    assert response.status_code == 422
    assert "Null characters are not allowed." in html(response)


def test_a_nul_in_a_review_note_is_refused_with_a_message_and_not_saved(client, data_group):
    client.force_login(administrator(username="ada2"))
    review = Review.objects.create(
        group_id=data_group.id,
        group_name="Data",
        started_by_username="ada2",
        expected_count=1,
        snapshot_count=1,
    )
    item = ReviewItem.objects.create(review=review, email="ada@example.com")

    response = client.post(
        reverse("groups:review-decide", args=[review.pk, item.pk]),
        {"decision": "keep", "note": "fine\x00"},
        follow=True,
    )

    item.refresh_from_db()
    assert response.status_code == 200
    assert "Null characters are not allowed." in html(response)
    assert item.decision == "" and "\x00" not in item.note


def test_a_paste_over_the_size_limit_is_refused_next_to_the_field_and_audited(client, data_group, settings):
    client.force_login(help_desk(username="hana"))
    settings.MAX_EMAIL_LIST_BYTES = 64 * 1024
    text = "\n".join(f"person{n:05d}@example.com" for n in range(4000))  # about 100 KiB

    response = client.post(
        reverse("groups:members-add", args=[data_group.id]),
        {"emails": text},
        headers={**HTMX, "HX-Target": "add-members-form"},
    )

    assert response.status_code == 422
    assert "at most 64 KiB of text" in html(response) and "Split it into several changes." in html(response)
    assert 'aria-invalid="true"' in html(response)
    assert AuditEntry.objects.get().status == AuditEntry.Status.REFUSED
    assert not Invite.objects.exists()


def test_too_many_emails_are_refused_by_the_service_next_to_the_field(client, data_group, settings):
    client.force_login(help_desk(username="hana"))
    settings.MAX_EMAILS_PER_CHANGE = 2

    response = client.post(
        reverse("groups:members-add", args=[data_group.id]),
        {"emails": "a@example.org, b@example.org, c@example.org"},
        headers={**HTMX, "HX-Target": "add-members-form"},
    )

    assert response.status_code == 422
    assert "At most 2 emails at once; you entered 3." in html(response)
    assert 'aria-invalid="true"' in html(response)
    assert not Invite.objects.exists()


def test_a_256_kib_paste_is_read_and_counted_by_the_service(client, data_group):
    client.force_login(help_desk(username="hana"))
    text = "\n".join(f'"Person, No. {n}" <person{n:05d}@example.com>' for n in range(5500))
    assert 230 * 1024 < len(text.encode()) <= 256 * 1024

    response = client.post(
        reverse("groups:members-add", args=[data_group.id]),
        {"emails": text},
        headers={**HTMX, "HX-Target": "add-members-form"},
    )

    assert response.status_code == 422
    assert "At most 1000 emails at once; you entered 5500." in html(response)


def test_the_request_body_limit_leaves_room_for_the_largest_paste(settings):
    assert settings.DATA_UPLOAD_MAX_MEMORY_SIZE >= 3 * settings.MAX_EMAIL_LIST_BYTES
    assert settings.DATA_UPLOAD_MAX_MEMORY_SIZE < 2_621_440  # below Django's default of 2.5 MB


def test_a_nul_in_the_group_list_search_or_a_page_link_is_ignored_with_a_note(client, data_group):
    client.force_login(viewer(username="vera"))

    listing = client.get(reverse("groups:list"), {"q": "Da\x00ta"})
    detail = client.get(reverse("groups:detail", args=[data_group.id]), {"users_cursor": "c\x00"})

    assert listing.status_code == 200 and "Ignored an invalid search" in html(listing)
    assert detail.status_code == 200 and "Ignored an invalid users page link" in html(detail)


def test_a_nul_in_a_rejection_reason_is_refused_with_a_message_and_nothing_decided(client, data_group):
    client.force_login(administrator(username="ada2"))
    proposal = ChangeProposal.objects.create(
        kind=ChangeProposal.Kind.ADD,
        group_id=data_group.id,
        group_name="Data",
        permissions=[],
        proposed_by_username="bea",
    )

    response = client.post(
        reverse("groups:proposal-decide", args=[data_group.id, proposal.pk, "reject"]),
        {"reason": "no\x00"},
        follow=True,
    )

    proposal.refresh_from_db()
    assert response.status_code == 200
    assert "Not rejected: Null characters are not allowed." in html(response)
    assert proposal.status == ChangeProposal.Status.PENDING and not AuditEntry.objects.exists()
