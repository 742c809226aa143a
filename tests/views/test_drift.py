"""Changes observed outside Group Admin, as people find them: the audit log (filtered), its CSV
export, the entry page and the group's History."""

import csv
import io

import pytest
from django.urls import reverse

from groups_app.models import AuditEntry
from groups_app.services.mirror.sync import sync_workspace
from groups_app.services.segment_client import get_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def drifted(demo_workspace):
    """Someone added an email to All Employees with Segment's own app since the last sync."""
    group = demo_workspace["All Employees"]
    get_client().add_users_to_user_group(group.id, ["contractor@elsewhere.example"])
    sync_workspace(trigger="test")
    return group


def test_the_audit_log_filters_observed_changes(admin_user_client, drifted):
    AuditEntry.objects.create(
        actor_username="ada", action="group.rename", summary="ada renamed X", status="succeeded"
    )

    page = admin_user_client.get(reverse("groups:audit"), {"action": "observed"}).content.decode()

    assert "Observed outside Group Admin in All Employees: added contractor@elsewhere.example" in page
    assert "ada renamed X" not in page
    assert '<option value="observed" selected>Observed outside Group Admin</option>' in page


def test_the_csv_export_carries_observed_changes(admin_user_client, drifted):
    response = admin_user_client.get(reverse("groups:audit-export"), {"action": "observed"})

    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    (row,) = rows[1:]
    assert row[2] == "outside Group Admin" and row[3] == "observed" and row[5] == "All Employees"
    assert "contractor@elsewhere.example" in row[-1]


def test_the_entry_page_and_the_groups_history_show_it(admin_user_client, drifted):
    entry = AuditEntry.objects.get(action="observed")

    detail = admin_user_client.get(reverse("groups:audit-entry", args=[entry.pk])).content.decode()
    group_page = admin_user_client.get(reverse("groups:detail", args=[drifted.id])).content.decode()

    assert "contractor@elsewhere.example" in detail and "Earlier reading" in detail
    assert "Observed outside Group Admin in All Employees" in group_page


# -- reading a drift entry: names, grants and revocations apart, local times, the sync ----------


@pytest.fixture
def owner_granted(demo_workspace):
    """Outside Group Admin, someone granted Workspace Owner on the workspace to a group, revoked
    one of its grants, and added an email, since the last sync."""
    from groups_app.segment import Permission, Resource
    from sandbox.models import Resource as SandboxResource
    from sandbox.models import Role

    group = next(
        g
        for g in demo_workspace.values()
        if g.name != "All Employees" and "<" not in g.name and g.permissions.exists()
    )
    client = get_client()
    current = client.get_user_group(group.id).permissions
    owner = Role.objects.get(name="Workspace Owner")
    workspace = SandboxResource.objects.get(type="WORKSPACE")
    kept, dropped = current[1:], current[0]
    client.replace_permissions_for_user_group(
        group.id, [*kept, Permission(owner.id, resources=(Resource(workspace.id, "WORKSPACE"),))]
    )
    client.add_users_to_user_group(group.id, ["mallory@elsewhere.example"])
    run = sync_workspace(trigger="test")
    return {"group": group, "dropped": dropped, "workspace": workspace, "run": run}


def entry_page(client, entry, **cookies):
    for name, value in cookies.items():
        client.cookies[name] = value
    return client.get(reverse("groups:audit-entry", args=[entry.pk])).content.decode()


def test_a_privileged_grant_outside_is_called_out_in_the_list_and_on_the_entry(
    admin_user_client, owner_granted
):
    entry = AuditEntry.objects.get(action="observed", group_id=owner_granted["group"].id)

    listing = admin_user_client.get(reverse("groups:audit"), {"action": "observed"}).content.decode()
    page = entry_page(admin_user_client, entry)

    group_name = owner_granted["group"].name
    assert f"Observed outside Group Admin in {group_name}: granted Workspace Owner" in listing
    assert "Privileged role granted." in page and "Workspace Owner was granted to this group" in page
    assert f"<h1>Observed outside Group Admin in {group_name}: granted Workspace Owner" in page


def test_grants_and_revocations_are_shown_apart_by_role_name(admin_user_client, owner_granted):
    entry = AuditEntry.objects.get(action="observed", group_id=owner_granted["group"].id)

    page = entry_page(admin_user_client, entry)

    granted = page[page.index("<h2>Granted (1)</h2>") : page.index("<h2>Revoked (1)</h2>")]
    revoked = page[page.index("<h2>Revoked (1)</h2>") : page.index("<h2>Permissions before")]
    assert "<strong>Workspace Owner</strong>" in granted and owner_granted["workspace"].id in granted
    assert f"<strong>{owner_granted['dropped'].role_name}</strong>" in revoked
    assert "Workspace Owner" not in revoked
    assert "<h2>Added (1)</h2>" in page and "mallory@elsewhere.example" in page


