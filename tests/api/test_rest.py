"""The REST API: tokens and scopes, reads, changes through the same pipeline, problem details."""

import json
from datetime import timedelta
from unittest import mock

import pytest
from django.utils import timezone
from openapi_spec_validator import validate

from groups_app.models import AccessRequest, ApiToken, AuditEntry
from groups_app.segment import SegmentClient
from groups_app.services.mirror.sync import sync_workspace
from sandbox.faults import inject_fault
from sandbox.models import GroupPermission, Invite, Membership, Role, UserGroup, WorkspaceUser
from tests.api.conftest import bearer

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"


def body(response):
    return json.loads(response.content)


# -- authentication --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [None, "Bearer", "Bearer gat_not-a-token", "Basic dXNlcjpwYXNz", "Bearer " + "gat_" + "x" * 5000],
)
def test_calls_without_a_valid_token_get_401_problem(client, header):
    extra = {"HTTP_AUTHORIZATION": header} if header else {}

    response = client.get("/api/v1/groups", **extra)

    assert response.status_code == 401
    assert response["Content-Type"] == PROBLEM
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert body(response)["status"] == 401


def test_a_session_cookie_is_not_a_token(admin_user_client):
    assert admin_user_client.get("/api/v1/groups").status_code == 401


def test_revoked_and_expired_tokens_are_refused(client, ada, make_token):

    secret = make_token(ada, "read")
    assert client.get("/api/v1/groups", **bearer(secret)).status_code == 200

    ApiToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert client.get("/api/v1/groups", **bearer(secret)).status_code == 401

    ApiToken.objects.update(expires_at=None, revoked_at=timezone.now())
    assert client.get("/api/v1/groups", **bearer(secret)).status_code == 401


def test_an_inactive_account_cannot_use_its_token(client, ada, make_token):
    secret = make_token(ada, "read")
    ada.is_active = False
    ada.save()

    assert client.get("/api/v1/groups", **bearer(secret)).status_code == 401


def test_token_records_its_last_use(client, ada, make_token):

    secret = make_token(ada, "read")
    client.get("/api/v1/groups", **bearer(secret))

    assert ApiToken.objects.get().last_used_at is not None


def test_calls_past_the_rate_limit_get_429_with_retry_after(client, ada, make_token, settings):
    settings.API_RATE_LIMIT_PER_MINUTE = 3
    secret = make_token(ada, "read")
    codes = [client.get("/api/v1/groups", **bearer(secret)).status_code for _ in range(4)]

    assert codes == [200, 200, 200, 429]
    response = client.get("/api/v1/groups", **bearer(secret))
    assert response["Content-Type"] == PROBLEM
    assert 1 <= int(response["Retry-After"]) <= 60
    # Another token has its own allowance.
    assert client.get("/api/v1/groups", **bearer(make_token(ada, "read", name="other"))).status_code == 200


# -- reads -----------------------------------------------------------------------------------


def test_list_groups_from_the_mirror_with_as_of(client, vera, make_token, team):
    response = client.get(
        "/api/v1/groups", {"q": team.name[:4], "sort": "members"}, **bearer(make_token(vera, "read"))
    )

    assert response.status_code == 200
    data = body(response)
    assert data["as_of"] is not None
    assert team.id in [row["id"] for row in data["items"]]
    assert response["Cache-Control"].startswith("no-store") or "no-store" in response["Cache-Control"]


def test_list_groups_refuses_a_bad_sort_with_a_field_error(client, vera, make_token, demo_workspace):
    response = client.get(
        "/api/v1/groups", {"sort": "evil", "page_size": 5000}, **bearer(make_token(vera, "read"))
    )

    assert response.status_code == 422
    assert response["Content-Type"] == PROBLEM
    assert set(body(response)["errors"]) == {"sort", "page_size"}


def test_get_group_is_live_with_counts_and_names(client, vera, make_token, team):
    response = client.get(f"/api/v1/groups/{team.id}", **bearer(make_token(vera, "read")))

    data = body(response)
    assert response.status_code == 200
    assert data["name"] == team.name
    assert data["user_count"] == team.memberships.count()
    assert data["invite_count"] == team.invites.count()
    for permission in data["permissions"]:
        assert permission["role_name"]


def test_unknown_group_is_a_404_problem(client, vera, make_token, demo_workspace):
    secret = make_token(vera, "read")
    assert client.get("/api/v1/groups/nosuchgroup", **bearer(secret)).status_code == 404
    response = client.get("/api/v1/groups/bad-id!", **bearer(secret))
    assert response.status_code == 404
    assert response["Content-Type"] == PROBLEM


