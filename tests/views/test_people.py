"""People: search across the workspace, a person's access, and changing it across groups."""

import re
from html.parser import HTMLParser
from urllib.parse import unquote

import pytest
from django.urls import reverse

from groups_app.models import AccessRequest, AuditEntry, Job, MirrorMember
from groups_app.services.mirror.sync import sync_workspace
from groups_app.services.people import person_keys
from sandbox.faults import inject_fault
from sandbox.models import GroupPermission, Invite, Membership, Role, UserGroup, WorkspaceUser
from tests.factories import administrator, help_desk, viewer
from tests.jobs import run_jobs

pytestmark = pytest.mark.django_db

PEOPLE = reverse("groups:people")
LABELLED = [{"id": "ws1", "type": "WORKSPACE", "labels": [{"key": "environment", "value": "prod"}]}]


@pytest.fixture
def office(db):
    """Alice in Data and Finance, Bob in Data and Owners (privileged), Nina invited to Data."""
    owner = Role.objects.create(id="roleOwner00000000000000000001", name="Workspace Owner")
    reader = Role.objects.create(id="roleReader0000000000000000002", name="Source Read-only")
    alice = WorkspaceUser.objects.create(name="Alice Liddell", email="alice@example.com")
    bob = WorkspaceUser.objects.create(name="Bob Stone", email="bob@example.com")
    data = UserGroup.objects.create(name="Data")
    finance = UserGroup.objects.create(name="Finance")
    owners = UserGroup.objects.create(name="Owners")
    GroupPermission.objects.create(group=data, role=reader, resources=LABELLED)
    GroupPermission.objects.create(group=owners, role=owner, resources=[{"id": "ws1", "type": "WORKSPACE"}])
    Membership.objects.create(group=data, user=alice)
    Membership.objects.create(group=finance, user=alice)
    Membership.objects.create(group=data, user=bob)
    Membership.objects.create(group=owners, user=bob)
    Invite.objects.create(group=data, email="nina@example.org")
    sync_workspace(trigger="test")
    return {"data": data, "finance": finance, "owners": owners}


def person_url(email, action=""):
    name = f"groups:person-{action}" if action else "groups:person"
    return reverse(name, args=[person_keys([email])[email.lower()]])


def search(client, text, **kwargs):
    """A People search as the page sends it (POSTed), then the page it leads to."""
    return client.post(PEOPLE, {"q": text}, follow=True, **kwargs)


def html(response):
    return response.content.decode()


def key(response):
    return re.search(r'name="submission_key" value="([0-9a-f]+)"', html(response)).group(1)


def in_group(group, email):
    return (
        Membership.objects.filter(group=group, user__email=email).exists()
        or Invite.objects.filter(group=group, email=email).exists()
    )


def test_people_search_by_email_or_name_from_the_mirror(client, office, settings):
    client.force_login(viewer(username="vera"))
    settings.SEGMENT_MAX_RETRIES = 0
    for operation in ("list_user_groups", "get_user_group", "list_users_from_user_group"):
        inject_fault(operation, "503")  # Segment down: People does not notice

    by_name = html(search(client, "LIDDELL"))
    by_domain = html(search(client, "example.org"))
    everyone = html(client.get(PEOPLE))

    assert "alice@example.com" in by_name and "bob@example.com" not in by_name
    assert "1 person matching “LIDDELL”" in by_name and "Workspace as of" in by_name
    assert "nina@example.org" in by_domain and "Pending invite" in by_domain
    assert "3 people" in everyone


def test_people_search_fragment_for_htmx(client, office):
    client.force_login(viewer(username="vera"))

    response = client.post(PEOPLE, {"q": "bob"}, headers={"HX-Request": "true", "HX-Target": "people-table"})

    assert html(response).strip().startswith('<section id="people-table"')
    assert "bob@example.com" in html(response)
    assert re.fullmatch(r"/people/\?search=[A-Za-z0-9_-]+", response["HX-Replace-Url"])


