"""Change forms: who may use them, field errors, previews, htmx behaviour, CSRF."""

import re

import pytest
from django.test import Client
from django.urls import reverse

from groups_app.models import AuditEntry, ChangeProposal
from groups_app.services.mirror.sync import refresh_group
from groups_app.services.people import person_keys
from sandbox.faults import inject_fault
from sandbox.models import GroupPermission, Invite, Membership, Role, UserGroup, WorkspaceUser
from tests.factories import UserFactory, administrator, help_desk, viewer

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("known_sources")]

HTMX = {"HX-Request": "true"}


@pytest.fixture
def group(demo_workspace):
    return demo_workspace["All Employees"]


@pytest.fixture
def small(demo_workspace):
    """A plain-named group with members (names with HTML are covered by the escaping tests)."""
    return next(
        g
        for g in demo_workspace.values()
        if g.name != "All Employees" and "<" not in g.name and g.memberships.exists()
    )


def html(response):
    return response.content.decode()


def url(name, group):
    return reverse(f"groups:{name}", args=[group.id])


def key(response):
    return re.search(r'name="submission_key" value="([0-9a-f]+)"', html(response)).group(1)


MUTATING = [
    ("create", None, "manage_groups"),
    ("rename", "group", "manage_groups"),
    ("delete", "group", "manage_groups"),
    ("members-add", "group", "change_membership"),
    ("members-remove", "group", "change_membership"),
    ("members-replace", "group", "change_membership"),
    ("permissions-add", "group", "change_permissions"),
    ("permissions-edit", "group", "change_permissions"),
]
ROLE_PERMISSIONS = {
    "viewer": set(),
    "help_desk": {"change_membership"},
    "administrator": {"manage_groups", "change_membership", "change_permissions"},
}


@pytest.mark.parametrize(("name", "takes_group", "needs"), MUTATING)
@pytest.mark.parametrize("role", ["viewer", "help_desk", "administrator"])
def test_every_mutating_url_is_enforced_by_role(client, group, name, takes_group, needs, role):
    user = {"viewer": viewer, "help_desk": help_desk, "administrator": administrator}[role]()
    client.force_login(user)
    target = reverse(f"groups:{name}", args=[group.id] if takes_group else [])

    get = client.get(target)
    post = client.post(target, {})

    allowed = needs in ROLE_PERMISSIONS[role]
    assert (get.status_code == 403) is not allowed
    assert (post.status_code == 403) is not allowed
    # An empty POST changes nothing either way; a refused role is on record with who and where.
    assert set(AuditEntry.objects.values_list("status", flat=True)) <= {AuditEntry.Status.REFUSED}
    if not allowed:
        (entry,) = AuditEntry.objects.all()
        assert (
            entry.actor_username == user.username and entry.error == "Your role does not allow this change."
        )
        assert entry.details == {"path": target} and entry.group_id == (group.id if takes_group else "")


def test_viewer_sees_no_forms(viewer_client, group):
    page = html(viewer_client.get(url("detail", group)))

    assert "Add members" not in page and "Remove selected" not in page
    assert "Rename" not in page and "Edit all" not in page and "New group" not in html(viewer_client.get("/"))


def test_help_desk_sees_membership_forms_only(help_desk_client, group):
    page = html(help_desk_client.get(url("detail", group)))

    assert "Add members" in page and "Remove selected" in page
    assert "Rename" not in page and "Add a permission" not in page


def test_administrator_sees_every_form(admin_user_client, group):
    page = html(admin_user_client.get(url("detail", group)))

    assert all(
        text in page
        for text in ("Add members", "Remove selected", "Rename", "Delete…", "Add a permission", "Edit all…")
    )


def test_mutations_require_csrf(group):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(administrator())

    response = strict.post(url("members-add", group), {"emails": "carol@example.com"})

    assert response.status_code == 403
    assert not AuditEntry.objects.exists()


# -- add members ---------------------------------------------------------------------------------------


def test_add_members_htmx_reports_the_outcome_and_triggers_refresh(help_desk_client, small):
    outsider = WorkspaceUser.objects.exclude(memberships__group=small).first()
    member = small.memberships.first().user
    form = help_desk_client.get(url("detail", small))

    response = help_desk_client.post(
        url("members-add", small),
        {
            "emails": f"{outsider.email.upper()}; new.person@example.org\n{member.email}",
            "submission_key": key(form),
        },
        headers={**HTMX, "HX-Target": "add-members-form"},
    )

    assert response.status_code == 200
    assert "<html" not in html(response)
    # Users, invites and members are told apart from the mirror (no read of the whole group).
    assert "Added 1 user, invited 1 person who is not yet a workspace user, 1 was already a member." in html(
        response
    )
    assert "members-changed" in response["HX-Trigger-After-Settle"]
    assert Membership.objects.filter(group=small, user=outsider).exists()
    assert Invite.objects.filter(group=small, email="new.person@example.org").exists()
    assert AuditEntry.objects.get().status == "succeeded"