def test_users_and_invites_are_cursor_pages(client, vera, make_token, demo_workspace):
    group = demo_workspace["All Employees"]
    secret = make_token(vera, "read")

    first = body(client.get(f"/api/v1/groups/{group.id}/users", {"count": 200}, **bearer(secret)))
    second = body(
        client.get(
            f"/api/v1/groups/{group.id}/users",
            {"count": 200, "cursor": first["next_cursor"]},
            **bearer(secret),
        )
    )
    invites = body(client.get(f"/api/v1/groups/{group.id}/invites", **bearer(secret)))

    assert len(first["items"]) == 200 and first["next_cursor"]
    assert not {u["email"] for u in first["items"]} & {u["email"] for u in second["items"]}
    assert {i["email"] for i in invites["items"]} <= set(group.invites.values_list("email", flat=True))


def test_person_lookup_lists_groups_and_grants(client, vera, make_token, team):
    member = team.memberships.select_related("user").first().user

    response = client.post(
        "/api/v1/people/lookup",
        {"email": member.email.upper()},
        content_type="application/json",
        **bearer(make_token(vera, "read")),
    )

    data = body(response)
    assert response.status_code == 200
    assert team.id in [g["id"] for g in data["groups"]]


def test_person_lookup_refuses_what_is_not_an_email(client, vera, make_token, demo_workspace):
    response = client.post(
        "/api/v1/people/lookup",
        {"email": "nobody at example"},
        content_type="application/json",
        **bearer(make_token(vera, "read")),
    )

    assert response.status_code == 422
    assert "email" in body(response)["errors"]


@pytest.mark.parametrize(
    ("method", "path", "data"),
    [
        ("get", "/api/v1/audit", {"text": "a\x00b"}),
        ("get", "/api/v1/groups", {"q": "\x00"}),
        ("post", "/api/v1/people/lookup", '{"email": "a\\u0000@example.com"}'),
    ],
)
def test_nul_characters_are_refused_before_anything_reads_them(client, vera, make_token, method, path, data):
    call = getattr(client, method)
    extra = {"content_type": "application/json"} if method == "post" else {}

    response = call(path, data, **extra, **bearer(make_token(vera, "read")))

    assert response.status_code == 422
    assert response["Content-Type"] == PROBLEM


# -- changes ---------------------------------------------------------------------------------


def test_add_member_reaches_segment_once_and_is_audited_via_the_token(client, ada, make_token, team):
    secret = make_token(ada, "change", name="deploy")
    newcomer = WorkspaceUser.objects.exclude(memberships__group=team).first()

    with mock.patch.object(
        SegmentClient,
        "add_users_to_user_group",
        autospec=True,
        side_effect=SegmentClient.add_users_to_user_group,
    ) as sent:
        response = client.post(
            f"/api/v1/groups/{team.id}/members",
            {"emails": [newcomer.email, "brand-new@example.com"]},
            content_type="application/json",
            **bearer(secret),
        )

    data = body(response)
    assert response.status_code == 200, data
    assert data["outcome"] == "succeeded"
    assert data["added"] == [newcomer.email]
    assert data["invited"] == ["brand-new@example.com"]
    assert sent.call_count == 1
    assert Membership.objects.filter(group=team, user=newcomer).exists()
    assert Invite.objects.filter(group=team, email="brand-new@example.com").exists()
    entry = AuditEntry.objects.get(pk=data["audit_entry"])
    assert entry.actor_username == "ada"
    assert entry.via == "API token deploy"
    assert entry.status == AuditEntry.Status.SUCCEEDED


def test_an_addition_until_a_day_is_time_bound_and_a_past_day_is_refused(client, ada, make_token, team):
    from datetime import timedelta

    from django.utils import timezone

    from groups_app.models import AccessRequest

    secret = make_token(ada, "change", name="deploy")
    ends = timezone.localdate() + timedelta(days=3)

    response = client.post(
        f"/api/v1/groups/{team.id}/members",
        {"emails": ["temp@example.com"], "until": ends.isoformat()},
        content_type="application/json",
        **bearer(secret),
    )
    past = client.post(
        f"/api/v1/groups/{team.id}/members",
        {"emails": ["late@example.com"], "until": "2020-01-01"},
        content_type="application/json",
        **bearer(secret),
    )

    assert response.status_code == 200, body(response)
    assert AccessRequest.objects.get(group_id=team.id, email="temp@example.com").needed_until == ends
    assert past.status_code in (400, 422) and past["Content-Type"] == PROBLEM
    assert not Invite.objects.filter(group=team, email="late@example.com").exists()


