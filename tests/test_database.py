"""Group Admin's own database: SQLite set up so the worker can write beside the server, and a
database failure during a change shown as what it is (a 503 banner), never as Segment's."""

import pytest
from django.conf import settings
from django.db import OperationalError, connection
from django.urls import reverse

from groups_app.models import AuditEntry
from sandbox.models import UserGroup

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's settings")
def test_sqlite_runs_in_wal_mode_with_a_busy_timeout_and_immediate_transactions():
    with connection.cursor() as cursor:
        journal_mode = cursor.execute("PRAGMA journal_mode").fetchone()[0]
        busy_timeout = cursor.execute("PRAGMA busy_timeout").fetchone()[0]
        synchronous = cursor.execute("PRAGMA synchronous").fetchone()[0]

    assert journal_mode == "wal"
    assert busy_timeout == settings.SQLITE_BUSY_TIMEOUT * 1000 == 20_000
    assert synchronous == 1  # NORMAL: safe with WAL
    assert connection.transaction_mode == "IMMEDIATE"


@pytest.fixture
def locked_database(monkeypatch):
    """Writing the change's audit entry meets a locked database (another process holds the lock)."""

    def locked(**fields):
        raise OperationalError("database is locked")

    monkeypatch.setattr("groups_app.services.changes.write_pending", locked)


@pytest.fixture
def group():
    return UserGroup.objects.create(name="Data Engineering")


def add_url(group):
    return reverse("groups:members-add", args=[group.id])


def test_a_database_error_during_a_change_is_a_503_page_about_group_admins_database(
    admin_user_client, group, locked_database
):
    response = admin_user_client.post(add_url(group), {"emails": "grace@example.com"})

    page = response.content.decode()
    assert response.status_code == 503 and response["Retry-After"] == "5"
    assert "Group Admin&#x27;s database is busy or unavailable" in page
    assert "Segment is not responding" not in page and "Unexpected answer from Segment" not in page
    assert not AuditEntry.objects.exists() and not group.memberships.exists()


def test_an_htmx_change_gets_the_database_banner_and_keeps_its_form(
    admin_user_client, group, locked_database
):
    response = admin_user_client.post(add_url(group), {"emails": "grace@example.com"}, headers=HTMX)

    assert response.status_code == 503
    assert response["HX-Retarget"] == "#banner"
    page = response.content.decode()
    assert 'id="banner"' in page and "database is busy or unavailable" in page


def test_an_htmx_read_gets_the_message_in_its_region(admin_user_client, monkeypatch):
    def locked(*args, **kwargs):
        raise OperationalError("database is locked")

    monkeypatch.setattr("groups_app.views.audit.audit_entries", locked)

    response = admin_user_client.get(
        reverse("groups:audit"), {"q": "x"}, headers={**HTMX, "HX-Target": "audit-table"}
    )

    assert response.status_code == 503
    page = response.content.decode()
    assert 'id="audit-table"' in page and "Group Admin&#x27;s database is busy" in page


def test_when_even_the_page_needs_the_database_a_plain_503_is_served(
    admin_user_client, group, locked_database, monkeypatch
):
    asked = []

    def unavailable(user):
        asked.append(user)
        raise OperationalError("connection refused")

    monkeypatch.setattr("groups_app.context_processors.inbox_for", unavailable)

    response = admin_user_client.post(add_url(group), {"emails": "grace@example.com"})

    assert asked  # the navigation's counts needed the database too
    assert response.status_code == 503
    assert "Group Admin&#x27;s database is busy or unavailable" in response.content.decode()


def test_the_in_process_sandbox_meeting_a_locked_database_is_not_blamed_on_segment(
    admin_user_client, group, monkeypatch
):
    """The sandbox stands in for Segment on Group Admin's own database: when that database is
    locked during the call, the page says so; the entry is unknown until reconciliation reads back."""

    def locked(*args, **kwargs):
        raise OperationalError("database is locked")

    monkeypatch.setattr("sandbox.api._add_emails", locked)

    response = admin_user_client.post(add_url(group), {"emails": "grace@example.com"})

    page = response.content.decode()
    assert response.status_code == 503
    assert "Group Admin&#x27;s database is busy or unavailable" in page
    assert "Segment did not confirm" not in page and "Segment is not responding" not in page
    entry = AuditEntry.objects.get(action="members.add")
    assert entry.status == "unknown" and entry.error == "OperationalError: database is locked"
    assert not group.memberships.exists()


def test_a_read_of_the_in_process_sandbox_meeting_a_database_failure_is_not_blamed_on_segment(
    admin_user_client, group, monkeypatch
):
    def unavailable(*args, **kwargs):
        raise OperationalError("disk I/O error")

    monkeypatch.setattr("sandbox.api._group_payload", unavailable)

    response = admin_user_client.get(reverse("groups:detail", args=[group.id]))

    assert response.status_code == 503
    assert "Group Admin&#x27;s database is busy" in response.content.decode()
