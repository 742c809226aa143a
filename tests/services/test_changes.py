"""Mutating services: authorization, validation, one audit entry each, cache invalidation."""

import pytest
import requests
import responses

from groups_app.models import AuditEntry
from groups_app.segment import (
    NotFound,
    OutcomeUnknown,
    Permission,
    RateLimited,
    Resource,
    SegmentClient,
    Unavailable,
    ValidationFailed,
)
from groups_app.services.errors import (
    ChangeOutcomeUnknown,
    DuplicateSubmission,
    InvalidInput,
    NotAllowed,
    StaleChange,
)
from groups_app.services.manage import group_create, group_delete, group_rename
from groups_app.services.membership import (
    group_members_add,
    group_members_remove,
    group_members_replace,
    group_members_replace_preview,
)
from groups_app.services.permissions import (
    group_permissions_add,
    group_permissions_preview,
    group_permissions_replace,
)
from sandbox.faults import inject_fault
from sandbox.models import GroupPermission, Invite, Membership, Role, UserGroup, WorkspaceUser
from tests.conftest import API, TOKEN
from tests.factories import administrator, help_desk, viewer
from tests.payloads import envelope, error_envelope, pagination_payload, user_group_payload

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("known_sources")]

GROUP = "groupData000000000000000000001"


@pytest.fixture
def team(db):
    """A sandbox group with two users and one invite; a third workspace user outside it."""
    alice = WorkspaceUser.objects.create(name="Alice", email="alice@example.com")
    bob = WorkspaceUser.objects.create(name="Bob", email="bob@example.com")
    WorkspaceUser.objects.create(name="Carol", email="carol@example.com")
    Role.objects.create(id="roleOwner00000000000000000001", name="Workspace Owner")
    Role.objects.create(id="roleReader0000000000000000002", name="Source Read-only")
    group = UserGroup.objects.create(id=GROUP, name="Data Engineering")
    Membership.objects.create(group=group, user=alice)
    Membership.objects.create(group=group, user=bob)
    Invite.objects.create(group=group, email="newbie@example.com")
    return group


@pytest.fixture
def ada(db):
    return administrator(username="ada")


@pytest.fixture
def hana(db):
    return help_desk(username="hana")


def only_entry():
    (entry,) = AuditEntry.objects.all()
    return entry


def sandbox_emails():
    users = set(Membership.objects.filter(group_id=GROUP).values_list("user__email", flat=True))
    return users | set(Invite.objects.filter(group_id=GROUP).values_list("email", flat=True))


# -- add members -------------------------------------------------------------------------------------


def test_add_members_reports_users_invites_and_existing_and_audits(team, hana, enqueued):

    changed = group_members_add(
        actor=hana, group_id=GROUP, emails=["Carol@example.com", "stranger@example.org", "alice@example.com"]
    )
    result = changed.result
    assert changed.entry.action == "members.add" and changed.entry.status == "succeeded"

    assert result.added_users == ("carol@example.com",)
    assert result.invited == ("stranger@example.org",)
    assert result.already_members == ("alice@example.com",)
    assert result.message == (
        "Added 1 user, invited 1 person who is not yet a workspace user, 1 was already a member."
    )
    entry = only_entry()
    assert entry.status == AuditEntry.Status.SUCCEEDED and entry.completed_at
    assert entry.action == AuditEntry.Action.MEMBERS_ADD
    assert (
        entry.actor_username == "hana" and entry.group_name == "Data Engineering" and entry.group_id == GROUP
    )
    assert entry.summary == "hana added 2 members to Data Engineering"
    assert entry.details["added_users"] == ["carol@example.com"]
    assert entry.details["invited"] == ["stranger@example.org"]
    assert entry.details["already_members"] == ["alice@example.com"]
    # The worker reads the group the mirror does not hold yet; who was invited is known already
    # (the group's invites were read), so there is nothing to verify.
    assert enqueued() == [
        ("refresh_group", (GROUP,), {"trigger": f"members.add #{entry.pk}", "verify_emails": []})
    ]