def test_already_members_are_named(client, ada, make_token, team):
    member = team.memberships.select_related("user").first().user

    response = client.post(
        f"/api/v1/groups/{team.id}/members",
        {"emails": [member.email]},
        content_type="application/json",
        **bearer(make_token(ada)),
    )

    assert body(response)["already_members"] == [member.email]


def test_an_idempotency_key_sends_a_change_once(client, ada, make_token, team):
    secret = make_token(ada)
    call = dict(
        path=f"/api/v1/groups/{team.id}/members",
        data={"emails": ["once@example.com"]},
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY="ticket-1234",
        **bearer(secret),
    )

    first = client.post(**call)
    again = client.post(**call)

    assert first.status_code == 200
    assert again.status_code == 409
    assert body(again)["audit_entry"] == body(first)["audit_entry"]
    statuses = AuditEntry.objects.filter(action=AuditEntry.Action.MEMBERS_ADD).values_list(
        "status", flat=True
    )
    assert sorted(statuses) == ["refused", "succeeded"]  # the repeat is on record, and was not sent


def test_bad_emails_are_refused_by_field_and_audited(client, ada, make_token, team):
    response = client.post(
        f"/api/v1/groups/{team.id}/members",
        {"emails": ["not an address"]},
        content_type="application/json",
        **bearer(make_token(ada)),
    )

    data = body(response)
    assert response.status_code == 422
    assert data["outcome"] == "refused"
    assert "emails" in data["errors"]
    assert AuditEntry.objects.get(pk=data["audit_entry"]).status == AuditEntry.Status.REFUSED


def test_adding_oneself_is_refused_by_the_rule_book(client, hana, make_token, team):
    response = client.post(
        f"/api/v1/groups/{team.id}/members",
        {"emails": ["hana@example.com"]},
        content_type="application/json",
        **bearer(make_token(hana)),
    )

    data = body(response)
    assert response.status_code == 403
    assert data["outcome"] == "refused"
    assert data["rule"] == "self_change"
    assert AuditEntry.objects.get(pk=data["audit_entry"]).via == "API token change-bot"


def test_a_viewers_change_token_is_still_refused_by_its_role(client, vera, make_token, team):
    response = client.post(
        f"/api/v1/groups/{team.id}/members",
        {"emails": ["x@example.com"]},
        content_type="application/json",
        **bearer(make_token(vera, "change")),
    )

    assert response.status_code == 403
    assert body(response)["outcome"] == "refused"


def test_remove_members(client, ada, make_token, team):
    member = team.memberships.select_related("user").first().user

    response = client.post(
        f"/api/v1/groups/{team.id}/members/remove",
        {"emails": [member.email]},
        content_type="application/json",
        **bearer(make_token(ada)),
    )

    assert response.status_code == 200, body(response)
    assert body(response)["removed"] == [member.email]
    assert not Membership.objects.filter(group=team, user=member).exists()


def test_a_change_that_segment_refuses_names_the_failed_outcome(client, ada, make_token, team):
    inject_fault("add_users_to_user_group", "429", 5)

    response = client.post(
        f"/api/v1/groups/{team.id}/members",
        {"emails": ["later@example.com"]},
        content_type="application/json",
        **bearer(make_token(ada)),
    )

    data = body(response)
    assert response.status_code == 429
    assert "Retry-After" in response
    assert data["outcome"] == "failed"
    assert AuditEntry.objects.get(pk=data["audit_entry"]).status == AuditEntry.Status.FAILED


def test_a_change_segment_does_not_confirm_is_unknown_and_read_back(client, ada, make_token, team):
    inject_fault("add_users_to_user_group", "applied-500", 1)

    response = client.post(
        f"/api/v1/groups/{team.id}/members",
        {"emails": ["lost@example.com"]},
        content_type="application/json",
        **bearer(make_token(ada)),
    )

    data = body(response)
    assert data["outcome"] == "unknown"
    assert data["resolution"] == "applied"
    assert AuditEntry.objects.get(pk=data["audit_entry"]).status == AuditEntry.Status.UNKNOWN


MUTATIONS = [
    ("/api/v1/groups/{group}/members", {"emails": ["x@example.com"]}),
    ("/api/v1/groups/{group}/members/remove", {"emails": ["x@example.com"]}),
    ("/api/v1/access-requests", {"group_id": "{group}", "justification": "because"}),
    ("/api/v1/access-requests/{request}/approve", {}),
    ("/api/v1/access-requests/{request}/deny", {"reason": "no"}),
]


