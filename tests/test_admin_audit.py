"""The Django admin is audited: account flags and email, roles, a role's permissions, direct
permissions (no longer offered in the admin, still audited when given another way)."""

import pytest
from django.contrib.auth.models import Group, Permission
from django.urls import reverse

from groups_app.models import AuditEntry, Job, JobItem
from groups_app.roles import VIEWER
from groups_app.services.audit import RequestOrigin, origin_var
from tests.factories import UserFactory, viewer
from tests.views.test_sso_identities import user_change_form

pytestmark = pytest.mark.django_db

Action = AuditEntry.Action


def permission(name: str) -> Permission:
    app_label, codename = name.split(".")
    return Permission.objects.get(content_type__app_label=app_label, codename=codename)


def test_the_user_admin_does_not_offer_direct_permissions(admin_client):
    vera = viewer(username="vera")

    form = admin_client.get(reverse("admin:auth_user_change", args=[vera.pk])).content.decode()

    assert 'name="groups"' in form and 'name="user_permissions"' not in form


def test_flags_and_email_changed_in_the_admin_are_audited_with_before_and_after(admin_client):
    vera = viewer(username="vera", email="vera@acme.example")
    form = user_change_form(vera, email="vera@evil.example", is_staff="on", is_superuser="on")

    response = admin_client.post(reverse("admin:auth_user_change", args=[vera.pk]), form)

    assert response.status_code == 302
    change = AuditEntry.objects.get(action=Action.ACCOUNT_CHANGE)
    assert change.actor_username == "admin" and change.status == AuditEntry.Status.SUCCEEDED
    assert change.details["before"] == "email: vera@acme.example; staff: no; superuser: no"
    assert change.details["after"] == "email: vera@evil.example; staff: yes; superuser: yes"


def test_deactivating_an_account_in_the_admin_is_audited(admin_client):
    vera = viewer(username="vera")

    admin_client.post(
        reverse("admin:auth_user_change", args=[vera.pk]), user_change_form(vera, is_active=False)
    )

    change = AuditEntry.objects.get(action=Action.ACCOUNT_CHANGE)
    assert change.summary == "admin changed vera: active: yes → active: no"


def test_an_account_created_in_the_admin_is_audited(admin_client):
    admin_client.post(
        reverse("admin:auth_user_add"),
        {"username": "newbie", "password1": "a long passphrase 2026", "password2": "a long passphrase 2026"},
    )

    created = AuditEntry.objects.get(action=Action.ACCOUNT_CREATE)
    assert created.summary == "admin created the account newbie"


def test_a_roles_permissions_changed_in_the_admin_are_audited_with_before_and_after(admin_client):
    role = Group.objects.get(name=VIEWER)
    view, manage = permission("groups_app.view_groups"), permission("groups_app.manage_groups")

    response = admin_client.post(
        reverse("admin:auth_group_change", args=[role.pk]),
        {"name": VIEWER, "permissions": [view.pk, manage.pk]},
    )

    assert response.status_code == 302
    entry = AuditEntry.objects.get(action=Action.ROLE_PERMISSIONS)
    assert entry.summary == "admin granted groups_app.manage_groups in the role Viewer"
    assert entry.details["before"] == ["groups_app.view_groups"]
    assert entry.details["after"] == ["groups_app.manage_groups", "groups_app.view_groups"]


def test_direct_permissions_given_another_way_during_a_request_are_audited():
    admin = UserFactory(username="root", is_staff=True, is_superuser=True)
    vera = viewer(username="vera")
    token = origin_var.set(RequestOrigin(request_id="r-1", user=admin))
    try:
        vera.user_permissions.add(permission("groups_app.manage_groups"))
        vera.user_permissions.clear()
    finally:
        origin_var.reset(token)

    granted, removed = AuditEntry.objects.filter(action=Action.ACCOUNT_PERMISSIONS).order_by("id")
    assert granted.summary == "root granted groups_app.manage_groups as direct permissions of vera"
    assert granted.details["before"] == [] and granted.details["after"] == ["groups_app.manage_groups"]
    assert removed.details["removed"] == ["groups_app.manage_groups"] and removed.details["after"] == []


def test_a_role_granted_from_the_roles_side_is_audited_for_the_account():
    admin = UserFactory(username="root", is_staff=True, is_superuser=True)
    vera = viewer(username="vera")
    token = origin_var.set(RequestOrigin(request_id="r-2", user=admin))
    try:
        Group.objects.get(name="Administrator").user_set.add(vera)
    finally:
        origin_var.reset(token)

    grant = AuditEntry.objects.get(action=Action.ACCOUNT_ROLE_GRANT)
    assert grant.summary == "root granted Administrator to vera"
    assert grant.details["before"] == ["Viewer"] and grant.details["after"] == ["Administrator", "Viewer"]


def test_changes_outside_the_app_are_not_its_to_record():
    vera = viewer(username="vera")

    vera.is_staff = True
    vera.save()
    vera.user_permissions.add(permission("groups_app.manage_groups"))

    assert not AuditEntry.objects.exists()


def test_an_audited_account_change_reads_on_its_audit_page(admin_client):
    vera = viewer(username="vera", email="vera@acme.example")
    admin_client.post(
        reverse("admin:auth_user_change", args=[vera.pk]), user_change_form(vera, is_staff="on")
    )
    entry = AuditEntry.objects.get(action=Action.ACCOUNT_CHANGE)

    page = admin_client.get(reverse("groups:audit-entry", args=[entry.pk])).content.decode()

    assert "staff: no" in page and "staff: yes" in page and "Change a dashboard account" in page


def test_jobs_are_listed_read_only_in_the_admin_with_their_items(admin_client):
    job = Job.objects.create(
        kind=Job.Kind.PERSON_REMOVE,
        title="Remove ada@example.com from 1 group",
        key="k" * 16,
        created_by_username="hana",
        total=1,
    )
    JobItem.objects.create(
        job=job, position=1, target_id="g1", target_name="Data", message="Removed from Data."
    )

    listing = admin_client.get(reverse("admin:groups_app_job_changelist"))
    page = admin_client.get(reverse("admin:groups_app_job_change", args=[job.pk]))
    deleted = admin_client.post(reverse("admin:groups_app_job_delete", args=[job.pk]), {"post": "yes"})

    assert "Remove ada@example.com from 1 group" in listing.content.decode()
    assert "Removed from Data." in page.content.decode() and 'name="_save"' not in page.content.decode()
    assert deleted.status_code == 403 and Job.objects.filter(pk=job.pk).exists()