def test_add_members_plural_message(team, hana):
    changed = group_members_add(actor=hana, group_id=GROUP, emails=["x1@example.org", "x2@example.org"])
    result = changed.result
    assert changed.entry.action == "members.add" and changed.entry.status == "succeeded"

    assert result.message == "Invited 2 people who are not yet workspace users."


@pytest.mark.parametrize(
    ("emails", "message"),
    [([], "at least one"), (["ok@example.com", "not-an-email"], "not-an-email is not an email address")],
)
def test_add_members_refuses_bad_input_before_sending(team, hana, emails, message):
    with pytest.raises(InvalidInput, match=message) as caught:
        group_members_add(actor=hana, group_id=GROUP, emails=emails)

    assert "emails" in caught.value.field_errors
    entry = only_entry()
    assert entry.status == AuditEntry.Status.REFUSED and message in entry.error
    assert entry.actor_username == "hana" and entry.group_id == GROUP
    assert sandbox_emails() == {"alice@example.com", "bob@example.com", "newbie@example.com"}


def test_add_members_respects_the_domain_allowlist(team, hana, settings):
    settings.ALLOWED_EMAIL_DOMAINS = ["example.com"]

    with pytest.raises(InvalidInput, match="outside the allowed domains"):
        group_members_add(actor=hana, group_id=GROUP, emails=["carol@example.com", "typo@exmaple.com"])

    assert "carol@example.com" not in sandbox_emails()


def test_add_members_refuses_more_than_the_limit(team, hana, settings):
    settings.MAX_EMAILS_PER_CHANGE = 2

    with pytest.raises(InvalidInput, match="At most 2"):
        group_members_add(actor=hana, group_id=GROUP, emails=["a@x.org", "b@x.org", "c@x.org"])


def test_viewer_may_not_add_members_and_the_refusal_is_audited(team):
    with pytest.raises(NotAllowed):
        group_members_add(actor=viewer(username="vera"), group_id=GROUP, emails=["carol@example.com"])

    entry = only_entry()
    assert entry.status == AuditEntry.Status.REFUSED and entry.actor_username == "vera"
    assert entry.error == "Your role does not allow this change."
    assert "carol@example.com" not in sandbox_emails()


def test_add_members_rate_limited_is_audited_as_failed(team, hana, settings, enqueued):
    settings.SEGMENT_MAX_RETRIES = 0
    inject_fault("add_users_to_user_group", "429")

    with pytest.raises(RateLimited):
        group_members_add(actor=hana, group_id=GROUP, emails=["carol@example.com"])

    entry = only_entry()
    assert entry.status == AuditEntry.Status.FAILED and entry.upstream_status == 429
    assert entry.error.startswith("RateLimited")
    assert [name for name, *_ in enqueued()] == ["refresh_group"]


@pytest.mark.parametrize("fault", ["500", "503"])
def test_add_members_server_error_is_unknown_then_read_back_as_not_applied(team, hana, settings, fault):
    settings.SEGMENT_MAX_RETRIES = 0
    inject_fault("add_users_to_user_group", fault)

    with pytest.raises(ChangeOutcomeUnknown, match="it was not applied; you can submit it again") as caught:
        group_members_add(actor=hana, group_id=GROUP, emails=["carol@example.com"])

    entry = only_entry()
    assert caught.value.entry == entry and caught.value.may_resubmit
    assert entry.status == AuditEntry.Status.UNKNOWN and entry.upstream_status == int(fault)
    assert entry.resolution == AuditEntry.Resolution.NOT_APPLIED
    assert entry.evidence["not_applied"] == ["carol@example.com"] and entry.evidence["read_at"]


def test_add_members_applied_but_reply_lost_is_read_back_as_applied(team, hana, settings):
    settings.SEGMENT_MAX_RETRIES = 0
    inject_fault("add_users_to_user_group", "applied-500")

    with pytest.raises(ChangeOutcomeUnknown, match="it was applied") as caught:
        group_members_add(actor=hana, group_id=GROUP, emails=["carol@example.com"], submission_key="lost")

    assert not caught.value.may_resubmit
    assert "carol@example.com" in sandbox_emails()
    entry = only_entry()
    assert entry.status == AuditEntry.Status.UNKNOWN and entry.resolution == AuditEntry.Resolution.APPLIED
    assert entry.evidence["applied"] == ["carol@example.com"]
    with pytest.raises(ChangeOutcomeUnknown, match="already submitted"):
        group_members_add(actor=hana, group_id=GROUP, emails=["carol@example.com"], submission_key="lost")
    assert AuditEntry.objects.filter(status=AuditEntry.Status.UNKNOWN).count() == 1