@pytest.mark.parametrize(("path", "payload"), MUTATIONS)
def test_a_read_token_is_refused_on_every_change_and_nothing_is_sent(
    client, ada, make_token, team, path, payload
):
    access_request = AccessRequest.objects.create(
        group_id=team.id,
        group_name=team.name,
        email="someone@example.com",
        requester_username="x",
        justification="j",
    )
    path = path.format(group=team.id, request=access_request.pk)
    payload = json.loads(json.dumps(payload).replace("{group}", team.id))

    with mock.patch("requests.Session.send") as sent:
        response = client.post(
            path, payload, content_type="application/json", **bearer(make_token(ada, "read"))
        )

    data = body(response)
    assert response.status_code == 403, data
    assert data["outcome"] == "refused"
    assert data["needed_scope"] in {"request", "change"}
    sent.assert_not_called()
    entry = AuditEntry.objects.get(pk=data["audit_entry"])
    assert entry.status == AuditEntry.Status.REFUSED
    assert entry.via == "API token read-bot"
    access_request.refresh_from_db()
    assert access_request.status == AccessRequest.Status.PENDING
    assert not AccessRequest.objects.exclude(pk=access_request.pk).exists()


def test_a_request_token_files_but_cannot_change_members(client, hana, make_token, team):
    secret = make_token(hana, "request")

    filed = client.post(
        "/api/v1/access-requests",
        {"group_id": team.id, "justification": "Ticket 42", "emails": ["new.person@example.com"]},
        content_type="application/json",
        **bearer(secret),
    )
    added = client.post(
        f"/api/v1/groups/{team.id}/members",
        {"emails": ["x@example.com"]},
        content_type="application/json",
        **bearer(secret),
    )

    assert filed.status_code == 201, body(filed)
    assert added.status_code == 403


# -- access requests -------------------------------------------------------------------------


def test_file_and_approve_a_request(client, vera, ada, make_token, team):
    filed = client.post(
        "/api/v1/access-requests",
        {"group_id": team.id, "justification": "Quarterly reporting", "needed_until": "2099-01-31"},
        content_type="application/json",
        **bearer(make_token(vera, "request")),
    )
    data = body(filed)
    assert filed.status_code == 201, data
    (access_request,) = data["filed"]
    assert access_request["email"] == "vera@example.com"
    assert access_request["needed_until"] == "2099-01-31"
    assert AuditEntry.objects.get(pk=data["audit_entries"][0]).via == "API token request-bot"

    queue = body(client.get("/api/v1/access-requests", **bearer(make_token(ada))))
    assert access_request["id"] in [r["id"] for r in queue["items"]]

    approved = client.post(
        f"/api/v1/access-requests/{access_request['id']}/approve", **bearer(make_token(ada, name="approver"))
    )
    decision = body(approved)
    assert approved.status_code == 200, decision
    assert decision["access_request"]["status"] == "provisioned"
    assert AuditEntry.objects.get(pk=decision["provisioning_audit_entry"]).via == "API token approver"
    assert (
        Membership.objects.filter(group=team, user__email="vera@example.com").exists()
        or Invite.objects.filter(group=team, email="vera@example.com").exists()
    )


def test_nobody_approves_their_own_request(client, hana, make_token, team):
    secret = make_token(hana, "change")
    filed = body(
        client.post(
            "/api/v1/access-requests",
            {"group_id": team.id, "justification": "j", "emails": ["other@example.com"]},
            content_type="application/json",
            **bearer(secret),
        )
    )

    response = client.post(f"/api/v1/access-requests/{filed['filed'][0]['id']}/approve", **bearer(secret))

    assert response.status_code == 403
    assert body(response)["outcome"] == "refused"


def test_deny_needs_a_reason(client, ada, vera, make_token, team):
    access_request = AccessRequest.objects.create(
        group_id=team.id,
        group_name=team.name,
        email="vera@example.com",
        requester=vera,
        requester_username="vera",
        justification="j",
    )
    secret = make_token(ada)

    empty = client.post(
        f"/api/v1/access-requests/{access_request.pk}/deny",
        {"reason": " "},
        content_type="application/json",
        **bearer(secret),
    )
    denied = client.post(
        f"/api/v1/access-requests/{access_request.pk}/deny",
        {"reason": "Not needed"},
        content_type="application/json",
        **bearer(secret),
    )

    assert empty.status_code == 422
    assert "reason" in body(empty)["errors"]
    assert body(denied)["access_request"]["status"] == "denied"


