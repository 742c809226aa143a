"""The group list and group detail pages: full pages, htmx fragments, parameters and failures."""

import re
from io import StringIO

import pytest
from django.test import Client
from django.urls import reverse

from groups_app.models import MirrorRole, PersonKey
from groups_app.segment import SegmentClient
from groups_app.services.mirror.sync import sync_changed, sync_workspace
from groups_app.services.segment_client import SANDBOX_BASE_URL
from sandbox.faults import inject_fault
from sandbox.models import Invite, UserGroup
from sandbox.transport import SandboxAdapter

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}
LIST = reverse("groups:list")


def detail_url(group):
    return reverse("groups:detail", args=[group.id])


def html(response):
    return response.content.decode()


# -- group list ----------------------------------------------------------------------------


def test_list_page_shows_every_group_with_counts_and_roles(viewer_client, demo_workspace):
    response = viewer_client.get(LIST)

    page = html(response)
    assert response.status_code == 200
    assert "<html" in page
    assert "4 groups" in page
    big = demo_workspace["All Employees"]
    assert f'href="/groups/{big.id}/"' in page
    assert "Workspace Member" in page  # the role All Employees grants
    assert "as of " in page
    assert "HX-Request" in response["Vary"]


def test_list_fragment_for_htmx_has_only_the_table(viewer_client, demo_workspace):
    response = viewer_client.get(LIST, {"q": "employ"}, headers={**HTMX, "HX-Target": "groups-table"})

    page = html(response)
    assert "<html" not in page
    assert page.strip().startswith('<section id="groups-table"')
    assert "1 group matching “employ”" in page


def test_list_search_is_case_insensitive_substring(viewer_client, demo_workspace):
    page = html(viewer_client.get(LIST, {"q": "EMPLOY"}))

    assert "All Employees" in page
    assert "New Hires" not in page


def test_search_as_you_type_replaces_the_address_and_sorting_pushes_it(viewer_client, demo_workspace):
    page = html(viewer_client.get(LIST))

    search_form = page.split('id="group-search"')[1].split(">")[0]
    assert 'hx-replace-url="true"' in search_form and "hx-push-url" not in search_form
    sort_link = page.split('id="sort-name"')[1].split(">")[0]
    assert 'hx-push-url="true"' in sort_link
    # The count is what is announced; the table is not a live region.
    assert "aria-live" not in page.split('id="groups-table"')[1].split(">")[0]
    assert "<span data-live-count>4 groups</span>" in page


def test_empty_search_says_so_and_offers_to_clear(viewer_client, demo_workspace):
    page = html(viewer_client.get(LIST, {"q": "no such team"}))

    assert "No group name contains “no such team”" in page
    assert "Clear the search" in page


def test_list_sorts_by_member_count_both_ways(viewer_client, demo_workspace):
    ascending = html(viewer_client.get(LIST, {"sort": "members", "dir": "asc"}))
    descending = html(viewer_client.get(LIST, {"sort": "members", "dir": "desc"}))

    assert ascending.index("New Hires") < ascending.index("All Employees")
    assert descending.index("All Employees") < descending.index("New Hires")
    assert 'aria-sort="descending"' in descending


@pytest.mark.parametrize(
    "query",
    [{"size": "7"}, {"size": "lots"}, {"page": "abc"}, {"page": "-3"}, {"sort": "evil"}, {"dir": "sideways"}],
)
def test_bad_list_parameters_fall_back_to_defaults_with_a_note(viewer_client, demo_workspace, query):
    response = viewer_client.get(LIST, query)

    assert response.status_code == 200
    assert "Ignored an invalid" in html(response)
    assert "4 groups" in html(response)


def test_list_pages_with_page_size(viewer_client, db):
    from django.core.management import call_command

    call_command("seed_sandbox", "--groups", "30", "--users", "450", stdout=StringIO())
    sync_workspace(trigger="test")

    first = html(viewer_client.get(LIST, {"size": "25"}))
    second = html(viewer_client.get(LIST, {"size": "25", "page": "2"}))

    assert "1–25 of 30 · page 1 of 2" in first
    assert "26–30 of 30 · page 2 of 2" in second