def test_add_members_timeout_is_unknown_and_never_resent(team, hana, settings):
    settings.SEGMENT_READ_TIMEOUT = 0.05
    settings.SANDBOX_HANG_SECONDS = 1
    inject_fault("add_users_to_user_group", "hang")

    with pytest.raises(ChangeOutcomeUnknown, match="it was applied"):
        group_members_add(actor=hana, group_id=GROUP, emails=["carol@example.com"])

    entry = only_entry()
    assert entry.status == AuditEntry.Status.UNKNOWN and "may or may not have been applied" in entry.error
    assert entry.resolution == AuditEntry.Resolution.APPLIED  # the sandbox performs a call it hung on
    assert "carol@example.com" in sandbox_emails()


@responses.activate
def test_add_members_connection_refused_before_sending_is_failed(hana, db):
    from urllib3.exceptions import NewConnectionError

    client = SegmentClient(API, TOKEN, max_retries=0)
    responses.get(f"{API}/groups/{GROUP}", json=envelope(userGroup=user_group_payload(id=GROUP)))
    responses.get(f"{API}/groups/{GROUP}/users", json=envelope(users=[], pagination=pagination_payload()))
    responses.get(f"{API}/groups/{GROUP}/invites", json=envelope(emails=[], pagination=pagination_payload()))
    refused = requests.ConnectionError(NewConnectionError(None, "Connection refused"))
    responses.post(f"{API}/groups/{GROUP}/users", body=refused)

    with pytest.raises(Unavailable) as caught:
        group_members_add(actor=hana, group_id=GROUP, emails=["a@example.com"], client=client)

    assert not isinstance(caught.value, OutcomeUnknown)
    entry = only_entry()
    assert entry.status == AuditEntry.Status.FAILED and entry.upstream_status is None
    assert "connection failed" in entry.error
    assert len([call for call in responses.calls if call.request.method == "POST"]) == 1


@responses.activate
def test_add_members_connection_reset_after_sending_is_unknown(hana, db):
    client = SegmentClient(API, TOKEN, max_retries=0)
    responses.get(f"{API}/groups/{GROUP}", json=envelope(userGroup=user_group_payload(id=GROUP)))
    responses.get(f"{API}/groups/{GROUP}/users", json=envelope(users=[], pagination=pagination_payload()))
    responses.get(f"{API}/groups/{GROUP}/invites", json=envelope(emails=[], pagination=pagination_payload()))
    responses.post(f"{API}/groups/{GROUP}/users", body=requests.ConnectionError("Connection reset by peer"))

    with pytest.raises(ChangeOutcomeUnknown, match="not applied"):
        group_members_add(actor=hana, group_id=GROUP, emails=["a@example.com"], client=client)

    entry = only_entry()
    assert entry.status == AuditEntry.Status.UNKNOWN and entry.resolution == AuditEntry.Resolution.NOT_APPLIED
    assert len([call for call in responses.calls if call.request.method == "POST"]) == 1


@responses.activate
def test_add_members_upstream_422_is_audited_with_the_field(hana, db):
    client = SegmentClient(API, TOKEN)
    responses.get(f"{API}/groups/{GROUP}", json=envelope(userGroup=user_group_payload(id=GROUP)))
    responses.get(f"{API}/groups/{GROUP}/users", json=envelope(users=[], pagination=pagination_payload()))
    responses.get(f"{API}/groups/{GROUP}/invites", json=envelope(emails=[], pagination=pagination_payload()))
    responses.post(
        f"{API}/groups/{GROUP}/users", status=422, json=error_envelope("Email bounced", field="emails.0")
    )

    with pytest.raises(ValidationFailed) as caught:
        group_members_add(actor=hana, group_id=GROUP, emails=["a@example.com"], client=client)

    assert caught.value.field_errors == {"emails.0": "Email bounced"}
    assert only_entry().upstream_status == 422


