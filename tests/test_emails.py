"""Emails in and out: what people paste from mail clients is accepted, nothing is rewritten, and
the time a paste takes grows with its length only (timings: `manage.py benchmark_emails`); the
mail Group Admin sends links to SITE_URL and tells drift in names people read."""

import io

import pytest
from django import forms
from django.core import mail

from groups_app.emails import PROBLEMS_LISTED, email_problems, parse_emails, split_entries
from groups_app.forms import AddMembersForm, email_list_candidates


@pytest.mark.parametrize(
    ("text", "emails"),
    [
        ("Lovelace, Ada <ada@example.com>", ("ada@example.com",)),
        ('"Hopper, Grace" <grace@navy.example>; bob@x.org', ("grace@navy.example", "bob@x.org")),
        ("Ada Lovelace <Ada@Example.com>, Bob <bob@x.org>", ("ada@example.com", "bob@x.org")),
        (
            "a@x.org\nb@x.org;c@x.org  d@x.org,\t e@x.org",
            ("a@x.org", "b@x.org", "c@x.org", "d@x.org", "e@x.org"),
        ),
        ("a@x.org, A@X.ORG", ("a@x.org",)),
        ('"O\\"Brien" <ob@x.org>', ("ob@x.org",)),
        ('"Smith; <boss>" <js@x.org>', ("js@x.org",)),  # anything goes inside quotes
        ("Lovelace, Ada <ada@example.com>\nHopper <grace@x.org>", ("ada@example.com", "grace@x.org")),
    ],
)
def test_what_mail_clients_and_directories_paste_is_read(text, emails):
    parsed = parse_emails(text)

    assert parsed.emails == emails and parsed.problems == ()


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("<script>alert(1)</script>@evil.com", "<script> is not an email address (it has no @)."),
        ("Ada <>", "Ada <> has no address between its angle brackets."),
        ("bad@", "bad@ is not a valid email address."),
        ("@evil.com", "@evil.com is not a valid email address."),
        ("lovelace", "lovelace is not an email address (it has no @)."),
        ("Ada <ada@x.org", "Ada is not an email address (it has no @)."),  # no closing bracket
        ('"Ada <ada@x.org>', '"Ada is not an email address (it has no @).'),  # an unclosed quote
    ],
)
def test_what_is_not_an_address_at_all_is_refused_with_its_reason_and_never_rewritten(text, problem):
    parsed = parse_emails(text)

    assert any(problem in message for message in parsed.problems), parsed.problems
    assert not any(email.endswith("@evil.com") for email in parsed.emails)


def test_the_script_tag_paste_adds_no_address_at_all():
    assert parse_emails("<script>alert(1)</script>@evil.com").emails == ()


@pytest.mark.parametrize(
    ("email", "problem"),
    [
        ("a" * 65 + "@x.org", "the part before @ has more than 64 characters"),
        ("a@" + "b" * 250 + ".org", "at most 254 characters"),
        ("a..b@x.org", "a..b@x.org is not a valid email address."),
        ("ada@ex\u0430mple.com", "mixes alphabets"),  # a Cyrillic a (U+0430)
    ],
)
def test_an_address_shaped_entry_is_left_to_the_service_which_says_why_it_is_unusable(email, problem):
    """Parsing only splits; the services check each address (email_problems) for every door."""
    assert parse_emails(email).emails == (email.lower(),)
    assert any(problem in message for message in email_problems([email]))


def test_the_allowed_domains_are_checked_without_case(settings):
    settings.ALLOWED_EMAIL_DOMAINS = ["acme.example"]

    assert email_problems(["ada@ACME.example"]) == []
    assert email_problems(["ada@evil.example"]) == [
        "ada@evil.example is outside the allowed domains (acme.example)."
    ]


# -- links and drift in the mail Group Admin sends ----------------------------------------------