def test_a_persons_page_shows_groups_access_requests_and_history(client, office):
    client.force_login(viewer(username="vera"))
    AccessRequest.objects.create(
        group_id=office["owners"].id,
        group_name="Owners",
        email="alice@example.com",
        requester_username="alice",
        justification="on call",
    )
    AuditEntry.objects.create(
        actor_username="ada", action="members.add", summary="ada added alice@example.com", status="succeeded"
    )

    page = html(client.get(person_url("alice@example.com")))

    groups = page[page.index('id="groups-heading"') : page.index('id="access-heading"')]
    assert "Alice Liddell" in page and "2</span> groups" in page
    assert ">Data</a>" in groups and ">Finance</a>" in groups and ">Owners</a>" not in groups
    assert "Source Read-only" in page and "environment=prod" in page  # the grant, labels kept
    assert "Owners</a> — Pending" in page  # the open request
    assert "ada added alice@example.com" in page
    assert "Remove from selected groups" not in page  # a Viewer only looks


def test_an_invited_person_is_shown_as_such(client, office):
    client.force_login(viewer(username="vera"))

    page = html(client.get(person_url("nina@example.org")))

    assert "Pending invite only" in page


def test_an_unknown_key_is_a_404_page(client, office):
    client.force_login(viewer(username="vera"))

    response = client.get(reverse("groups:person", args=["A" * 22]))

    assert response.status_code == 404
    assert "No such person" in html(response)


def test_a_persons_address_in_the_url_is_a_404(client, office):
    client.force_login(viewer(username="vera"))

    assert client.get("/people/alice@example.com/").status_code == 404


def test_removing_from_several_groups_asks_first_then_audits_each_group(client, office):
    client.force_login(administrator(username="ada"))
    form = client.get(person_url("alice@example.com"))
    chosen = {"groups": [office["data"].id, office["finance"].id], "submission_key": key(form)}

    asked = client.post(person_url("alice@example.com", "remove"), chosen)

    assert "Remove alice@example.com from 2 groups?" in html(asked)
    assert in_group(office["data"], "alice@example.com") and not AuditEntry.objects.exists()

    queued = client.post(person_url("alice@example.com", "remove"), {**chosen, "confirmed": "yes"})

    job = Job.objects.get()
    assert queued.status_code == 302 and queued.url == reverse("groups:job", args=[job.pk])
    assert (
        in_group(office["data"], "alice@example.com") and not AuditEntry.objects.exists()
    )  # sent by the worker
    run_jobs()
    done = client.get(queued.url)
    assert "Removed from Data." in html(done) and "Removed from Finance." in html(done)
    assert "2 of 2" in html(done)
    assert not in_group(office["data"], "alice@example.com")
    assert not in_group(office["finance"], "alice@example.com")
    entries = AuditEntry.objects.filter(action="members.remove", status="succeeded")
    assert sorted(e.group_name for e in entries) == ["Data", "Finance"]
    assert not MirrorMember.objects.filter(email="alice@example.com").exists()  # written through
    again = client.post(person_url("alice@example.com", "remove"), {**chosen, "confirmed": "yes"})
    assert again.status_code == 422  # those groups are no longer offered: nothing is sent twice


def test_help_desk_cannot_remove_from_a_privileged_group_and_the_rest_still_happens(client, office):
    client.force_login(help_desk(username="hana"))
    form = client.get(person_url("bob@example.com"))

    queued = client.post(
        person_url("bob@example.com", "remove"),
        {"groups": [office["owners"].id, office["data"].id], "submission_key": key(form), "confirmed": "yes"},
    )
    run_jobs()

    page = html(client.get(queued.url))
    assert "Removed from Data." in page
    assert "1 not done" in page and "Owners is a privileged group" in page
    assert dict(Job.objects.get().items.values_list("target_name", "status")) == {
        "Owners": "refused",
        "Data": "succeeded",
    }
    assert in_group(office["owners"], "bob@example.com") and not in_group(office["data"], "bob@example.com")
    refused = AuditEntry.objects.get(group_id=office["owners"].id)
    assert refused.status == "refused" and refused.actor_username == "hana"