def test_refresh_asks_the_worker_for_a_sync_and_the_list_shows_it_when_done(
    viewer_client, demo_workspace, enqueued
):
    UserGroup.objects.create(name="Created elsewhere")
    assert "Created elsewhere" not in html(viewer_client.get(LIST))  # the mirror does not have it yet

    plain = viewer_client.post(LIST + "?q=created")
    fragment = viewer_client.post(LIST + "?q=created", headers={**HTMX, "HX-Target": "groups-table"})

    assert plain.status_code == 302 and plain["Location"] == LIST + "?q=created"
    assert [name for name, *_ in enqueued()] == ["sync_changed"]  # once, however often it is pressed
    assert "updating now" in html(fragment) and 'hx-trigger="every 3s"' in html(fragment)
    assert "<html" not in html(fragment)

    sync_changed(trigger="the worker")  # the task the button enqueued

    after = html(viewer_client.get(LIST, {"q": "created"}, headers={**HTMX, "HX-Target": "groups-table"}))
    assert "Created elsewhere" in after and "updating now" not in after


def test_list_makes_no_upstream_call_and_survives_segment_being_down(viewer_client, demo_workspace, settings):
    settings.SEGMENT_MAX_RETRIES = 0
    for operation in ("list_user_groups", "list_roles", "get_user_group"):
        inject_fault(operation, "503")

    response = viewer_client.get(LIST)

    assert response.status_code == 200
    assert "4 groups" in html(response) and "Workspace as of" in html(response)


def test_an_empty_mirror_starts_a_sync_and_says_so(viewer_client, db, enqueued):
    response = viewer_client.get(LIST)

    assert response.status_code == 200
    assert "reading the workspace from Segment for the first time" in html(response)
    assert [name for name, *_ in enqueued()] == ["sync_changed"]


def test_refresh_requires_csrf(demo_workspace):
    from tests.factories import viewer

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(viewer())

    assert strict.post(LIST).status_code == 403


def test_group_names_are_escaped(viewer_client, demo_workspace):
    page = html(viewer_client.get(LIST, {"q": "zürich"}))

    assert "R&amp;D &lt;Zürich&gt; &quot;Ångström&quot; Team" in page
    assert "<Zürich>" not in page


def test_user_without_role_sees_no_groups(client, demo_workspace):
    from tests.factories import UserFactory

    client.force_login(UserFactory())

    response = client.get(LIST)

    assert response.status_code == 403
    assert "has no role yet" in html(response)
    assert "All Employees" not in html(response)


@pytest.mark.parametrize(
    "fixture", ["viewer_client", "help_desk_client", "admin_user_client", "admin_client"]
)
def test_every_role_can_browse(request, demo_workspace, fixture):
    client = request.getfixturevalue(fixture)
    group = demo_workspace["All Employees"]

    assert client.get(LIST).status_code == 200
    assert client.get(detail_url(group)).status_code == 200


# -- group detail ----------------------------------------------------------------------------


def test_detail_page_shows_header_permissions_users_and_invites(viewer_client, demo_workspace):
    group = demo_workspace["All Employees"]

    page = html(viewer_client.get(detail_url(group)))

    assert f'<code id="group-id">{group.id}</code>' in page
    assert f"{group.memberships.count()}</span> users" in page and "30 pending invites" in page
    assert "Workspace Member" in page and "WORKSPACE" in page
    assert f"1–25 of {group.memberships.count()}" in page
    assert "1–25 of 30" in page
    assert 'aria-current="page">All Employees' in page


def test_detail_of_an_empty_group(viewer_client, demo_workspace):
    group = next(g for name, g in demo_workspace.items() if name.startswith("New Hires"))

    page = html(viewer_client.get(detail_url(group)))

    assert "No permissions" in page
    assert "No workspace users in this group." in page
    assert "No pending invites." in page