@responses.activate
def test_bulk_add_partial_failure_is_reported_per_email(hana, db):
    client = SegmentClient(API, TOKEN, max_retries=0)
    emails = [f"person{i:03d}@example.com" for i in range(150)]
    responses.get(f"{API}/groups/{GROUP}", json=envelope(userGroup=user_group_payload(id=GROUP)))
    responses.get(f"{API}/groups/{GROUP}/users", json=envelope(users=[], pagination=pagination_payload()))
    responses.get(f"{API}/groups/{GROUP}/invites", json=envelope(emails=[], pagination=pagination_payload()))
    with responses.RequestsMock(
        registry=responses.registries.OrderedRegistry, assert_all_requests_are_fired=False
    ) as mock:
        mock.get(f"{API}/groups/{GROUP}", json=envelope(userGroup=user_group_payload(id=GROUP)))
        mock.get(f"{API}/groups/{GROUP}/users", json=envelope(users=[], pagination=pagination_payload()))
        mock.get(f"{API}/groups/{GROUP}/invites", json=envelope(emails=[], pagination=pagination_payload()))
        mock.post(f"{API}/groups/{GROUP}/users", json=envelope(userGroup=user_group_payload(id=GROUP)))
        mock.post(f"{API}/groups/{GROUP}/users", status=503)
        # Reading back: the first batch is there, the second is not.
        mock.get(f"{API}/groups/{GROUP}/users", json=envelope(users=[], pagination=pagination_payload()))
        mock.get(
            f"{API}/groups/{GROUP}/invites",
            json=envelope(emails=emails[:100], pagination=pagination_payload()),
        )

        with pytest.raises(ChangeOutcomeUnknown, match="only partly applied") as caught:
            group_members_add(actor=hana, group_id=GROUP, emails=emails, client=client)

    assert caught.value.__cause__.completed_emails == tuple(emails[:100])
    entry = only_entry()
    assert entry.status == AuditEntry.Status.UNKNOWN
    assert entry.resolution == AuditEntry.Resolution.PARTLY_APPLIED
    assert entry.details["applied_emails"] == emails[:100]
    assert entry.details["unconfirmed_emails"] == emails[100:]
    assert entry.evidence["applied"] == emails[:100] and entry.evidence["not_applied"] == emails[100:]


def test_same_submission_is_not_applied_twice(team, hana):
    group_members_add(actor=hana, group_id=GROUP, emails=["carol@example.com"], submission_key="k1")

    with pytest.raises(DuplicateSubmission) as caught:
        group_members_add(actor=hana, group_id=GROUP, emails=["carol@example.com"], submission_key="k1")

    assert caught.value.entry.status == AuditEntry.Status.SUCCEEDED
    statuses = list(AuditEntry.objects.order_by("id").values_list("status", flat=True))
    assert statuses == [AuditEntry.Status.SUCCEEDED, AuditEntry.Status.REFUSED]


def test_a_failed_submission_may_be_retried(team, hana, settings):
    settings.SEGMENT_MAX_RETRIES = 0
    inject_fault("add_users_to_user_group", "429")
    with pytest.raises(RateLimited):
        group_members_add(actor=hana, group_id=GROUP, emails=["carol@example.com"], submission_key="k2")

    group_members_add(actor=hana, group_id=GROUP, emails=["carol@example.com"], submission_key="k2")

    assert list(AuditEntry.objects.order_by("id").values_list("status", flat=True)) == ["failed", "succeeded"]


def test_an_unknown_submission_is_never_resent_with_the_same_key(team, hana, settings):
    settings.SEGMENT_MAX_RETRIES = 0
    inject_fault("add_users_to_user_group", "503")
    with pytest.raises(ChangeOutcomeUnknown):
        group_members_add(actor=hana, group_id=GROUP, emails=["carol@example.com"], submission_key="k3")

    with pytest.raises(ChangeOutcomeUnknown, match=r"already submitted.*not applied") as caught:
        group_members_add(actor=hana, group_id=GROUP, emails=["carol@example.com"], submission_key="k3")

    assert caught.value.resubmitted and "carol@example.com" not in sandbox_emails()
    group_members_add(actor=hana, group_id=GROUP, emails=["carol@example.com"], submission_key="k4")
    assert "carol@example.com" in sandbox_emails()


