"""The catalogue pages: "What can I request?", the group's card on the request form and request
page, and writing what a group is for."""

import pytest
from django.urls import reverse

from groups_app.models import GroupAbout
from groups_app.services.approvals.access_requests import access_request_file
from groups_app.services.mirror.sync import sync_workspace
from sandbox.models import GroupPermission, Role, UserGroup
from tests.factories import administrator, viewer

pytestmark = pytest.mark.django_db

OWNERS = "groupOwners00000000000000001"


def html(response):
    return response.content.decode()


@pytest.fixture
def group(db):
    role = Role.objects.create(id="roleOwner00000000000000000001", name="Workspace Owner")
    group = UserGroup.objects.create(id=OWNERS, name="On-call <Owners>")
    GroupPermission.objects.create(group=group, role=role, resources=[{"id": "ws1", "type": "WORKSPACE"}])
    sync_workspace(trigger="test")
    GroupAbout.objects.create(group_id=OWNERS, description="Full control", purpose="On-call engineers")
    return group


def test_anyone_signed_in_sees_the_catalogue_with_a_request_button(client, group):
    client.force_login(viewer(username="vera", email="vera@example.com"))

    response = client.get(reverse("groups:catalogue"))

    page = html(response)
    assert "On-call &lt;Owners&gt;" in page and "<Owners>" not in page
    assert "Full control" in page and "On-call engineers" in page and "Workspace Owner" in page
    assert ">Privileged</span>" in page
    assert f'href="{reverse("groups:request-new")}?group={OWNERS}"' in page


def test_the_request_form_and_the_request_page_show_the_groups_card(client, group):
    vera = viewer(username="vera", email="vera@example.com")
    client.force_login(vera)

    form = client.get(reverse("groups:request-new"), {"group": OWNERS})
    filed = access_request_file(actor=vera, group_id=OWNERS, justification="x").filed[0]
    detail = client.get(reverse("groups:request", args=[filed.pk]))

    assert "Full control" in html(form)
    assert "Full control" in html(detail)


def test_an_administrator_writes_what_the_group_is_for_and_a_viewer_cannot(client, group):
    client.force_login(viewer(username="vera", email="vera@example.com"))
    assert client.get(reverse("groups:catalogue-about", args=[OWNERS])).status_code == 403
    assert (
        client.post(
            reverse("groups:catalogue-about", args=[OWNERS]), {"description": "x", "purpose": ""}
        ).status_code
        == 403
    )

    client.force_login(administrator(username="ada", email="ada@example.com"))
    response = client.post(
        reverse("groups:catalogue-about", args=[OWNERS]),
        {"description": "Everything", "purpose": "SREs"},
        follow=True,
    )

    assert "Saved what On-call &lt;Owners&gt; is for." in html(response)
    assert GroupAbout.objects.get(group_id=OWNERS).description == "Everything"


def test_the_about_form_shows_what_is_written_and_the_groups_card(client, group):
    client.force_login(administrator(username="ada", email="ada@example.com"))

    response = client.get(reverse("groups:catalogue-about", args=[OWNERS]))

    assert response.status_code == 200
    assert "Full control</textarea>" in html(response) and "Workspace Owner" in html(response)