def test_choosing_no_group_is_refused_next_to_the_field_and_audited(client, office):
    client.force_login(help_desk(username="hana"))

    response = client.post(person_url("alice@example.com", "remove"), {"confirmed": "yes"})

    assert response.status_code == 422
    assert "Choose at least one group." in html(response)
    assert AuditEntry.objects.get().status == "refused"
    assert in_group(office["data"], "alice@example.com")


def test_a_group_that_was_not_offered_is_refused(client, office):
    client.force_login(help_desk(username="hana"))

    response = client.post(
        person_url("alice@example.com", "remove"), {"groups": [office["owners"].id], "confirmed": "yes"}
    )

    assert response.status_code == 422
    assert "is not one of the groups offered" in html(response)


def test_a_viewer_may_not_change_anyone_and_the_refusal_is_audited(client, office):
    client.force_login(viewer(username="vera"))

    response = client.post(
        person_url("alice@example.com", "remove"), {"groups": [office["data"].id], "confirmed": "yes"}
    )

    assert response.status_code == 403
    assert AuditEntry.objects.get().status == "refused"
    assert in_group(office["data"], "alice@example.com")


def test_adding_to_several_groups_turns_a_privileged_one_into_a_request(client, office):
    client.force_login(administrator(username="ada"))
    form = client.get(person_url("alice@example.com"))

    queued = client.post(
        person_url("alice@example.com", "add"),
        {"groups": [office["owners"].id], "submission_key": key(form)},
    )
    run_jobs()

    page = html(client.get(queued.url))
    assert "a second Administrator must approve" in page and "Filed for approval" in page
    assert not in_group(office["owners"], "alice@example.com")
    assert AccessRequest.objects.get(email="alice@example.com").status == "pending"


def test_copy_access_shows_the_difference_then_adds_what_was_ticked(client, office):
    client.force_login(administrator(username="ada"))

    preview = client.post(person_url("nina@example.org", "copy"), {"source": "alice@example.com"})

    page = html(preview)
    assert "alice@example.com is in 1 group that nina@example.org is not in" in page
    assert "+ Finance" in page
    assert not in_group(office["finance"], "nina@example.org")

    queued = client.post(
        person_url("nina@example.org", "add"),
        {"groups": [office["finance"].id], "submission_key": key(preview)},
    )
    run_jobs()

    assert "Finance: Invited 1 person who is not yet a workspace user." in html(client.get(queued.url))
    assert in_group(office["finance"], "nina@example.org")


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("alice@example.com", "Choose someone else to copy from."),
        ("Alice+old@EXAMPLE.com", "Choose someone else to copy from."),
        ("nobody@example.com", "nobody@example.com is in no group"),
        ("not an address", "is not an email address"),
    ],
)
def test_copy_access_from_a_wrong_source_says_why(client, office, source, message):
    client.force_login(administrator(username="ada"))

    response = client.post(person_url("alice@example.com", "copy"), {"source": source})

    assert response.status_code == 422
    assert message in html(response)


def test_groups_to_add_are_found_by_name_and_exclude_the_persons_groups(client, office):
    client.force_login(administrator(username="ada"))

    fragment = client.post(
        person_url("alice@example.com", "add"),
        {"add_q": "o"},
        headers={"HX-Request": "true", "HX-Target": "add-candidates"},
    )
    page = html(client.post(person_url("alice@example.com", "add"), {"add_q": "own", "find": "1"}))
    offered = page[page.index('id="add-candidates"') :]

    assert html(fragment).strip().startswith('<div id="add-candidates"')
    assert f'value="{office["owners"].id}"' in html(fragment)
    assert f'value="{office["data"].id}"' not in html(fragment)  # she is in it already
    assert f'value="{office["owners"].id}"' in offered and f'value="{office["finance"].id}"' not in offered