# -- remove and replace ----------------------------------------------------------------------------------


def test_remove_members_audits_and_removes_users_and_invites(team, hana):
    group_members_remove(actor=hana, group_id=GROUP, emails=["ALICE@example.com", "newbie@example.com"])

    assert sandbox_emails() == {"bob@example.com"}
    entry = only_entry()
    assert entry.details["emails"] == ["alice@example.com", "newbie@example.com"]
    assert entry.summary == "hana removed 2 members from Data Engineering"


def test_remove_of_unknown_group_is_not_found_and_audited_as_failed_before_sending(team, hana):
    with pytest.raises(NotFound):
        group_members_remove(actor=hana, group_id="groupMissing", emails=["a@example.com"])

    entry = only_entry()
    assert entry.status == AuditEntry.Status.FAILED and entry.upstream_status == 404
    assert entry.group_id == "groupMissing"


def test_replace_preview_and_apply(team, hana):
    preview = group_members_replace_preview(group_id=GROUP, emails=["bob@example.com", "carol@example.com"])

    group_members_replace(
        actor=hana, group_id=GROUP, emails=list(preview.emails), fingerprint=preview.fingerprint
    )

    assert preview.to_add == ("carol@example.com",)
    assert preview.to_remove == ("alice@example.com", "newbie@example.com")
    assert preview.unchanged == ("bob@example.com",)
    assert sandbox_emails() == {"bob@example.com", "carol@example.com"}
    entry = only_entry()
    assert entry.details["to_remove"] == ["alice@example.com", "newbie@example.com"]
    assert entry.details["unchanged_count"] == 1


def test_replace_refuses_a_stale_preview_and_returns_the_new_one(team, hana):
    preview = group_members_replace_preview(group_id=GROUP, emails=["bob@example.com"])
    Invite.objects.create(group=team, email="late@example.com")

    with pytest.raises(StaleChange) as caught:
        group_members_replace(
            actor=hana, group_id=GROUP, emails=["bob@example.com"], fingerprint=preview.fingerprint
        )

    assert "late@example.com" in caught.value.preview.to_remove
    assert "late@example.com" in sandbox_emails()
    entry = only_entry()
    assert entry.status == AuditEntry.Status.REFUSED and "changed since the preview" in entry.error


# -- permissions ---------------------------------------------------------------------------------------


def test_add_permission_records_before_and_after(team, ada):
    permission = Permission("roleReader0000000000000000002", resources=(Resource("src1", "SOURCE"),))

    group_permissions_add(actor=ada, group_id=GROUP, permissions=[permission])

    entry = only_entry()
    assert entry.details["before"] == []
    assert entry.details["after"] == [
        {
            "roleId": "roleReader0000000000000000002",
            "roleName": "Source Read-only",
            "resources": [{"type": "SOURCE", "id": "src1", "labels": [], "name": "Source src1"}],
        }
    ]
    assert entry.summary == "ada granted Source Read-only to Data Engineering"


def test_a_resource_id_the_workspace_does_not_have_is_refused_unless_confirmed(team, ada):
    typo = Permission("roleReader0000000000000000002", resources=(Resource("scr1", "SOURCE"),))

    with pytest.raises(InvalidInput, match=r"Not found in this workspace: scr1 \(Source\)") as caught:
        group_permissions_add(actor=ada, group_id=GROUP, permissions=[typo])

    assert set(caught.value.field_errors) == {"resources", "confirm_unknown"}
    assert not GroupPermission.objects.filter(group_id=GROUP).exists()
    assert only_entry().status == AuditEntry.Status.REFUSED
    group_permissions_add(actor=ada, group_id=GROUP, permissions=[typo], confirm_unknown=True)
    assert GroupPermission.objects.filter(
        group_id=GROUP, resources=[{"id": "scr1", "type": "SOURCE"}]
    ).exists()