def test_add_members_without_javascript_redirects_with_a_message(help_desk_client, small):
    response = help_desk_client.post(
        url("members-add", small), {"emails": "someone@example.org"}, follow=True
    )

    assert response.redirect_chain[-1][0] == url("detail", small)
    assert "Invited 1 person" in html(response)


def test_invalid_emails_are_listed_next_to_the_field_and_nothing_is_sent(help_desk_client, small):
    response = help_desk_client.post(
        url("members-add", small),
        {"emails": "good@example.org, bad@, also bad"},
        headers={**HTMX, "HX-Target": "add-members-form"},
    )

    page = html(response)
    assert response.status_code == 422
    assert "bad@ is not a valid email address." in page
    assert "also is not an email address (it has no @)." in page
    assert 'aria-invalid="true"' in page
    assert "good@example.org, bad@, also bad" in page  # what was typed stays
    assert not Invite.objects.filter(email="good@example.org").exists()
    entry = AuditEntry.objects.get()
    assert entry.status == AuditEntry.Status.REFUSED and "bad@ is not a valid email address" in entry.error


def test_domain_allowlist_message(help_desk_client, small, settings):
    settings.ALLOWED_EMAIL_DOMAINS = ["acme-corp.example"]

    response = help_desk_client.post(url("members-add", small), {"emails": "friend@gmail.com"})

    assert response.status_code == 422
    assert (
        "friend@gmail.com is outside the allowed domains (acme-corp.example); Group Admin does not add"
        in html(response)
    )


def test_double_submission_is_applied_once(help_desk_client, small):
    data = {"emails": "twice@example.org", "submission_key": "0123456789abcdef"}

    help_desk_client.post(url("members-add", small), data)
    second = help_desk_client.post(url("members-add", small), data)

    assert "already submitted and the change was applied; it was not sent again" in html(second)
    statuses = list(AuditEntry.objects.order_by("id").values_list("status", flat=True))
    assert statuses == [AuditEntry.Status.SUCCEEDED, AuditEntry.Status.REFUSED]
    assert Invite.objects.filter(email="twice@example.org").count() == 1


def test_upstream_failure_of_a_form_shows_a_banner_and_keeps_the_form(help_desk_client, small, settings):
    settings.SEGMENT_MAX_RETRIES = 0
    inject_fault("add_users_to_user_group", "429")

    response = help_desk_client.post(
        url("members-add", small),
        {"emails": "x@example.org"},
        headers={**HTMX, "HX-Target": "add-members-form"},
    )

    assert response.status_code == 429
    assert response["HX-Retarget"] == "#banner"
    assert re.search(
        r"Segment is rate-limiting changes; try again at \d\d:\d\d:\d\d \(UTC\)\.", html(response)
    )
    assert AuditEntry.objects.get().status == "failed"


# -- remove members -----------------------------------------------------------------------------------


def chosen(emails):
    """The query that chooses these members: their opaque People keys, never the addresses."""
    keys = person_keys(emails)
    return {"person": [keys[email.lower()] for email in emails]}


def test_remove_asks_for_confirmation_naming_who_loses_access(help_desk_client, small):
    emails = list(small.memberships.values_list("user__email", flat=True)[:2])

    confirm = help_desk_client.get(
        url("members-remove", small), chosen(emails), headers={**HTMX, "HX-Target": "member-dialog"}
    )

    page = html(confirm)
    assert page.strip().startswith('<dialog id="member-dialog"')
    assert f"Remove 2 members from {small.name}?" in page
    assert 'method="dialog"' in page  # Cancel closes the dialog (Escape too)
    assert all(email in page for email in emails)
    assert Membership.objects.filter(group=small, user__email__in=emails).count() == 2

    done = help_desk_client.post(
        url("members-remove", small),
        {"emails": emails, "submission_key": key(confirm)},
        headers={**HTMX, "HX-Target": "member-dialog"},
    )

    assert (
        "members-changed" in done["HX-Trigger-After-Settle"]
        and "member-dialog-done" in done["HX-Trigger-After-Settle"]
    )
    assert done["HX-Retarget"] == "#banner" and "Removed " in html(done)
    assert not Membership.objects.filter(group=small, user__email__in=emails).exists()
    assert AuditEntry.objects.get().details["emails"] == sorted(emails, key=emails.index)