def test_help_desk_sees_up_front_which_groups_it_may_not_change_and_why(client, office):
    client.force_login(help_desk(username="hana"))
    owners = office["owners"]

    found = html(
        client.post(
            person_url("alice@example.com", "add"),
            {"add_q": "own"},
            headers={"HX-Request": "true", "HX-Target": "add-candidates"},
        )
    )
    bob = html(client.get(person_url("bob@example.com")))
    copied = html(client.post(person_url("alice@example.com", "copy"), {"source": "bob@example.com"}))

    refusal = "Owners is a privileged group (it grants Workspace Owner): only Administrators change"
    assert f'value="{owners.id}"' not in found and refusal in found
    assert f"/requests/new/?group={owners.id}" in found
    assert f'id="remove-{owners.id}"' not in bob and f'id="remove-{office["data"].id}"' in bob
    assert refusal in bob
    preview = copied[copied.index('id="copy-preview"') :]
    assert f'value="{owners.id}"' not in preview and refusal in preview


def test_an_administrator_is_offered_privileged_groups(client, office):
    client.force_login(administrator(username="ada"))

    bob = html(client.get(person_url("bob@example.com")))

    assert f'id="remove-{office["owners"].id}"' in bob and "only Administrators change its members" not in bob


def test_your_own_page_says_why_nothing_can_be_added_instead_of_offering_groups(client, office):
    client.force_login(administrator(username="ada", email="alice@example.com"))

    page = html(client.get(person_url("alice@example.com")))

    assert 'id="addition-refusal"' in page and "You cannot add yourself to a group" in page
    assert (
        'id="add-to-groups"' not in page and 'action="' + person_url("alice@example.com", "copy") not in page
    )


def test_adding_to_a_group_the_person_is_in_already_is_refused(client, office):
    client.force_login(help_desk(username="hana"))

    response = client.post(person_url("alice@example.com", "add"), {"groups": [office["data"].id]})

    assert response.status_code == 422
    assert "is not one of the groups offered" in html(response)


def test_segment_failing_midway_is_told_per_group_and_audited_never_a_500(client, office, settings):
    client.force_login(administrator(username="ada"))
    settings.SEGMENT_MAX_RETRIES = 0
    inject_fault("remove_users_from_user_group", "429")  # the first removal is rate-limited

    queued = client.post(
        person_url("alice@example.com", "remove"),
        {"groups": [office["data"].id, office["finance"].id], "confirmed": "yes"},
    )
    run_jobs()

    done = client.get(queued.url)
    page = html(done)
    assert done.status_code == 200
    assert "1 not done" in page and "rate-limiting" in page
    assert "Removed from Finance." in page
    outcomes = dict(AuditEntry.objects.filter(action="members.remove").values_list("group_name", "status"))
    assert outcomes == {"Data": "failed", "Finance": "succeeded"}
    assert in_group(office["data"], "alice@example.com")


def test_html_in_a_search_or_an_address_is_shown_as_text(client, office):
    client.force_login(viewer(username="vera"))

    found = html(search(client, "<script>alert(1)</script>"))
    person = client.get("/people/%3Cscript%3Ealert(1)%3C%2Fscript%3E@example.com/")

    assert "<script>alert(1)</script>" not in found and "&lt;script&gt;" in found
    assert person.status_code == 404
    assert "<script>alert(1)" not in html(person)


class UrlCollector(HTMLParser):
    """Every URL a page links, posts or pushes to: where an address must never appear."""

    URL_ATTRIBUTES = {"href", "action", "src", "formaction", "hx-get", "hx-post", "hx-push-url"}

    def __init__(self):
        super().__init__()
        self.urls = []

    def handle_starttag(self, tag, attrs):
        self.urls += [value for name, value in attrs if name in self.URL_ATTRIBUTES and value]


def urls_in(response):
    collector = UrlCollector()
    collector.feed(html(response))
    headers = [response.get(name) for name in ("Location", "HX-Replace-Url", "HX-Redirect")]
    return collector.urls + [header for header in headers if header]