def test_help_desk_may_not_change_permissions(team, hana):
    with pytest.raises(NotAllowed):
        group_permissions_add(
            actor=hana, group_id=GROUP, permissions=[Permission("roleOwner00000000000000000001")]
        )


def test_add_permission_with_unknown_role_is_audited_as_failed(team, ada):
    with pytest.raises(ValidationFailed) as caught:
        group_permissions_add(
            actor=ada,
            group_id=GROUP,
            permissions=[Permission("roleGone", resources=(Resource("s", "SOURCE"),))],
        )

    assert "permissions.0.roleId" in caught.value.field_errors
    assert only_entry().status == AuditEntry.Status.FAILED


def test_replace_permissions_preview_apply_and_empty_confirmation(team, ada):
    GroupPermission.objects.create(
        group=team, role_id="roleOwner00000000000000000001", resources=[{"id": "ws", "type": "WORKSPACE"}]
    )
    wanted = [Permission("roleReader0000000000000000002", resources=(Resource("src1", "SOURCE"),))]
    preview = group_permissions_preview(group_id=GROUP, permissions=wanted)

    group_permissions_replace(actor=ada, group_id=GROUP, permissions=wanted, fingerprint=preview.fingerprint)
    emptied = group_permissions_preview(group_id=GROUP, permissions=[])
    with pytest.raises(InvalidInput, match="every permission"):
        group_permissions_replace(actor=ada, group_id=GROUP, permissions=[], fingerprint=emptied.fingerprint)
    group_permissions_replace(
        actor=ada, group_id=GROUP, permissions=[], fingerprint=emptied.fingerprint, confirm_empty=True
    )

    assert [p["roleName"] for p in preview.added] == ["Source Read-only"]
    assert [p["roleName"] for p in preview.removed] == ["Workspace Owner"]
    assert not GroupPermission.objects.exists()
    statuses = list(AuditEntry.objects.order_by("id").values_list("status", flat=True))
    assert statuses == ["succeeded", "refused", "succeeded"]


def test_replace_permissions_refuses_a_stale_preview(team, ada):
    preview = group_permissions_preview(group_id=GROUP, permissions=[])
    GroupPermission.objects.create(group=team, role_id="roleOwner00000000000000000001", resources=[])

    with pytest.raises(StaleChange):
        group_permissions_replace(
            actor=ada, group_id=GROUP, permissions=[], fingerprint=preview.fingerprint, confirm_empty=True
        )

    assert GroupPermission.objects.exists()


# -- groups -----------------------------------------------------------------------------------------------


def test_create_rename_delete_are_each_audited(team, ada, enqueued):
    created = group_create(actor=ada, name="  Growth ").result
    assert [args for _, args, _ in enqueued()] == [(created.id,)]  # the new group is read into the mirror
    group_rename(actor=ada, group_id=created.id, name="Growth Marketing")
    group_delete(actor=ada, group_id=created.id, confirm_name="Growth Marketing")

    entries = list(AuditEntry.objects.order_by("id"))
    assert [e.action for e in entries] == ["group.create", "group.rename", "group.delete"]
    assert all(e.group_id == created.id and e.status == "succeeded" for e in entries)
    assert entries[1].details == {"old_name": "Growth", "new_name": "Growth Marketing"}
    assert not UserGroup.objects.filter(pk=created.id).exists()


def test_delete_needs_the_exact_name(team, ada):
    with pytest.raises(InvalidInput, match="Type the group's name") as caught:
        group_delete(actor=ada, group_id=GROUP, confirm_name="data engineering")

    assert "confirm_name" in caught.value.field_errors
    assert UserGroup.objects.filter(pk=GROUP).exists()
    assert only_entry().status == AuditEntry.Status.REFUSED


def test_create_with_a_taken_name_is_audited_as_failed(team, ada):
    with pytest.raises(ValidationFailed) as caught:
        group_create(actor=ada, name="Data Engineering")

    assert "name" in caught.value.field_errors
    assert only_entry().status == AuditEntry.Status.FAILED