def test_viewers_see_only_their_own_requests(client, vera, team, make_token):
    AccessRequest.objects.create(
        group_id=team.id,
        group_name=team.name,
        email="a@example.com",
        requester_username="x",
        justification="j",
    )
    mine = AccessRequest.objects.create(
        group_id=team.id,
        group_name=team.name,
        email="vera@example.com",
        requester=vera,
        requester_username="vera",
        justification="j",
    )

    listed = body(client.get("/api/v1/access-requests", **bearer(make_token(vera, "read"))))

    assert [r["id"] for r in listed["items"]] == [mine.pk]


def test_unknown_access_request_is_404(client, ada, make_token, db):
    assert client.post("/api/v1/access-requests/999/approve", **bearer(make_token(ada))).status_code == 404


# -- audit -----------------------------------------------------------------------------------


def test_audit_log_filters_and_pages(client, ada, make_token, team):
    secret = make_token(ada)
    for n in range(3):
        client.post(
            f"/api/v1/groups/{team.id}/members",
            {"emails": [f"p{n}@example.com"]},
            content_type="application/json",
            **bearer(secret),
        )

    first = body(client.get("/api/v1/audit", {"action": "members.add", "limit": 2}, **bearer(secret)))
    rest = body(
        client.get(
            "/api/v1/audit",
            {"action": "members.add", "limit": 2, "cursor": first["next_cursor"]},
            **bearer(secret),
        )
    )

    assert [e["action"] for e in first["items"] + rest["items"]] == ["members.add"] * 3
    assert rest["next_cursor"] is None
    assert first["items"][0]["via"] == "API token change-bot"
    bad = client.get("/api/v1/audit", {"status": "bogus"}, **bearer(secret))
    assert bad.status_code == 422


# -- the document ----------------------------------------------------------------------------


def test_openapi_document_validates_and_lists_every_endpoint(client, db):
    response = client.get("/api/v1/openapi.json")

    document = body(response)
    validate(document)
    assert document["openapi"].startswith("3.1")
    operations = {(method, path) for path, item in document["paths"].items() for method in item}
    assert operations >= {
        ("get", "/api/v1/groups"),
        ("get", "/api/v1/groups/{group_id}"),
        ("get", "/api/v1/groups/{group_id}/users"),
        ("get", "/api/v1/groups/{group_id}/invites"),
        ("post", "/api/v1/groups/{group_id}/members"),
        ("post", "/api/v1/groups/{group_id}/members/remove"),
        ("post", "/api/v1/people/lookup"),
        ("get", "/api/v1/access-requests"),
        ("post", "/api/v1/access-requests"),
        ("post", "/api/v1/access-requests/{access_request_id}/approve"),
        ("post", "/api/v1/access-requests/{access_request_id}/deny"),
        ("get", "/api/v1/audit"),
    }
    assert "BearerToken" in document["components"]["securitySchemes"]


def test_docs_page_is_served_from_our_own_static_files(client, db):
    response = client.get("/api/v1/docs")

    page = response.content.decode()
    assert response.status_code == 200
    assert "/static/ninja/swagger-ui-bundle.js" in page
    assert "cdn" not in page.lower()
    assert "Content-Security-Policy" in response


def test_an_addition_to_a_privileged_group_is_filed_for_a_second_administrator(client, ada, make_token, db):
    owner = Role.objects.create(id="roleOwner00000000000000000001", name="Workspace Owner")
    owners = UserGroup.objects.create(id="groupOwners00000000000000001", name="Owners")
    GroupPermission.objects.create(group=owners, role=owner, resources=[{"id": "ws1", "type": "WORKSPACE"}])
    sync_workspace(trigger="test")

    with mock.patch.object(SegmentClient, "add_users_to_user_group") as sent:
        response = client.post(
            f"/api/v1/groups/{owners.id}/members",
            {"emails": ["new.owner@example.com"]},
            content_type="application/json",
            **bearer(make_token(ada)),
        )

    data = body(response)
    assert response.status_code == 202, data
    assert data["outcome"] == "filed"
    assert data["awaiting_approval"] == ["new.owner@example.com"]
    assert AuditEntry.objects.get(pk=data["audit_entry"]).status == AuditEntry.Status.FILED
    assert AccessRequest.objects.get().email == "new.owner@example.com"
    sent.assert_not_called()