def test_remove_whose_answer_is_lost_but_applied_closes_the_dialog_with_a_warning(help_desk_client, small):
    email = small.memberships.values_list("user__email", flat=True).first()
    confirm = help_desk_client.get(
        url("members-remove", small), chosen([email]), headers={**HTMX, "HX-Target": "member-dialog"}
    )
    inject_fault("remove_users_from_user_group", "applied-500")

    done = help_desk_client.post(
        url("members-remove", small),
        {"emails": [email], "submission_key": key(confirm)},
        headers={**HTMX, "HX-Target": "member-dialog"},
    )

    assert done.status_code == 200 and done["HX-Retarget"] == "#banner"
    assert "member-dialog-done" in done["HX-Trigger-After-Settle"]
    assert "Reading the group back shows it was applied." in html(done)
    assert not Membership.objects.filter(group=small, user__email=email).exists()


def test_remove_with_an_unknown_outcome_offers_no_resend(help_desk_client, small, monkeypatch):
    email = small.memberships.values_list("user__email", flat=True).first()
    confirm = help_desk_client.get(
        url("members-remove", small), chosen([email]), headers={**HTMX, "HX-Target": "member-dialog"}
    )
    inject_fault("remove_users_from_user_group", "500")
    monkeypatch.setattr("groups_app.services.changes.reconcile_entry", lambda entry, **kwargs: entry)

    answer = help_desk_client.post(
        url("members-remove", small),
        {"emails": [email], "submission_key": key(confirm)},
        headers={**HTMX, "HX-Target": "member-dialog"},
    )

    page = html(answer)
    assert page.strip().startswith('<dialog id="member-dialog"')
    assert "Segment did not confirm the change." in page
    assert "Remove 1 member</button>" not in page and ">Close</button>" in page


def test_the_remove_dialog_names_people_one_a_line_with_cancel_beside_the_button(help_desk_client, small):
    user = small.memberships.select_related("user").order_by("user__email").first().user
    invite = small.invites.first() or Invite.objects.create(group=small, email="pending@partner.example")
    refresh_group(small.id, trigger="test")  # the mirror knows who is a user and who an invite

    page = html(
        help_desk_client.get(
            url("members-remove", small),
            chosen([user.email, invite.email]),
            headers={**HTMX, "HX-Target": "member-dialog"},
        )
    )

    people = page.split('<ul class="email-list single-column">')[1].split("</ul>")[0]
    assert f'<li>{user.name} <span class="muted">{user.email}</span></li>' in people
    assert f'<li>{invite.email} <span class="badge">pending invite</span></li>' in people
    actions = page.split('<div class="actions">')[1]
    assert actions.index("Remove 2 members</button>") < actions.index(">Cancel</button>")
    assert actions.index(">Cancel</button>") < actions.index("</div>")


def test_remove_without_choosing_anyone_says_so(help_desk_client, small):
    response = help_desk_client.get(url("members-remove", small))

    page = html(response)
    assert "Nothing selected" in page and "Tick members in the users or invites table" in page
    assert "Remove 0" not in page
    assert (
        '<dialog id="member-dialog" class="card danger-zone" aria-labelledby="remove-heading" open>' in page
    )


def test_the_group_page_chooses_members_by_key_never_by_address_in_a_url(help_desk_client, small):
    email = small.memberships.values_list("user__email", flat=True).first()

    page = html(help_desk_client.get(f"/groups/{small.id}/?live=1"))

    hrefs = re.findall(r'href="([^"]*members/remove/[^"]*)"', page)
    assert hrefs and not any("@" in href or "%40" in href for href in hrefs)
    remove = re.search(rf'href="([^"]+)"[^>]*aria-label="Remove {re.escape(email)}"', page).group(1)
    confirm = help_desk_client.get(
        remove.replace("&amp;", "&"), headers={**HTMX, "HX-Target": "member-dialog"}
    )
    assert f"Remove 1 member from {small.name}?" in html(confirm) and email in html(confirm)
    tick = re.search(
        rf'name="person" value="([^"]+)" form="remove-selected" aria-label="Select {re.escape(email)}"', page
    )
    assert tick and "@" not in tick.group(1)


def test_a_remove_link_with_an_unknown_key_says_so_and_offers_nothing(help_desk_client, small):
    response = help_desk_client.get(
        url("members-remove", small),
        {"person": ["not-a-key"]},
        headers={**HTMX, "HX-Target": "member-dialog"},
    )

    page = html(response)
    assert "A chosen member could not be found" in page
    assert "Remove 0" not in page and "Remove 1" not in page


def test_remove_post_without_emails_is_refused(help_desk_client, small):
    response = help_desk_client.post(url("members-remove", small), {})

    assert response.status_code == 422
    assert "Choose at least one member to remove." in html(response)


# -- replace members ----------------------------------------------------------------------------------