def test_help_desk_may_not_manage_groups(team, hana):
    with pytest.raises(NotAllowed):
        group_create(actor=hana, name="Nope")
    with pytest.raises(NotAllowed):
        group_delete(actor=hana, group_id=GROUP, confirm_name="Data Engineering")


FAILING_ACTIONS = [
    (
        "add_users_to_user_group",
        lambda actor: group_members_add(actor=actor, group_id=GROUP, emails=["carol@example.com"]),
    ),
    (
        "remove_users_from_user_group",
        lambda actor: group_members_remove(actor=actor, group_id=GROUP, emails=["bob@example.com"]),
    ),
    (
        "replace_users_in_user_group",
        lambda actor: group_members_replace(
            actor=actor,
            group_id=GROUP,
            emails=["bob@example.com"],
            fingerprint=group_members_replace_preview(group_id=GROUP, emails=["bob@example.com"]).fingerprint,
        ),
    ),
    (
        "add_permissions_to_user_group",
        lambda actor: group_permissions_add(
            actor=actor,
            group_id=GROUP,
            permissions=[
                Permission("roleReader0000000000000000002", resources=(Resource("src9", "SOURCE"),))
            ],
        ),
    ),
    (
        "replace_permissions_for_user_group",
        lambda actor: group_permissions_replace(
            actor=actor,
            group_id=GROUP,
            permissions=[],
            confirm_empty=True,
            fingerprint=group_permissions_preview(group_id=GROUP, permissions=[]).fingerprint,
        ),
    ),
    ("create_user_group", lambda actor: group_create(actor=actor, name="New")),
    ("update_user_group", lambda actor: group_rename(actor=actor, group_id=GROUP, name="New")),
    (
        "delete_user_group",
        lambda actor: group_delete(actor=actor, group_id=GROUP, confirm_name="Data Engineering"),
    ),
]


@pytest.fixture
def granting_team(team):
    """The team with one (not privileged) grant, so that replacing permissions is a real change."""
    GroupPermission.objects.create(
        group=team, role_id="roleReader0000000000000000002", resources=[{"id": "src0", "type": "SOURCE"}]
    )
    return team


@pytest.mark.parametrize(("operation", "act"), FAILING_ACTIONS, ids=[op for op, _ in FAILING_ACTIONS])
def test_every_action_audits_a_rate_limit_as_failed_and_has_the_group_refreshed(
    granting_team, ada, settings, operation, act, enqueued
):
    settings.SEGMENT_MAX_RETRIES = 0
    inject_fault(operation, "429")

    with pytest.raises(RateLimited):
        act(ada)

    entry = only_entry()
    assert entry.status == AuditEntry.Status.FAILED and entry.upstream_status == 429
    assert entry.completed_at is not None
    # Whatever the outcome, a sent change has its group re-read (a failed create has no group yet).
    expected = [] if operation == "create_user_group" else [("refresh_group", (GROUP,))]
    assert [(name, args) for name, args, _ in enqueued()] == expected


@pytest.mark.parametrize(("operation", "act"), FAILING_ACTIONS, ids=[op for op, _ in FAILING_ACTIONS])
@pytest.mark.parametrize(
    ("fault", "resolution"),
    [("503", AuditEntry.Resolution.NOT_APPLIED), ("applied-500", AuditEntry.Resolution.APPLIED)],
)
def test_every_action_reads_back_an_unknown_outcome(
    granting_team, ada, settings, operation, act, fault, resolution
):
    settings.SEGMENT_MAX_RETRIES = 0
    inject_fault(operation, fault)

    with pytest.raises(ChangeOutcomeUnknown):
        act(ada)

    entry = only_entry()
    assert entry.status == AuditEntry.Status.UNKNOWN and entry.upstream_status in (500, 503)
    assert entry.resolution == resolution and entry.resolved_at and entry.evidence["read_at"]


@pytest.mark.parametrize(("operation", "act"), FAILING_ACTIONS, ids=[op for op, _ in FAILING_ACTIONS])
def test_every_action_audits_its_success(team, ada, operation, act):
    act(ada)

    entry = only_entry()
    assert entry.status == AuditEntry.Status.SUCCEEDED and entry.actor_username == "ada"
    assert entry.group_id
