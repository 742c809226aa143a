"""The sandbox's raw HTTP wire format: paths, query shapes, headers and envelopes."""

import importlib
import json
from email.utils import parsedate_to_datetime

import pytest
from django.test import override_settings
from django.urls import clear_url_caches

from tests.sandbox.conftest import AUTH

pytestmark = pytest.mark.django_db

BASE = "/sandbox/api"
GROUP = "groupData000000000000000000001"


def get(client, path, **kwargs):
    return client.get(BASE + path, headers=AUTH, **kwargs)


def send(client, method, path, body=None, content_type="application/json"):
    data = json.dumps(body) if body is not None and not isinstance(body, str) else body
    return client.generic(method, BASE + path, data=data or "", content_type=content_type, headers=AUTH)


def test_success_envelope_and_rate_limit_headers(client, workspace):
    response = get(client, "/groups")

    body = response.json()
    assert response.status_code == 200
    assert set(body) == {"data"}
    assert body["data"]["userGroups"][0] == {
        "id": GROUP,
        "name": "Data Engineering",
        "memberCount": 3,
        "permissions": [
            {
                "roleId": workspace["reader"].id,
                "roleName": "Source Read-only",
                "resources": [{"id": "src1", "type": "SOURCE"}],
            }
        ],
    }
    assert body["data"]["pagination"]["totalEntries"] == 1
    assert "next" not in body["data"]["pagination"] and "previous" not in body["data"]["pagination"]
    assert response["X-RateLimit-Consumed"] == "1"
    assert int(response["X-RateLimit-Remaining"]) > 0
    assert parsedate_to_datetime(response["X-RateLimit-Reset"]).tzinfo is not None


def test_error_envelope_has_no_data(client, workspace):
    response = get(client, "/groups/unknownGroup")

    assert response.status_code == 404
    assert set(response.json()) == {"errors"}
    assert response.json()["errors"][0]["message"] == "User group not found"


@pytest.mark.parametrize(
    "query",
    [
        {"pagination.count": "2"},
        {"pagination[count]": "2"},
        {"pagination": '{"count": 2}'},
    ],
)
def test_pagination_shapes_of_the_sdks(client, workspace, query):
    for n in range(4):
        send(client, "POST", f"/groups/{GROUP}/users", {"emails": [f"extra{n}@example.com"]})

    first = get(client, f"/groups/{GROUP}/invites", data=query).json()["data"]
    cursor = first["pagination"]["next"]
    second = get(client, f"/groups/{GROUP}/invites", data={**query, "pagination.cursor": cursor}).json()[
        "data"
    ]
    as_json = get(
        client, f"/groups/{GROUP}/invites", data={"pagination": json.dumps({"count": 2, "cursor": cursor})}
    )

    assert len(first["emails"]) == 2 and first["pagination"]["totalEntries"] == 5
    assert second["emails"] == as_json.json()["data"]["emails"]
    assert set(first["emails"]).isdisjoint(second["emails"])
    assert second["pagination"]["previous"] == first["pagination"]["current"]


def test_default_page_size_is_200(client, workspace):
    from sandbox.models import Invite

    Invite.objects.bulk_create(
        [Invite(group=workspace["group"], email=f"p{n}@example.com") for n in range(250)]
    )

    data = get(client, f"/groups/{GROUP}/invites").json()["data"]

    assert len(data["emails"]) == 200 and "next" in data["pagination"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"pagination.count": "ten"}, "pagination.count"),
        ({"pagination.count": "1001"}, "pagination.count"),
        ({"pagination.cursor": "bogus"}, "pagination.cursor"),
        ({"pagination": "not json"}, "pagination"),
        ({"sort": "name"}, "sort"),
    ],
)
def test_bad_query_parameters_are_422_with_field(client, workspace, query, field):
    response = get(client, "/groups", data=query)

    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == field