@pytest.fixture
def owner_granted_outside(db, settings):
    """A workspace synced once; then, outside Group Admin, Workspace Owner granted to a group,
    one of its grants revoked and an email added; then the worker's sync (no request: no address)."""
    from django.core.management import call_command

    from groups_app.segment import Permission, Resource
    from groups_app.services.mirror.sync import sync_workspace
    from groups_app.services.segment_client import get_client
    from sandbox.models import Resource as SandboxResource
    from sandbox.models import Role, UserGroup
    from tests.factories import administrator

    settings.SITE_URL = "https://groups.example.com"
    settings.TIME_ZONE = "Europe/Paris"
    administrator(username="ada", email="ada@example.com")
    call_command("seed_sandbox", "--groups", "4", "--users", "450", stdout=io.StringIO())
    sync_workspace(trigger="test")
    group = next(g for g in UserGroup.objects.all() if "<" not in g.name and g.permissions.exists())
    client = get_client()
    current = client.get_user_group(group.id).permissions
    owner = Role.objects.get(name="Workspace Owner")
    workspace = SandboxResource.objects.get(type="WORKSPACE")
    client.replace_permissions_for_user_group(
        group.id, [*current[1:], Permission(owner.id, resources=(Resource(workspace.id, "WORKSPACE"),))]
    )
    client.add_users_to_user_group(group.id, ["mallory@elsewhere.example"])
    mail.outbox.clear()
    run = sync_workspace(trigger="schedule")
    return {"group": group, "revoked": current[0], "workspace": workspace, "run": run}


def test_the_drift_mail_calls_out_a_privileged_grant_with_names_and_links_to_site_url(owner_granted_outside):
    from groups_app.models import AuditEntry

    (message,) = mail.outbox
    entry = AuditEntry.objects.get(action="observed")
    group, run = owner_granted_outside["group"], owner_granted_outside["run"]
    body = message.body

    assert message.to == ["ada@example.com"]
    assert (
        message.subject
        == "Workspace Owner granted outside Group Admin (1 change observed outside Group Admin)"
    )
    assert "PRIVILEGED: Workspace Owner granted outside Group Admin" in body
    assert f"- Observed outside Group Admin in {group.name}: granted Workspace Owner" in body
    assert (
        f"  Granted: Workspace Owner on WORKSPACE Acme Corp ({owner_granted_outside['workspace'].id})" in body
    )
    assert f"  Revoked: {owner_granted_outside['revoked'].role_name} on " in body
    assert "  Added: mallory@elsewhere.example" in body
    assert f"  Sync #{run.pk}: https://groups.example.com/admin/groups_app/syncrun/{run.pk}/change/" in body
    assert f"  https://groups.example.com/audit/{entry.pk}/" in body
    assert "127.0.0.1" not in body


def test_the_drift_mail_gives_the_readings_in_the_configured_time_zone(owner_granted_outside):
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from groups_app.models import AuditEntry

    details = AuditEntry.objects.get(action="observed").details
    paris = ZoneInfo("Europe/Paris")
    earlier, found = (
        datetime.fromisoformat(details[name]).astimezone(paris) for name in ("previous_reading", "reading")
    )

    (message,) = mail.outbox

    assert (
        f"Between the readings of {earlier:%Y-%m-%d %H:%M:%S} CET and {found:%Y-%m-%d %H:%M:%S} CET"
        in message.body
    )


def test_mail_links_use_site_url_rather_than_the_requests_address(db, settings):
    from groups_app.services.approvals.access_requests import access_request_file
    from groups_app.services.audit import RequestOrigin, origin_var
    from sandbox.models import UserGroup
    from tests.factories import help_desk, viewer

    settings.SITE_URL = "https://groups.example.com"
    help_desk(username="hana", email="hana@example.com")
    group = UserGroup.objects.create(name="Team")
    token = origin_var.set(RequestOrigin(base_url="http://127.0.0.1:8000"))
    try:
        access_request_file(
            actor=viewer(username="vera", email="vera@example.com"), group_id=group.id, justification="j"
        )
    finally:
        origin_var.reset(token)

    (message,) = mail.outbox
    assert "https://groups.example.com/requests/" in message.body and "127.0.0.1" not in message.body