def test_replace_shows_the_diff_then_applies_it(help_desk_client, small):
    keep = small.memberships.first().user.email
    before = set(small.memberships.values_list("user__email", flat=True)) | set(
        small.invites.values_list("email", flat=True)
    )

    preview = help_desk_client.post(url("members-replace", small), {"emails": f"{keep}\nfresh@example.org"})

    page = html(preview)
    assert "To add (1)" in page and "fresh@example.org" in page
    assert f"To remove ({len(before) - 1})" in page
    assert "Unchanged (1)" in page
    assert not AuditEntry.objects.exists()
    fingerprint = re.search(r'name="fingerprint" value="([0-9a-f]+)"', page).group(1)

    applied = help_desk_client.post(
        url("members-replace", small),
        {
            "emails": f"{keep}, fresh@example.org",
            "fingerprint": fingerprint,
            "submission_key": key(preview),
            "confirm": "1",
        },
    )

    assert applied.status_code == 302
    assert set(small.memberships.values_list("user__email", flat=True)) == {keep}
    assert list(small.invites.values_list("email", flat=True)) == ["fresh@example.org"]


def test_replace_with_a_stale_fingerprint_shows_the_new_diff_instead(help_desk_client, small):
    keep = small.memberships.first().user.email
    preview = help_desk_client.post(url("members-replace", small), {"emails": keep})
    fingerprint = re.search(r'name="fingerprint" value="([0-9a-f]+)"', html(preview)).group(1)
    Invite.objects.create(group=small, email="meanwhile@example.org")

    response = help_desk_client.post(
        url("members-replace", small),
        {"emails": keep, "fingerprint": fingerprint, "submission_key": key(preview), "confirm": "1"},
    )

    assert response.status_code == 200
    assert "changed since the preview" in html(response)
    assert "meanwhile@example.org" in html(response)
    assert Invite.objects.filter(email="meanwhile@example.org").exists()
    entry = AuditEntry.objects.get()
    assert entry.status == AuditEntry.Status.REFUSED and "changed since the preview" in entry.error


# -- permissions ----------------------------------------------------------------------------------------


def test_add_permission_by_role_name(admin_user_client, small):
    form = admin_user_client.get(url("permissions-add", small))
    role = re.search(r'<option value="(\w+)">Source Admin</option>', html(form)).group(1)

    typed = {
        "role": role,
        "resource_type": "SOURCE",
        "resource_ids": "srcA, srcB",
        "submission_key": key(form),
    }
    unknown = admin_user_client.post(url("permissions-add", small), typed)
    assert unknown.status_code == 422
    assert "Not found in this workspace: srcA (Source), srcB (Source)" in html(unknown)
    assert 'name="confirm_unknown"' in html(unknown)

    response = admin_user_client.post(
        url("permissions-add", small), {**typed, "submission_key": key(unknown), "confirm_unknown": "on"}
    )

    assert response.status_code == 302
    assert GroupPermission.objects.filter(
        group=small,
        role_id=role,
        resources=[{"id": "srcA", "type": "SOURCE"}, {"id": "srcB", "type": "SOURCE"}],
    ).exists()
    assert [e.status for e in AuditEntry.objects.filter(action="permissions.add").order_by("id")] == [
        "refused",
        "succeeded",
    ]


def test_add_permission_field_errors(admin_user_client, small):
    response = admin_user_client.post(
        url("permissions-add", small), {"role": "", "resource_type": "DATABASE", "resource_ids": "a/b"}
    )

    page = html(response)
    assert response.status_code == 422
    assert "This field is required." in page
    assert "Select a valid choice." in page
    assert "Not a resource id: a/b" in page


def test_edit_permissions_preview_then_replace(admin_user_client, small):
    form = admin_user_client.get(url("permissions-edit", small))
    data = _formset_data(html(form))
    data["rows-0-DELETE"] = "on"

    preview = admin_user_client.post(url("permissions-edit", small), {**data, "preview": "1"})

    page = html(preview)
    assert "Revoked (1)" in page and "Granted (0)" in page
    fingerprint = re.search(r'name="fingerprint" value="([0-9a-f]+)"', page).group(1)
    before = GroupPermission.objects.filter(group=small).count()

    admin_user_client.post(
        url("permissions-edit", small),
        {
            **data,
            "fingerprint": fingerprint,
            "submission_key": key(preview),
            "confirm": "1",
            "confirm_empty": "on",
        },
    )

    assert GroupPermission.objects.filter(group=small).count() == before - 1
    assert AuditEntry.objects.get().action == "permissions.replace"


def test_emptying_permissions_needs_explicit_confirmation(admin_user_client, small):
    form = admin_user_client.get(url("permissions-edit", small))
    data = _formset_data(html(form))
    for index in range(int(data["rows-TOTAL_FORMS"])):
        data[f"rows-{index}-DELETE"] = "on"
    preview = admin_user_client.post(url("permissions-edit", small), {**data, "preview": "1"})
    fingerprint = re.search(r'name="fingerprint" value="([0-9a-f]+)"', html(preview)).group(1)
    assert "removes every permission" in html(preview)

    refused = admin_user_client.post(
        url("permissions-edit", small),
        {**data, "fingerprint": fingerprint, "submission_key": key(preview), "confirm": "1"},
    )

    assert refused.status_code == 422
    assert "Tick the box to confirm" in html(refused)
    assert GroupPermission.objects.filter(group=small).exists()


