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