def test_users_fragment_pages_without_touching_invites(viewer_client, demo_workspace):
    group = demo_workspace["All Employees"]
    total = group.memberships.count()
    first = viewer_client.get(detail_url(group), {"users_size": "10", "live": "1"})
    next_link = html(first).split('rel="next" href="')[1].split('"')[0].replace("&amp;", "&")

    fragment = viewer_client.get(detail_url(group) + next_link, headers={**HTMX, "HX-Target": "users-panel"})

    page = html(fragment)
    assert "<html" not in page
    assert page.strip().startswith('<section id="users-panel"')
    assert f"11–20 of {total}" in page
    assert "invites-panel" not in page
    assert "users_cursor=" in next_link and "users_start=11" in next_link


def test_full_page_renders_the_requested_pages_of_both_tables(viewer_client, demo_workspace):
    group = demo_workspace["All Employees"]
    first = html(
        viewer_client.get(detail_url(group), {"users_size": "50", "invites_size": "10", "live": "1"})
    )
    invites_next = first.split('aria-label="Invites pages"')[1].split('rel="next" href="')[1].split('"')[0]

    page = html(viewer_client.get(detail_url(group) + invites_next.replace("&amp;", "&")))

    assert f"1–50 of {group.memberships.count()}" in page  # users stay on their first page
    assert "11–20 of 30" in page


def test_invites_fragment(viewer_client, demo_workspace):
    group = demo_workspace["All Employees"]

    response = viewer_client.get(
        detail_url(group), {"invites_size": "25"}, headers={**HTMX, "HX-Target": "invites-panel"}
    )

    assert html(response).strip().startswith('<section id="invites-panel"')
    assert "1–25 of 30" in html(response)


@pytest.mark.parametrize("query", [{"users_size": "7"}, {"invites_size": "x"}, {"users_start": "0"}])
def test_bad_page_size_falls_back_with_a_note(viewer_client, demo_workspace, query):
    response = viewer_client.get(detail_url(demo_workspace["All Employees"]), query)

    assert response.status_code == 200
    assert "Ignored an invalid" in html(response)


@pytest.mark.parametrize("headers", [{}, {**HTMX, "HX-Target": "users-panel"}])
def test_stale_cursor_shows_the_first_page_with_a_note(viewer_client, demo_workspace, headers):
    group = demo_workspace["All Employees"]

    response = viewer_client.get(
        detail_url(group), {"users_cursor": "forged", "users_start": "41"}, headers=headers
    )

    assert response.status_code == 200
    assert "That page link is no longer valid" in html(response)
    assert "1–25 of" in html(response)


def test_unknown_group_is_a_404_page_with_a_way_back(viewer_client, demo_workspace):
    response = viewer_client.get(reverse("groups:detail", args=["doesNotExist123"]))

    assert response.status_code == 404
    assert "That group does not exist in Segment. It may have been deleted." in html(response)
    assert f'href="{LIST}"' in html(response)


def test_unknown_group_in_an_htmx_request_renders_inside_the_target(viewer_client, demo_workspace):
    response = viewer_client.get(
        reverse("groups:detail", args=["doesNotExist123"]), headers={**HTMX, "HX-Target": "users-panel"}
    )

    assert response.status_code == 404
    assert html(response).strip().startswith('<section id="users-panel"')
    assert "does not exist" in html(response)


def test_group_id_that_is_not_an_id_is_a_plain_404(viewer_client):
    assert viewer_client.get("/groups/..%2Froles/").status_code == 404


# -- upstream failures ----------------------------------------------------------------------------


@pytest.fixture
def wrong_token(monkeypatch):
    client = SegmentClient(SANDBOX_BASE_URL, "revoked-token")
    client.session.mount("http://sandbox.internal/", SandboxAdapter())
    client.concurrent_requests = False
    monkeypatch.setattr("groups_app.services.groups.get_client", lambda: client)


@pytest.mark.usefixtures("wrong_token")
def test_rejected_token_says_to_check_it(viewer_client, demo_workspace):
    response = viewer_client.get(detail_url(demo_workspace["All Employees"]), {"live": "1"})

    assert response.status_code == 502
    assert "Segment rejected the API token — check SEGMENT_API_TOKEN and its scopes." in html(response)
    assert "revoked-token" not in html(response)