def test_add_row_keeps_what_was_typed(admin_user_client, small):
    data = _formset_data(html(admin_user_client.get(url("permissions-edit", small))))

    response = admin_user_client.post(url("permissions-edit", small), {**data, "add_row": "1"})

    total = int(data["rows-TOTAL_FORMS"])
    assert f'name="rows-{total}-role"' in html(response)
    assert re.search(
        rf'<select name="rows-{total}-role"[^>]* data-autofocus', html(response)
    )  # focus goes there
    assert len(re.findall(r"<select[^>]* data-autofocus", html(response))) == 1
    assert not AuditEntry.objects.exists()


def _formset_data(page):
    data = {}
    for name, rest in re.findall(r'<input type="(?:hidden|text)" name="(rows-[\w-]+)"([^>]*)>', page):
        value = re.search(r'value="([^"]*)"', rest)
        data[name] = value.group(1) if value else ""
    for name, value in re.findall(
        r'<select name="(rows-\d+-\w+)"[^>]*>.*?<option value="([^"]*)" selected>', page, re.S
    ):
        data[name] = value
    return data


# -- groups ---------------------------------------------------------------------------------------------------


def test_create_lands_on_the_new_group(admin_user_client, demo_workspace):
    response = admin_user_client.post(reverse("groups:create"), {"name": "Growth"})

    created = UserGroup.objects.get(name="Growth")
    assert response["Location"] == reverse("groups:detail", args=[created.id])


def test_create_htmx_redirects_the_client(admin_user_client, demo_workspace):
    response = admin_user_client.post(reverse("groups:create"), {"name": "Growth"}, headers=HTMX)

    assert response["HX-Redirect"].startswith("/groups/")


def test_create_with_a_taken_name_shows_the_upstream_message_by_the_field(admin_user_client, group):
    response = admin_user_client.post(reverse("groups:create"), {"name": "all employees"})

    assert response.status_code == 422
    assert "A user group with this name already exists." in html(response)
    assert AuditEntry.objects.get().status == "failed"


def test_rename_in_place(admin_user_client, small):
    form = admin_user_client.get(url("rename", small), headers={**HTMX, "HX-Target": "group-header"})
    assert html(form).strip().startswith('<div id="group-header"')

    response = admin_user_client.post(
        url("rename", small), {"name": "Renamed Team", "submission_key": key(form)}, headers=HTMX
    )

    assert response["HX-Redirect"] == url("detail", small)
    small.refresh_from_db()
    assert small.name == "Renamed Team"


def test_rename_with_empty_name_is_refused_by_the_field(admin_user_client, small):
    response = admin_user_client.post(url("rename", small), {"name": "   "})

    assert response.status_code == 422
    assert "This field is required." in html(response)


def test_delete_shows_who_loses_access_and_needs_the_typed_name(admin_user_client, small):
    members = small.memberships.count() + small.invites.count()

    page = html(admin_user_client.get(url("delete", small)))
    wrong = admin_user_client.post(url("delete", small), {"confirm_name": small.name.upper()})
    right = admin_user_client.post(url("delete", small), {"confirm_name": small.name})

    assert f"{members} member" in page and "will lose the access" in page
    assert wrong.status_code == 422 and "Type the group&#x27;s name exactly as shown" in html(wrong)
    assert right["Location"] == reverse("groups:list")
    assert not UserGroup.objects.filter(pk=small.pk).exists()


# -- audit log pages ----------------------------------------------------------------------------------------


def test_changes_show_in_the_audit_log_and_group_history(help_desk_client, small):
    help_desk_client.post(url("members-add", small), {"emails": "audited@example.org"})
    entry = AuditEntry.objects.get()

    log = html(help_desk_client.get(reverse("groups:audit")))
    history = html(help_desk_client.get(url("detail", small)))
    detail = html(help_desk_client.get(reverse("groups:audit-entry", args=[entry.pk])))

    assert f"hana added 1 member to {small.name}" in log
    assert f"hana added 1 member to {small.name}" in history
    assert "Invited (not yet workspace users) (1)" in detail and "audited@example.org" in detail
    assert entry.request_id and entry.client_ip == "127.0.0.1"