def test_remove_uses_indexed_email_parameters_on_singular_path(client, workspace):
    response = client.delete(
        f"{BASE}/group/{GROUP}/users?emails.0=alice%40example.com&emails[1]=NEWBIE%40example.com",
        headers=AUTH,
    )

    assert response.json() == {"data": {"status": "SUCCESS"}}
    assert get(client, f"/groups/{GROUP}").json()["data"]["userGroup"]["memberCount"] == 1


def test_remove_with_an_invalid_email_names_it(client, workspace):
    response = client.delete(
        f"{BASE}/group/{GROUP}/users?emails.0=alice%40example.com&emails.1=broken", headers=AUTH
    )

    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "emails.1"
    assert get(client, f"/groups/{GROUP}").json()["data"]["userGroup"]["memberCount"] == 3


def test_replace_on_plural_path_is_unknown_route(client, workspace):
    response = send(client, "PUT", f"/groups/{GROUP}/users", {"emails": ["a@example.com"]})

    assert response.status_code == 404
    assert response.json()["errors"][0]["type"] == "not-found"


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/nothing/here"), ("PATCH", "/roles"), ("POST", f"/groups/{GROUP}/invites")]
)
def test_unknown_paths_and_methods_are_404_envelopes(client, workspace, method, path):
    response = send(client, method, path)

    assert response.status_code == 404
    assert "errors" in response.json()


@pytest.mark.parametrize("body", ["not json", "[1, 2]", ""])
def test_body_that_is_not_a_json_object_is_422(client, workspace, body):
    response = send(client, "POST", "/groups", body)

    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "body"


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic sandbox-token"}]
)
def test_missing_or_wrong_token_is_401(client, workspace, headers):
    response = client.get(f"{BASE}/groups", headers=headers)

    assert response.status_code == 401
    assert response.json() == {"errors": [{"type": "unauthorized", "message": "Unauthorized"}]}


def test_no_csrf_token_or_sign_in_is_needed(workspace):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)

    response = strict.post(
        f"{BASE}/groups", data='{"name": "Via API"}', content_type="application/json", headers=AUTH
    )

    assert response.status_code == 200


def test_over_budget_is_429_with_documented_body(client, workspace, settings):
    settings.SANDBOX_WRITE_LIMIT_PER_MINUTE = 1
    send(client, "POST", "/groups", {"name": "First"})

    response = send(client, "POST", "/groups", {"name": "Second"})

    error = response.json()["errors"][0]
    assert response.status_code == 429
    assert 0 <= error["data"]["msBeforeNext"] <= 60_000
    assert error["data"]["remainingPoints"] == 0 and error["data"]["consumedPoints"] == 2
    assert 1 <= int(response["Retry-After"]) <= 60
    assert get(client, "/groups").status_code == 200  # reads keep their own budget


def test_sandbox_api_does_not_exist_with_a_real_token(client, workspace):
    import dashboard.urls

    try:
        with override_settings(SANDBOX_MODE=False):
            importlib.reload(dashboard.urls)
            clear_url_caches()
            assert get(client, "/groups").status_code == 404
    finally:
        importlib.reload(dashboard.urls)
        clear_url_caches()
    assert get(client, "/groups").status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"/groups/{GROUP}?verbose=1"),
        ("POST", "/groups?dryRun=true"),
        ("PUT", f"/groups/{GROUP}/permissions?x=1"),
    ],
)
def test_operations_without_query_parameters_refuse_them(client, workspace, method, path):
    body = {"name": "X"} if method == "POST" else {"permissions": []}

    response = send(client, method, path, body)

    assert response.status_code == 422
    assert response.json()["errors"][0]["message"].startswith("Unexpected query parameter")


def test_remove_accepts_the_python_sdks_repeated_emails(client, workspace):
    response = client.delete(
        f"{BASE}/group/{GROUP}/users?emails=alice@example.com&emails=newbie@example.com", headers=AUTH
    )

    assert response.status_code == 200 and response.json() == {"data": {"status": "SUCCESS"}}
    members = get(client, f"/groups/{GROUP}").json()["data"]["userGroup"]["memberCount"]
    assert members == 1


