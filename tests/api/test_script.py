"""What a script does with tokens from `manage.py create_api_token`, over real HTTP."""

from io import StringIO
from unittest import mock

import pytest
import requests
from django.core.management import call_command

from groups_app.models import AccessRequest, AuditEntry
from groups_app.segment import SegmentClient
from sandbox.models import Membership, WorkspaceUser
from tests.factories import administrator, help_desk

pytestmark = pytest.mark.django_db(transaction=True)


def create_api_token(username, scope, name):
    out = StringIO()
    call_command(
        "create_api_token", username, "--scope", scope, "--name", name, stdout=out, stderr=StringIO()
    )
    return out.getvalue().splitlines()[-1]


def test_a_script_lists_groups_adds_a_member_files_and_approves_a_request(live_server, demo_workspace):
    administrator(username="ada", email="ada@example.com")
    help_desk(username="hana", email="hana@example.com")
    api = f"{live_server.url}/api/v1"
    admin = requests.Session()
    admin.headers["Authorization"] = "Bearer " + create_api_token("ada", "change", "onboarding")
    desk = requests.Session()
    desk.headers["Authorization"] = "Bearer " + create_api_token("hana", "request", "tickets")

    groups = admin.get(f"{api}/groups", params={"sort": "members", "order": "desc"}, timeout=30).json()
    team = next(g for g in groups["items"] if g["name"] != "All Employees" and "<" not in g["name"])
    newcomer = WorkspaceUser.objects.exclude(memberships__group_id=team["id"]).first()

    with mock.patch.object(
        SegmentClient,
        "add_users_to_user_group",
        autospec=True,
        side_effect=SegmentClient.add_users_to_user_group,
    ) as sent:
        added = admin.post(
            f"{api}/groups/{team['id']}/members", json={"emails": [newcomer.email]}, timeout=30
        )
    filed = desk.post(
        f"{api}/access-requests",
        json={"group_id": team["id"], "justification": "Ticket 4211", "emails": ["carol@example.com"]},
        timeout=30,
    )
    request_id = filed.json()["filed"][0]["id"]
    refused = desk.post(f"{api}/access-requests/{request_id}/approve", timeout=30)
    approved = admin.post(f"{api}/access-requests/{request_id}/approve", timeout=30)
    anonymous = requests.get(f"{api}/groups", timeout=30)

    assert groups["as_of"] and len(groups["items"]) == 4
    assert added.status_code == 200 and added.json()["added"] == [newcomer.email]
    assert sent.call_count == 1
    assert Membership.objects.filter(group_id=team["id"], user=newcomer).exists()
    entry = AuditEntry.objects.get(pk=added.json()["audit_entry"])
    assert (entry.actor_username, entry.via, entry.status) == ("ada", "API token onboarding", "succeeded")
    assert filed.status_code == 201
    assert refused.status_code == 403 and refused.headers["Content-Type"] == "application/problem+json"
    assert approved.status_code == 200, approved.text
    assert AccessRequest.objects.get(pk=request_id).status == AccessRequest.Status.PROVISIONED
    assert anonymous.status_code == 401