def test_only_the_first_problems_are_listed_and_the_rest_counted():
    parsed = parse_emails(" ".join(f"nobody{n}" for n in range(PROBLEMS_LISTED + 5)))

    assert len(parsed.problems) == PROBLEMS_LISTED + 1
    assert parsed.problems[-1] == "… and 5 more entries that are not addresses."


ADVERSARIAL = {
    # Each used to make the entry pattern re-read the rest of the text for every entry.
    "commas": "a, " * (256 * 1024 // 3),
    "names without brackets": "Ada Lovelace, " * (256 * 1024 // 14),
    "unclosed quotes": '"a, ' * (256 * 1024 // 4),
    "unclosed brackets": "a <" * (256 * 1024 // 3),
    "escapes": '"\\' * (256 * 1024 // 2),
}


@pytest.mark.parametrize("name", ADVERSARIAL)
def test_a_256_kib_adversarial_paste_is_split_entry_by_entry(name):
    text = ADVERSARIAL[name]

    entries = split_entries(text)

    assert entries  # it completes, and every byte belongs to an entry or a separator
    assert sum(len(raw) for raw, _ in entries) <= len(text)


def test_a_32_kib_paste_of_addresses_reads_every_address():
    emails = [f"user{n:05d}@example.com" for n in range(1500)]
    text = ", ".join(emails)
    assert len(text) >= 32 * 1024

    assert parse_emails(text).emails == tuple(emails)


def test_a_256_kib_paste_of_named_entries_reads_every_address():
    emails = [f"person{n:05d}@example.com" for n in range(5000)]
    text = "\n".join(f'"Person, No. {n}" <{email}>' for n, email in enumerate(emails))
    assert 200 * 1024 <= len(text.encode()) <= 256 * 1024

    assert parse_emails(text).emails == tuple(emails)


def test_a_paste_over_the_size_limit_is_refused_with_the_limit_named(settings):
    settings.MAX_EMAIL_LIST_BYTES = 1024
    text = "ada@example.com\n" * 100  # 1,600 bytes

    with pytest.raises(forms.ValidationError) as refused:
        email_list_candidates(text)

    assert refused.value.messages == [
        "This list is 2 KiB; at most 1 KiB of text (and 1,000 emails) can be changed at once. "
        "Split it into several changes."
    ]


def test_the_form_shows_the_size_limit_next_to_the_field():
    text = "ada@example.com, " * (300 * 1024 // 17)

    form = AddMembersForm({"emails": text})

    assert not form.is_valid()
    assert "at most 256 KiB of text" in form.errors["emails"][0]


def test_the_form_only_splits_and_leaves_counts_and_domains_to_the_service(settings):
    settings.ALLOWED_EMAIL_DOMAINS = ["acme.example"]
    settings.MAX_EMAILS_PER_CHANGE = 1

    form = AddMembersForm({"emails": "a@elsewhere.example, b@elsewhere.example"})

    assert form.is_valid(), form.errors
    assert form.cleaned_data["emails"] == ["a@elsewhere.example", "b@elsewhere.example"]


def test_a_nul_character_in_a_paste_is_refused_next_to_the_field():
    form = AddMembersForm({"emails": "ada@example.com\x00, bob@example.com"})

    assert not form.is_valid()
    assert form.errors["emails"] == ["Null characters are not allowed."]


def test_a_reason_quotes_a_long_entry_cut_short():
    entry = "x" * 5000

    (problem,) = parse_emails(entry).problems
    (too_long,) = email_problems(["a@" + "b" * 5000 + ".org"])

    assert problem == "x" * 79 + "… is not an email address (it has no @)."
    assert len(too_long) < 200 and "at most 254 characters" in too_long