def test_audit_log_filters(viewer_client, db):
    for name, action, status in (("ada", "group.create", "succeeded"), ("bob", "members.add", "failed")):
        AuditEntry.objects.create(
            actor_username=name, action=action, status=status, summary=f"{name} did {action}", group_name="G"
        )

    by_actor = html(viewer_client.get(reverse("groups:audit"), {"actor": "ADA"}))
    by_status = html(viewer_client.get(reverse("groups:audit"), {"status": "failed"}))
    by_text = html(viewer_client.get(reverse("groups:audit"), {"q": "members.add"}))
    bad_dates = viewer_client.get(
        reverse("groups:audit"), {"date_from": "2026-02-01", "date_to": "2026-01-01"}
    )

    assert "ada did" in by_actor and "bob did" not in by_actor
    assert "ada did" not in html(viewer_client.get(reverse("groups:audit"), {"actor": "ad"}))  # whole names
    assert "A whole username in any letter case" in by_actor  # the hint says so
    assert '<datalist id="actor-choices">' in by_actor and '<option value="system">' in by_actor
    assert 'list="actor-choices"' in by_actor
    assert "bob did" in by_status and "ada did" not in by_status
    assert "bob did" in by_text
    assert bad_dates.status_code == 200 and "The end date is before the start date." in html(bad_dates)


def test_the_filtered_audit_table_carries_an_export_link_with_its_filter(viewer_client, db):
    AuditEntry.objects.create(actor_username="ada", action="group.create", status="failed", summary="x")

    response = viewer_client.get(
        reverse("groups:audit"),
        {"actor": "ada", "status": "failed"},
        headers={**HTMX, "HX-Target": "audit-table"},
    )

    page = html(response)
    assert page.strip().startswith('<section id="audit-table"')
    assert 'href="/audit/export.csv?actor=ada&amp;status=failed"' in page
    assert "1 matching entry" in page and "aria-live" not in page


def test_pending_entry_says_it_is_in_progress_and_what_happens_if_it_stays(viewer_client, db):
    entry = AuditEntry.objects.create(
        actor_username="ada", action="members.add", summary="ada added 1 member to G"
    )

    page = html(viewer_client.get(reverse("groups:audit-entry", args=[entry.pk])))
    assert "In progress" in page and "reconciliation will read the group back" in page


def test_csv_export_streams_filtered_entries_and_neutralises_formulas(viewer_client, db):
    AuditEntry.objects.create(
        actor_username="ada", action="group.create", summary='=HYPERLINK("x")', group_name="+G"
    )
    AuditEntry.objects.create(actor_username="bob", action="group.create", summary="other")

    response = viewer_client.get(reverse("groups:audit-export"), {"actor": "ada"})

    body = b"".join(response.streaming_content).decode()
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment;" in response["Content-Disposition"]
    assert "'=HYPERLINK" in body and ",'+G," in body
    assert "bob" not in body
    assert body.splitlines()[0].startswith("created_at,completed_at,actor")


def test_user_without_role_cannot_read_the_audit_log(client, db):
    client.force_login(UserFactory())

    assert client.get(reverse("groups:audit")).status_code == 403


@pytest.mark.parametrize("total", ["", "x", "-1"])
def test_tampered_row_count_is_refused_not_a_crash(admin_user_client, small, total):
    for action in ("add_row", "preview"):
        response = admin_user_client.post(
            url("permissions-edit", small),
            {"rows-TOTAL_FORMS": total, "rows-INITIAL_FORMS": "0", action: "1"},
        )

        assert response.status_code in (200, 422)
    assert not AuditEntry.objects.exists()


def test_partial_bulk_failure_names_what_was_applied(help_desk_client, small, settings, monkeypatch):
    from sandbox import api

    settings.SEGMENT_MAX_RETRIES = 0
    emails = [f"bulk{i:03d}@partner.example" for i in range(150)]
    adds = []
    take_fault = api.faults.take_fault

    def second_add_fails(operation, known):
        """The first batch of 100 goes through; the second meets a server error."""
        if operation == "add_users_to_user_group":
            adds.append(operation)
            return "503" if len(adds) == 2 else None
        return take_fault(operation, known)

    monkeypatch.setattr(api.faults, "take_fault", second_add_fails)

    response = help_desk_client.post(url("members-add", small), {"emails": "\n".join(emails)})

    page = html(response)
    assert response.status_code == 422
    assert "only partly applied: applied bulk000@partner.example" in page
    assert "not applied bulk100@partner.example" in page
    assert Invite.objects.filter(group=small, email__startswith="bulk").count() == 100
    entry = AuditEntry.objects.get()
    assert entry.status == AuditEntry.Status.UNKNOWN and entry.resolution == "partly_applied"
    assert entry.details["applied_emails"] == emails[:100]
    assert entry.evidence["not_applied"] == emails[100:]


def test_audit_text_search_finds_an_email_inside_the_details(viewer_client, db):
    AuditEntry.objects.create(
        actor_username="hana",
        action="members.add",
        summary="hana added 3 members to G",
        details={"emails": ["needle@example.com"]},
    )
    AuditEntry.objects.create(
        actor_username="hana",
        action="members.add",
        summary="hana added 1 member to G",
        details={"emails": ["hay@example.com"]},
    )

    page = html(viewer_client.get(reverse("groups:audit"), {"q": "NEEDLE@example"}))

    assert "hana added 3 members" in page and "hana added 1 member" not in page


