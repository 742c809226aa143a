"""Emails in and out: what people paste from mail clients is read without rewriting anything,
and the mail Group Admin sends links to SITE_URL and tells drift in names people read."""

import io

import pytest
from django.core import mail

from groups_app.emails import email_problems, parse_emails


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
        ("lovelace", "lovelace is not an email address (it has no @)."),
        ("a" * 65 + "@x.org", "the part before @ has more than 64 characters"),
        ("a@" + "b" * 250 + ".org", "at most 254 characters"),
    ],
)
def test_what_is_not_an_address_is_refused_with_its_reason_and_never_rewritten(text, problem):
    parsed = parse_emails(text)

    assert any(problem in message for message in parsed.problems), parsed.problems
    assert not any(email.endswith("@evil.com") for email in parsed.emails)


def test_the_script_tag_paste_adds_no_address_at_all():
    assert parse_emails("<script>alert(1)</script>@evil.com").emails == ()


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