@pytest.mark.parametrize(
    ("operation", "url", "status", "message"),
    [
        ("get_user_group", "detail", 429, "Segment is rate-limiting requests; try again at "),
        ("get_user_group", "detail", 503, "Segment is not responding."),
    ],
)
def test_upstream_failures_become_banners(
    viewer_client, demo_workspace, settings, operation, url, status, message
):
    settings.SEGMENT_MAX_RETRIES = 0
    inject_fault(operation, str(status), times=1)
    target = LIST if url == "list" else detail_url(demo_workspace["All Employees"]) + "?live=1"

    response = viewer_client.get(target)

    assert response.status_code == status
    assert message in html(response)
    assert "Try again" in html(response)
    if status == 429:
        assert response["Retry-After"] == "1"


@pytest.mark.parametrize(
    ("operation", "part"),
    [("list_users_from_user_group", "users"), ("list_invites_from_user_group", "invites")],
)
def test_a_failed_table_read_still_shows_the_rest_of_the_detail_page(
    viewer_client, demo_workspace, settings, operation, part
):
    settings.SEGMENT_MAX_RETRIES = 0
    inject_fault(operation, "503")
    group = demo_workspace["All Employees"]

    response = viewer_client.get(detail_url(group), {"live": "1"})

    page = html(response)
    assert response.status_code == 200
    assert f"The {part} could not be read: Segment is not responding." in page
    other = "invites" if part == "users" else "users"
    assert f"The {other} could not be read" not in page
    assert group.name in page and "Permissions" in page


def test_role_names_come_from_the_mirror_even_when_segment_cannot_list_roles(
    viewer_client, demo_workspace, settings
):
    settings.SEGMENT_MAX_RETRIES = 0
    inject_fault("list_roles", "503")

    response = viewer_client.get(detail_url(demo_workspace["All Employees"]), {"live": "1"})

    assert response.status_code == 200
    assert "Role names could not be read" not in html(response)
    assert "<strong>Workspace Member</strong>" in html(response)


def test_failed_role_names_fall_back_to_the_names_the_group_carries(viewer_client, demo_workspace, settings):
    MirrorRole.objects.all().delete()  # a mirror without roles: they are read live
    settings.SEGMENT_MAX_RETRIES = 0
    inject_fault("list_roles", "503")

    response = viewer_client.get(detail_url(demo_workspace["All Employees"]), {"live": "1"})

    assert response.status_code == 200
    assert "Role names could not be read" in html(response)


def test_timeout_becomes_a_banner_inside_the_htmx_target(viewer_client, demo_workspace, settings):
    settings.SEGMENT_READ_TIMEOUT = 0.05
    settings.SEGMENT_MAX_RETRIES = 0
    settings.SANDBOX_HANG_SECONDS = 1
    inject_fault("list_invites_from_user_group", "hang")
    group = demo_workspace["All Employees"]

    response = viewer_client.get(detail_url(group), headers={**HTMX, "HX-Target": "invites-panel"})

    assert response.status_code == 503
    assert html(response).strip().startswith('<section id="invites-panel"')
    assert "Segment is not responding" in html(response)


def test_htmx_request_without_target_gets_the_banner_retargeted(viewer_client, demo_workspace, settings):
    settings.SEGMENT_MAX_RETRIES = 0
    inject_fault("get_user_group", "503")

    response = viewer_client.get(detail_url(demo_workspace["All Employees"]), headers=HTMX)

    assert response.status_code == 503
    assert response["HX-Retarget"] == "#banner"
    assert html(response).strip().startswith('<div id="banner"')


def test_invite_count_includes_invites_added_later(viewer_client, demo_workspace):
    group = demo_workspace["All Employees"]
    Invite.objects.create(group=group, email="late@example.com")

    page = html(viewer_client.get(detail_url(group), {"invites_size": "50", "live": "1"}))

    assert "1–31 of 31" in page