def test_labels_round_trip_on_workspace_resources(client, workspace):
    labelled = {"id": "ws1", "type": "WORKSPACE", "labels": [{"key": "environment", "value": "prod"}]}

    response = send(
        client,
        "PUT",
        f"/groups/{GROUP}/permissions",
        {"permissions": [{"roleId": workspace["owner"].id, "resources": [labelled]}]},
    )

    assert response.status_code == 200
    assert response.json()["data"]["permissions"][0]["resources"] == [labelled]


@pytest.mark.parametrize(
    ("resource", "field", "message"),
    [
        (
            {"id": "src1", "type": "SOURCE", "labels": [{"key": "a", "value": "b"}]},
            "labels",
            "Only WORKSPACE",
        ),
        ({"id": "ws1", "type": "WORKSPACE", "labels": "environment=prod"}, "labels", "must be a list"),
        ({"id": "ws1", "type": "WORKSPACE", "labels": [{"key": "a"}]}, "labels.0", "non-empty strings"),
        ({"id": "ws1", "type": "WORKSPACE", "labels": [{"key": "a", "value": 3}]}, "labels.0", "non-empty"),
        ({"id": "ws1", "type": "WORKSPACE", "labels": [["a", "b"]]}, "labels.0", "key and value"),
    ],
)
def test_bad_labels_are_refused_so_no_write_can_break_later_reads(
    client, workspace, resource, field, message
):
    response = send(
        client,
        "POST",
        f"/groups/{GROUP}/permissions",
        {"permissions": [{"roleId": workspace["owner"].id, "resources": [resource]}]},
    )

    assert response.status_code == 422
    error = response.json()["errors"][0]
    assert error["field"] == f"permissions.0.resources.0.{field}" and message in error["message"]
    assert get(client, f"/groups/{GROUP}").status_code == 200


def test_member_count_does_not_multiply_users_by_invites(client, workspace):
    from sandbox.models import Invite, Membership, WorkspaceUser

    group = workspace["group"]
    users = WorkspaceUser.objects.bulk_create(
        WorkspaceUser(id=f"userBulk{i:019d}", name=f"U{i}", email=f"u{i}@example.com") for i in range(60)
    )
    Membership.objects.bulk_create(Membership(group=group, user=user) for user in users)
    Invite.objects.bulk_create(Invite(group=group, email=f"i{i}@example.org") for i in range(440))

    listed = get(client, "/groups").json()["data"]["userGroups"][0]["memberCount"]
    single = get(client, f"/groups/{GROUP}").json()["data"]["userGroup"]["memberCount"]

    assert listed == single == 2 + 60 + 1 + 440


def test_resource_listings_answer_in_the_public_apis_shapes(client, db):
    from sandbox.models import Resource

    Resource.objects.create(id="ws1", type="WORKSPACE", name="Acme")
    Resource.objects.create(id="src1", type="SOURCE", name="iOS App")
    Resource.objects.create(id="wh1", type="WAREHOUSE", name="Snowflake Production")
    Resource.objects.create(id="fn1", type="FUNCTION", name="Hash PII", function_type="SOURCE")

    assert get(client, "/").json()["data"]["workspace"]["name"] == "Acme"
    assert get(client, "/sources").json()["data"]["sources"][0] == {
        "id": "src1", "name": "iOS App", "slug": "ios-app", "enabled": True,
    }  # fmt: skip
    assert (
        get(client, "/warehouses").json()["data"]["warehouses"][0]["settings"]["name"]
        == "Snowflake Production"
    )
    functions = get(client, "/functions", data={"resourceType": "SOURCE"}).json()["data"]["functions"]
    assert functions == [{"id": "fn1", "displayName": "Hash PII", "resourceType": "SOURCE"}]
    assert get(client, "/functions").status_code == 422  # resourceType is required