@pytest.fixture
def labelled(small):
    """A grant restricted by a label, as Segment returns it."""
    small.permissions.all().delete()
    owner = Role.objects.get(name="Workspace Owner")
    GroupPermission.objects.create(
        group=small,
        role=owner,
        resources=[{"id": "ws1", "type": "WORKSPACE", "labels": [{"key": "environment", "value": "prod"}]}],
    )
    return small


def test_labels_are_shown_on_the_detail_page(viewer_client, labelled):
    page = html(viewer_client.get(url("detail", labelled), {"live": "1"}))  # granted after the last sync

    assert '<span class="label-tag" title="This grant applies only where environment is prod">' in page


def test_edit_all_keeps_a_labelled_grant_and_previews_it_unchanged(admin_user_client, labelled):
    form = html(admin_user_client.get(url("permissions-edit", labelled)))
    data = _formset_data(form)
    assert data["rows-0-resource_ids"] == "ws1[environment=prod]"
    assert 'class="visually-hidden">Resource ids, row 2</label>' in form  # the blank row is labelled too

    preview = admin_user_client.post(url("permissions-edit", labelled), {**data, "preview": "1"})

    page = html(preview)
    assert preview.status_code == 200 and "Nothing would change." in page
    assert "Unchanged (1)" in page and "environment=prod" in page


def test_edit_all_shows_a_label_change_as_a_change_and_applies_it(admin_user_client, labelled):
    data = _formset_data(html(admin_user_client.get(url("permissions-edit", labelled))))
    data["rows-0-resource_ids"] = "ws1[environment=staging]"
    preview = admin_user_client.post(url("permissions-edit", labelled), {**data, "preview": "1"})
    page = html(preview)
    assert "Granted (1)" in page and "Revoked (1)" in page
    fingerprint = re.search(r'name="fingerprint" value="([0-9a-f]+)"', page).group(1)
    bea = administrator(username="bea")

    assert "Not found in this workspace: ws1 (Workspace)" in page  # the sandbox's workspace has another id
    admin_user_client.post(
        url("permissions-edit", labelled),
        {
            **data,
            "fingerprint": fingerprint,
            "submission_key": key(preview),
            "confirm": "1",
            "confirm_unknown": "on",
        },
    )
    admin_user_client.force_login(bea)  # the grant is privileged: a second Administrator applies it
    proposal = ChangeProposal.objects.get()
    admin_user_client.post(reverse("groups:proposal-decide", args=[labelled.id, proposal.pk, "approve"]))

    (grant,) = GroupPermission.objects.filter(group=labelled)
    assert grant.resources[0]["labels"] == [{"key": "environment", "value": "staging"}]
    entry = AuditEntry.objects.get(action="permissions.replace", status="succeeded")
    assert entry.details["added"][0]["resources"][0]["labels"] == [{"key": "environment", "value": "staging"}]


@pytest.mark.parametrize(
    ("ids", "message"),
    [
        ("ws1[environment]", "Labels are written key=value"),
        ("src1[environment=prod]", "Only WORKSPACE resources carry labels."),
    ],
)
def test_bad_labels_are_refused_next_to_the_field(admin_user_client, small, ids, message):
    form = html(admin_user_client.get(url("permissions-add", small)))
    role = re.search(r'<option value="(\w+)">Source Admin</option>', form).group(1)
    resource_type = "SOURCE" if ids.startswith("src") else "WORKSPACE"

    response = admin_user_client.post(
        url("permissions-add", small), {"role": role, "resource_type": resource_type, "resource_ids": ids}
    )

    assert response.status_code == 422 and message in html(response)
    assert AuditEntry.objects.get().status == "refused"


def test_replace_starts_from_the_current_members(help_desk_client, small):
    page = html(help_desk_client.get(url("members-replace", small)))

    for email in small.memberships.values_list("user__email", flat=True):
        assert email in page.split('name="emails"')[1].split("</textarea>")[0]


def test_replace_lists_who_is_unchanged(help_desk_client, small):
    keep = sorted(small.memberships.values_list("user__email", flat=True))[:2]

    preview = help_desk_client.post(url("members-replace", small), {"emails": ", ".join(keep)})

    unchanged = html(preview).split("Unchanged (2)")[1].split("</details>")[0]
    assert all(email in unchanged for email in keep)