def assert_no_address_in(urls):
    assert urls, "the page links nowhere: nothing was checked"
    for url in urls:
        decoded = unquote(url)
        assert "@" not in decoded and "example." not in decoded, url


def test_no_people_page_puts_an_address_in_a_url_link_or_redirect(client, office):
    """The list, a search and its redirect, a person's page (with a copy preview, a removal to
    confirm and an outcome), and member search results on a group's page."""
    client.force_login(administrator(username="ada"))
    for number in range(25):  # a second page of history, so its pager links are checked too
        AuditEntry.objects.create(
            actor_username="ada", action="members.add", summary=f"{number} alice@example.com"
        )
    alice = person_url("alice@example.com")

    responses = [
        client.get(PEOPLE),
        client.post(PEOPLE, {"q": "alice@example.com"}),
        search(client, "alice@example.com"),
        client.post(
            PEOPLE, {"q": "alice@example.com"}, headers={"HX-Request": "true", "HX-Target": "people-table"}
        ),
        client.get(alice),
        client.get(alice, {"history_page": 2}),
        client.post(person_url("alice@example.com", "copy"), {"source": "bob@example.com"}),
        client.post(person_url("alice@example.com", "remove"), {"groups": [office["data"].id]}),
        client.post(person_url("alice@example.com", "add"), {"add_q": "own", "find": "1"}),
    ]
    searched = client.post(
        reverse("groups:members-search", args=[office["data"].id]), {"q": "alice@example.com"}
    )
    members = client.get(searched["Location"])

    assert responses[1].status_code == 302
    assert all(response.status_code in (200, 302) for response in responses), [
        r.status_code for r in responses
    ]
    for response in responses:
        assert_no_address_in(urls_in(response))
    person_links = [url for url in urls_in(responses[2]) if url.startswith("/people/") and url != PEOPLE]
    assert person_links and all(re.fullmatch(r"/people/[A-Za-z0-9_-]{22}/", url) for url in person_links)
    # Member search on a group's page is remembered under a token, and links to each person by key.
    assert_no_address_in([searched["Location"]])
    assert_no_address_in([url for url in urls_in(members) if url.startswith("/people/")])
    assert alice in urls_in(members)


def test_a_search_is_remembered_under_a_token_for_paging_and_back(client, office):
    client.force_login(viewer(username="vera"))

    posted = client.post(PEOPLE, {"q": "example.com"})
    shown = client.get(posted["Location"])
    again = client.post(PEOPLE, {"q": "example.com"})

    assert re.fullmatch(r"/people/\?search=[A-Za-z0-9_-]+", posted["Location"])
    assert "2 people matching “example.com”" in html(shown)
    assert 'value="example.com"' in html(shown)  # the box shows what was searched
    assert again["Location"] == posted["Location"]  # the same search, the same token


def test_a_forgotten_search_token_says_so_and_shows_everyone(client, office):
    client.force_login(viewer(username="vera"))

    response = client.get(PEOPLE, {"search": "not-a-token"})

    assert response.status_code == 200
    assert "That search is no longer remembered" in html(response)
    assert "3 people" in html(response)


@pytest.mark.parametrize("text", ["alice\x00", "a" * 255])
def test_a_search_with_a_nul_or_too_long_is_refused_next_to_the_box(client, office, text):
    client.force_login(viewer(username="vera"))

    page = client.post(PEOPLE, {"q": text})
    fragment = client.post(PEOPLE, {"q": text}, headers={"HX-Request": "true", "HX-Target": "people-table"})

    assert page.status_code == 422 and fragment.status_code == 422
    assert 'id="people-q-error"' in html(page)
    assert "Nothing was searched" in html(fragment)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"add_q": "own\x00", "find": "1"}, "Null characters are not allowed."),
        ({"add_q": "o" * 201, "find": "1"}, "at most 200 characters"),
    ],
)
def test_a_bad_group_search_on_a_persons_page_is_refused_next_to_the_box(client, office, data, message):
    client.force_login(help_desk(username="hana"))

    response = client.post(person_url("alice@example.com", "add"), data)

    assert response.status_code == 422
    assert 'id="add-q-error"' in html(response) and message in html(response)