def test_paging_one_table_keeps_the_other_tables_state_from_the_browser_url(viewer_client, demo_workspace):
    group = demo_workspace["All Employees"]
    browser_url = (
        f"http://testserver{detail_url(group)}?users_size=10&users_cursor=OLD&users_start=11&invites_size=10"
    )
    first_invites = viewer_client.get(detail_url(group), {"invites_size": "10", "live": "1"})
    invites_next = (
        html(first_invites)
        .split('aria-label="Invites pages"')[1]
        .split('rel="next" href="?')[1]
        .split('"')[0]
    )

    response = viewer_client.get(
        detail_url(group) + "?" + invites_next.replace("&amp;", "&"),
        headers={**HTMX, "HX-Target": "invites-panel", "HX-Current-URL": browser_url},
    )

    pushed = response["HX-Push-Url"]
    assert "users_size=10" in pushed and "users_cursor=OLD" in pushed and "users_start=11" in pushed
    assert "invites_start=11" in pushed
    assert "users_cursor=OLD" in html(response)  # the panel's own links keep the users table where it is
    assert "11–20 of 30" in html(response)


def test_htmx_refresh_reshows_what_the_browser_shows(viewer_client, demo_workspace):
    UserGroup.objects.create(name="Created elsewhere")
    sync_workspace(trigger="test")

    response = viewer_client.post(
        LIST,
        headers={**HTMX, "HX-Target": "groups-table", "HX-Current-URL": "http://testserver/?q=elsewhere"},
    )

    assert "1 group matching “elsewhere”" in html(response)


def test_search_within_a_groups_members_from_the_mirror(viewer_client, demo_workspace):
    group = demo_workspace["All Employees"]
    someone = group.memberships.select_related("user").first().user
    url = reverse("groups:members-search", args=[group.id])

    fragment = viewer_client.post(url, {"q": someone.name.upper()}, headers=HTMX)
    sent = viewer_client.post(url, {"q": someone.email})
    page = viewer_client.get(sent["Location"])
    refreshed = viewer_client.get(sent["Location"], headers=HTMX)  # after a change, the results re-read
    nothing = viewer_client.post(url, {"q": "no such person"}, headers=HTMX)

    assert html(fragment).strip().startswith('<div id="member-search-results"')
    assert someone.email in html(fragment) and "as of" in html(fragment)
    # What was typed is remembered under a token: the address is in no URL.
    assert sent.status_code == 302 and re.fullmatch(rf"{url}\?search=[A-Za-z0-9_-]+", sent["Location"])
    person = reverse("groups:person", args=[PersonKey.objects.get(email=someone.email).key])
    assert "<html" in html(page) and f'href="{person}"' in html(page)  # by key, never by address
    assert f"<h1>Find a member of {group.name}</h1>" in html(page)
    assert f'value="{someone.email}"' in html(page)  # the box shows what was searched
    assert someone.email in html(refreshed) and f'hx-get="{sent["Location"]}"' in html(refreshed)
    assert "No member's email or name contains “no such person”" in html(nothing)


def test_a_member_search_no_longer_remembered_says_so(viewer_client, demo_workspace):
    url = reverse("groups:members-search", args=[demo_workspace["All Employees"].id])

    page = html(viewer_client.get(url, {"search": "forgotten-token"}))

    assert "That search is no longer remembered" in page


def test_the_detail_page_offers_member_search(viewer_client, demo_workspace):
    group = demo_workspace["All Employees"]

    page = html(viewer_client.get(detail_url(group)))

    assert f'hx-post="/groups/{group.id}/members/search/"' in page


def test_searching_members_as_you_type_never_pushes_out_peoples_searches(viewer_client, demo_workspace):
    people = viewer_client.post(reverse("groups:people"), {"q": "ada"})
    url = reverse("groups:members-search", args=[demo_workspace["All Employees"].id])
    for length in range(1, 26):  # one search per keystroke
        viewer_client.post(url, {"q": "abcdefghijklmnopqrstuvwxyz"[:length]}, headers=HTMX)

    page = html(viewer_client.get(people["Location"]))

    assert "That search is no longer remembered" not in page
