"""The audit log is append-only, and its pending entry is committed before the upstream call."""

import threading

import pytest
from django.db import connection
from django.urls import reverse

from groups_app.models import AuditEntry
from groups_app.services.audit import RequestOrigin, audited, origin_var
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def make_entry(**overrides):
    fields = {"actor_username": "ada", "action": AuditEntry.Action.GROUP_CREATE, "summary": "ada created X"}
    fields.update(overrides)
    return AuditEntry.objects.create(**fields)


def test_entries_cannot_be_edited_or_deleted():
    entry = make_entry()

    entry.summary = "rewritten"
    with pytest.raises(PermissionError):
        entry.save()
    with pytest.raises(PermissionError):
        entry.delete()
    with pytest.raises(PermissionError):
        AuditEntry.objects.filter(pk=entry.pk).update(summary="rewritten")
    with pytest.raises(PermissionError):
        AuditEntry.objects.all().delete()
    assert AuditEntry.objects.get().summary == "ada created X"


def test_an_entry_is_completed_once_only():
    entry = make_entry()

    assert AuditEntry.objects.complete(entry.pk, status=AuditEntry.Status.SUCCEEDED) == 1
    assert AuditEntry.objects.complete(entry.pk, status=AuditEntry.Status.FAILED) == 0
    assert AuditEntry.objects.get().status == AuditEntry.Status.SUCCEEDED


def test_audited_records_origin_and_survives_any_exception():
    user = UserFactory(username="ada")
    token = origin_var.set(RequestOrigin(request_id="req-1", client_ip="10.1.2.3", user_agent="Firefox"))
    try:
        with pytest.raises(KeyError), audited(actor=user, action=AuditEntry.Action.GROUP_RENAME, summary="s"):
            raise KeyError("boom")
    finally:
        origin_var.reset(token)

    entry = AuditEntry.objects.get()
    assert (entry.request_id, entry.client_ip, entry.user_agent) == ("req-1", "10.1.2.3", "Firefox")
    assert entry.status == AuditEntry.Status.FAILED and entry.error == "KeyError: 'boom'"


def test_actor_name_is_kept_when_the_account_is_deleted():
    user = UserFactory(username="leaver")
    with audited(actor=user, action=AuditEntry.Action.GROUP_CREATE, summary="leaver created X"):
        pass

    user_id = user.pk
    user.delete()

    entry = AuditEntry.objects.get()
    assert (entry.actor_user_id, entry.actor_username, entry.actor_email) == (
        user_id,
        "leaver",
        "leaver@example.com",
    )


@pytest.mark.django_db(transaction=True)
def test_pending_entry_is_committed_before_the_call():
    seen = {}

    def look_from_another_connection():
        from django.db import connections

        seen["status"] = list(AuditEntry.objects.values_list("status", flat=True))
        connections.close_all()

    with audited(actor=None, action=AuditEntry.Action.MEMBERS_ADD, summary="system added"):
        reader = threading.Thread(target=look_from_another_connection)
        reader.start()
        reader.join()

    assert seen["status"] == ["pending"]
    assert AuditEntry.objects.get().status == "succeeded"
    assert not connection.in_atomic_block


def test_admin_shows_entries_read_only(admin_client):
    entry = make_entry()

    assert admin_client.get(reverse("admin:groups_app_auditentry_change", args=[entry.pk])).status_code == 200
    assert (
        admin_client.post(
            reverse("admin:groups_app_auditentry_change", args=[entry.pk]), {"summary": "x"}
        ).status_code
        == 403
    )
    assert (
        admin_client.post(
            reverse("admin:groups_app_auditentry_delete", args=[entry.pk]), {"post": "yes"}
        ).status_code
        == 403
    )
    assert admin_client.get(reverse("admin:groups_app_auditentry_add")).status_code == 403
    assert AuditEntry.objects.get().summary == "ada created X"


postgresql_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the database trigger is installed on PostgreSQL"
)


@postgresql_only
@pytest.mark.parametrize(
    "statement",
    [
        "DELETE FROM groups_app_auditentry",
        "UPDATE groups_app_auditentry SET summary = 'nothing happened'",
        "UPDATE groups_app_auditentry SET actor_username = 'someone else'",
    ],
)
def test_the_database_refuses_to_change_or_delete_a_complete_entry(statement):
    from django.db import DatabaseError, transaction

    with audited(
        actor=UserFactory(username="ada"), action=AuditEntry.Action.GROUP_CREATE, summary="ada created X"
    ):
        pass

    with pytest.raises(DatabaseError, match="cannot be"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statement)

    entry = AuditEntry.objects.get()
    assert entry.summary == "ada created X" and entry.actor_username == "ada"


@postgresql_only
def test_the_database_lets_a_pending_entry_complete_once_but_never_rewrites_who():
    from django.db import DatabaseError, transaction

    entry = AuditEntry.objects.create(actor_username="ada", action="group.create", summary="s")
    with (
        pytest.raises(DatabaseError, match="identifies"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("UPDATE groups_app_auditentry SET actor_username = 'eve' WHERE id = %s", [entry.pk])

    assert AuditEntry.objects.complete(entry.pk, status="succeeded") == 1
    with pytest.raises(DatabaseError, match="complete"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE groups_app_auditentry SET status = 'failed' WHERE id = %s", [entry.pk])


def test_the_text_filter_searches_summaries_details_and_reasons_without_case():
    from groups_app.services.audit_log import audit_entries
    from groups_app.services.changes import change_refused

    with audited(
        actor=UserFactory(username="hana"),
        action=AuditEntry.Action.MEMBERS_ADD,
        summary="hana added 1 member to Data",
        details={"emails": ["Needle@Example.com"]},
    ):
        pass
    change_refused(
        actor=UserFactory(username="vera"),
        action="members.add",
        reason="Your role does not allow this change.",
    )

    assert [e.summary for e in audit_entries(text="NEEDLE@example")] == ["hana added 1 member to Data"]
    assert audit_entries(text="role does not allow").get().actor_username == "vera"


@postgresql_only
def test_postgresql_answers_the_text_filter_from_the_trigram_index():
    from groups_app.services.audit_log import audit_entries

    AuditEntry.objects.create(actor_username="ada", action="group.create", summary="ada created Growth")
    query = audit_entries(text="growth")

    with connection.cursor() as cursor:
        # A tiny table would be scanned, or walked in date order, whatever the indexes; with
        # both off, only an index that can answer the filter itself remains.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_indexscan = off")
        plan = query.explain()

    assert "groups_app_auditentry_search_trgm" in plan