def test_a_nul_in_a_chosen_group_or_the_copy_source_is_refused_never_a_500(client, office):
    client.force_login(help_desk(username="hana"))

    added = client.post(person_url("alice@example.com", "add"), {"groups": ["g\x00"]})
    copied = client.post(person_url("alice@example.com", "copy"), {"source": "bob@example.com\x00"})

    assert added.status_code == 422 and "is not one of the groups offered" in html(added)
    assert "\x00" not in AuditEntry.objects.get().error
    assert copied.status_code == 422 and "Null characters are not allowed." in html(copied)


def test_ticked_groups_survive_a_new_search_and_are_listed_as_selected(client, office):
    client.force_login(help_desk(username="hana"))

    found = client.post(
        person_url("alice@example.com", "add"),
        {"groups": [office["owners"].id], "add_q": "zzz", "find": "1"},
        headers={"HX-Request": "true", "HX-Target": "add-candidates"},
    )

    fragment = html(found)
    selected = fragment[fragment.index('id="selected-groups"') :]
    assert "Selected (1)" in fragment
    assert f'value="{office["owners"].id}" checked' in selected
    assert "No other group to offer whose name contains “zzz”" in fragment
    assert not AuditEntry.objects.exists()  # finding changes nothing


def test_a_ticked_group_that_is_no_longer_offered_is_named_not_dropped_silently(client, office):
    client.force_login(help_desk(username="hana"))

    found = client.post(
        person_url("alice@example.com", "add"),
        {"groups": [office["data"].id, office["owners"].id], "find": "1"},  # she is in Data already
    )

    assert "1 group you ticked is no longer offered" in html(found)
    assert "Selected (1)" in html(found)


def test_copy_access_never_pre_ticks_a_privileged_group(client, office):
    client.force_login(administrator(username="ada"))

    preview = html(client.post(person_url("alice@example.com", "copy"), {"source": "bob@example.com"}))

    owners = re.search(rf'<input type="checkbox" name="groups" value="{office["owners"].id}"[^>]*>', preview)
    assert owners and "checked" not in owners.group(0)
    assert "not ticked: tick it only if they need it" in preview


def test_a_key_kept_for_something_that_is_not_an_address_says_so(client, office):
    client.force_login(viewer(username="vera"))
    key = person_keys(["not-an-address"])["not-an-address"]

    response = client.get(reverse("groups:person", args=[key]))

    assert response.status_code == 404
    assert "is not an email address" in html(response)


@pytest.mark.parametrize(
    ("action", "section"), [("copy", "person-copy"), ("add", "person-add"), ("remove", "person-groups")]
)
def test_a_forms_address_opened_as_a_page_goes_to_that_form_on_the_persons_page(
    client, office, action, section
):
    client.force_login(viewer(username="vera"))

    response = client.get(person_url("alice@example.com", action))

    assert response.status_code == 302
    assert response["Location"] == person_url("alice@example.com") + f"#{section}"
    assert not AuditEntry.objects.exists()


def test_request_access_instead_files_for_the_person_without_their_address_in_the_url(client, office):
    client.force_login(help_desk(username="hana"))
    found = html(
        client.post(
            person_url("alice@example.com", "add"),
            {"add_q": "own"},
            headers={"HX-Request": "true", "HX-Target": "add-candidates"},
        )
    )
    link = re.search(r'href="(/requests/new/\?[^"]+)"', found).group(1).replace("&amp;", "&")

    form = html(client.get(link))
    mistyped = html(client.get(reverse("groups:request-new"), {"person": "not a key\x00"}))

    assert "alice@example.com" not in link
    assert re.search(r"<textarea[^>]*>\s*alice@example.com</textarea>", form)
    assert f'<option value="{office["owners"].id}" selected>' in form
    assert 'name="emails"' in mistyped and "alice@example.com" not in mistyped