def test_resource_names_are_shown_where_known(admin_user_client, owner_granted):
    from django.core.cache import cache

    from groups_app.segment import NamedResource
    from groups_app.services.groups import RESOURCES_KEY, ResourceCatalog

    workspace = owner_granted["workspace"]
    entry = AuditEntry.objects.get(action="observed", group_id=owner_granted["group"].id)
    cache.delete(RESOURCES_KEY)  # (the drift mail read and cached them)
    assert "Acme Corp" not in entry_page(admin_user_client, entry)  # not known: no upstream call

    cache.set(
        RESOURCES_KEY,
        ResourceCatalog({"WORKSPACE": (NamedResource(workspace.id, "WORKSPACE", "Acme Corp"),)}),
    )

    assert '<span class="resource-name">Acme Corp</span>' in entry_page(admin_user_client, entry)


def test_readings_are_shown_in_the_viewers_time_zone(admin_user_client, owner_granted):
    from datetime import datetime
    from zoneinfo import ZoneInfo

    entry = AuditEntry.objects.get(action="observed", group_id=owner_granted["group"].id)
    reading = datetime.fromisoformat(entry.details["reading"]).astimezone(ZoneInfo("Asia/Tokyo"))

    page = entry_page(admin_user_client, entry, tz="Asia/Tokyo")

    assert "<h2>Earlier reading</h2>" in page and "<h2>Reading that found it</h2>" in page
    assert f'<time datetime="{reading.isoformat()}">{reading:%Y-%m-%d %H:%M:%S} JST</time>' in page
    assert entry.details["reading"] not in page  # never the raw stored text


def test_the_sync_links_to_its_admin_page_for_staff_and_is_named_for_others(admin_user_client, owner_granted):
    from django.test import Client

    from tests.factories import UserFactory

    run = owner_granted["run"]
    entry = AuditEntry.objects.get(action="observed", group_id=owner_granted["group"].id)
    admin_link = reverse("admin:groups_app_syncrun_change", args=[run.pk])

    client = Client()
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    staff_page = entry_page(client, entry)
    administrator_page = entry_page(admin_user_client, entry)

    assert f'<a href="{admin_link}">Sync #{run.pk}</a>' in staff_page
    assert "whole workspace, started" in staff_page
    assert f"Sync #{run.pk}" in administrator_page and admin_link not in administrator_page


def test_a_role_known_only_by_its_id_is_named_from_the_mirror(admin_user_client, demo_workspace):
    from groups_app.models import MirrorRole

    role = MirrorRole.objects.first()
    entry = AuditEntry.objects.create(
        actor_username="outside Group Admin",
        action="observed",
        group_id="g1",
        group_name="Ops",
        summary="Observed outside Group Admin in Ops: permissions changed",
        details={
            "permissions_before": [],
            "permissions_after": [{"roleId": role.role_id, "roleName": role.role_id, "resources": []}],
        },
        status="succeeded",
    )

    page = entry_page(admin_user_client, entry)

    assert f"<strong>{role.name}</strong>" in page and f"granted {role.name}" in page


def test_drift_entries_never_complete_before_they_were_created(owner_granted):
    entries = AuditEntry.objects.filter(action="observed")

    assert entries.exists()
    assert all(e.status == "succeeded" and e.completed_at >= e.created_at for e in entries)


def test_a_label_changed_outside_is_a_revocation_and_a_grant_and_a_new_group_only_grants(
    admin_user_client, db
):
    ws = {"type": "WORKSPACE", "id": "ws1"}
    owner = {"roleId": "r1", "roleName": "Workspace Owner"}
    reader = {"roleId": "r2", "roleName": "Source Read-only"}
    changed = AuditEntry.objects.create(
        actor_username="outside Group Admin",
        action="observed",
        group_id="g1",
        group_name="Ops",
        summary="stored",
        details={
            "permissions_before": [
                {**reader, "resources": [{**ws, "labels": [{"key": "env", "value": "dev"}]}]}
            ],
            "permissions_after": [
                {**reader, "resources": [{**ws, "labels": [{"key": "env", "value": "prod"}]}]}
            ],
        },
        status="succeeded",
    )
    created = AuditEntry.objects.create(
        actor_username="outside Group Admin",
        action="observed",
        group_id="g2",
        group_name="Shadow admins",
        summary="stored",
        details={
            "group_created": True,
            "permissions_before": [],
            "permissions_after": [{**owner, "resources": [ws]}],
        },
        status="succeeded",
    )

    changed_page = entry_page(admin_user_client, changed)
    created_page = entry_page(admin_user_client, created)

    assert (
        "Observed outside Group Admin in Ops: granted Source Read-only; revoked Source Read-only"
        in changed_page
    )
    granted = changed_page[
        changed_page.index("<h2>Granted (1)</h2>") : changed_page.index("<h2>Revoked (1)</h2>")
    ]
    assert "env=prod" in granted and "env=dev" not in granted
    assert "Shadow admins: group created; granted Workspace Owner" in created_page
    assert "<h2>Granted (1)</h2>" in created_page and "Permissions after" not in created_page
    assert "Privileged role granted." in created_page