def test_replace_preview_names_people_and_says_user_or_invite_from_the_mirror(help_desk_client, small):
    stays = small.memberships.order_by("user__email").select_related("user").first().user
    leaves = small.memberships.order_by("user__email").select_related("user").last().user
    elsewhere = WorkspaceUser.objects.exclude(memberships__group=small).first()
    invite = small.invites.first()
    emails = [stays.email, elsewhere.email, "never.seen@partner.example"]

    preview = html(help_desk_client.post(url("members-replace", small), {"emails": ", ".join(emails)}))

    added = preview.split("To add (2)")[1].split("</ul>")[0]
    removed = preview.split("To remove (")[1].split("</ul>")[0]
    unchanged = preview.split("Unchanged (1)")[1].split("</details>")[0]
    assert f'{stays.name} <span class="muted">{stays.email}</span>' in unchanged
    assert f'{leaves.name} <span class="muted">{leaves.email}</span>' in removed
    assert 'never.seen@partner.example <span class="badge">not seen in the workspace: invited</span>' in added
    assert f'{elsewhere.email} <span class="badge">workspace user</span>' in added
    if invite is not None:
        assert f'{invite.email} <span class="badge">pending invite</span>' in removed


def test_replace_can_empty_a_group_only_with_explicit_confirmation(help_desk_client, small):
    preview = help_desk_client.post(url("members-replace", small), {"emails": ""})
    page = html(preview)
    assert "this removes every member and invite" in page
    fingerprint = re.search(r'name="fingerprint" value="([0-9a-f]+)"', page).group(1)
    data = {"emails": "", "fingerprint": fingerprint, "submission_key": key(preview), "confirm": "1"}

    refused = help_desk_client.post(url("members-replace", small), data)
    assert refused.status_code == 422 and "Tick the box to confirm" in html(refused)
    assert small.memberships.exists()

    help_desk_client.post(
        url("members-replace", small), {**data, "submission_key": "f" * 32, "confirm_empty": "on"}
    )

    assert not small.memberships.exists() and not small.invites.exists()
    entry = AuditEntry.objects.get(action="members.replace", status="succeeded")
    assert entry.details["emails"] == [] and entry.details["to_remove"]


def test_the_detail_page_names_the_resources_it_grants(viewer_client, small):
    from sandbox.models import Resource

    grant = small.permissions.first()
    resource = grant.resources[0]
    name = Resource.objects.get(id=resource["id"]).name

    page = html(viewer_client.get(url("detail", small)))

    assert f'<span class="resource-name">{name}</span> <code>{resource["id"]}</code>' in page


def test_a_role_is_granted_on_resources_picked_by_name(admin_user_client, small):
    from sandbox.models import Resource

    source = Resource.objects.filter(type="SOURCE").order_by("name").first()
    page = admin_user_client.get(url("permissions-add", small))
    form = html(page)
    role = re.search(r'<option value="(\w+)">Source Read-only</option>', form).group(1)
    assert f"{source.name}</label>" in form

    response = admin_user_client.post(
        url("permissions-add", small),
        {
            "role": role,
            "resource_type": "SOURCE",
            "picked": [f"SOURCE:{source.id}"],
            "submission_key": key(page),
        },
    )

    assert response.status_code == 302
    assert GroupPermission.objects.filter(
        group=small, role_id=role, resources=[{"id": source.id, "type": "SOURCE"}]
    ).exists()
    entry = AuditEntry.objects.get(action="permissions.add", status="succeeded")
    assert entry.details["added"][0]["resources"][0]["name"] == source.name


def test_a_picked_resource_of_another_type_is_refused(admin_user_client, small):
    from sandbox.models import Resource

    space = Resource.objects.filter(type="SPACE").first()
    form = html(admin_user_client.get(url("permissions-add", small)))
    role = re.search(r'<option value="(\w+)">Source Read-only</option>', form).group(1)

    response = admin_user_client.post(
        url("permissions-add", small),
        {"role": role, "resource_type": "SOURCE", "picked": [f"SPACE:{space.id}"]},
    )

    assert response.status_code == 422 and "Pick resources of the type chosen above (Source)." in html(
        response
    )


def test_edit_all_names_roles_and_resources_and_offers_a_picker(admin_user_client, small):
    from sandbox.models import Resource

    grant = small.permissions.first()
    resource = grant.resources[0]
    name = Resource.objects.get(id=resource["id"]).name
    other = Resource.objects.exclude(id=resource["id"]).filter(type="SOURCE").order_by("name").first()

    page = html(admin_user_client.get(url("permissions-edit", small)))

    row = page.split(f'value="{grant.role.id}" selected>')[1].split("</tr>")[0]
    assert row.startswith(grant.role.name)  # the role by name
    assert f'<p class="helptext">{name}' in row  # the resources the row names, by name
    assert f"{other.name} <code>{other.id}</code>" in page.split("Find resource ids by name")[1]

    data = {
        "rows-TOTAL_FORMS": "1",
        "rows-INITIAL_FORMS": "0",
        "rows-0-role": grant.role.id,
        "rows-0-resource_type": resource["type"],
        "rows-0-resource_ids": resource["id"],
        "preview": "1",
    }
    preview = html(admin_user_client.post(url("permissions-edit", small), data))
    assert f'<span class="resource-name">{name}</span> <code>{resource["id"]}</code>' in preview
