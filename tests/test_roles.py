"""The roles data migration: three Django groups carrying the dashboard's permissions."""

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from groups_app import roles
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def permission_names(group_name):
    group = Group.objects.get(name=group_name)
    return {
        f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.select_related("content_type")
    }


def test_migration_creates_each_role_with_its_permissions():
    for role, expected in roles.ROLE_PERMISSIONS.items():
        assert permission_names(role) == expected


@pytest.mark.parametrize(
    ("role", "allowed", "denied"),
    [
        (roles.VIEWER, {roles.VIEW}, {roles.CHANGE_MEMBERSHIP, roles.MANAGE_GROUPS}),
        (
            roles.HELP_DESK,
            {roles.VIEW, roles.CHANGE_MEMBERSHIP, roles.HANDLE_ACCESS_REQUESTS},
            {roles.MANAGE_GROUPS, roles.CHANGE_PERMISSIONS, roles.RUN_REVIEWS},
        ),
        (roles.ADMINISTRATOR, set(roles.ROLE_PERMISSIONS[roles.ADMINISTRATOR]), set()),
    ],
)
def test_role_members_hold_exactly_their_permissions(role, allowed, denied):
    user = UserFactory(role=role)

    assert all(user.has_perm(p) for p in allowed)
    assert not any(user.has_perm(p) for p in denied)


def test_superuser_holds_every_permission():
    user = UserFactory(is_superuser=True)

    assert all(user.has_perm(p) for p in roles.ROLE_PERMISSIONS[roles.ADMINISTRATOR])
    assert roles.role_label(user) == "Superuser"


def test_role_label_shows_the_strongest_role():
    user = UserFactory(role=roles.VIEWER)
    user.groups.add(Group.objects.get(name=roles.HELP_DESK))

    assert roles.role_label(user) == roles.HELP_DESK


@pytest.mark.django_db(transaction=True)
def test_roles_migration_reverses_and_reapplies():
    executor = MigrationExecutor(connection)
    executor.migrate([("groups_app", "0001_dashboard_permissions")])
    assert not Group.objects.filter(name__in=roles.ROLE_PERMISSIONS).exists()

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())

    assert permission_names(roles.HELP_DESK) == roles.ROLE_PERMISSIONS[roles.HELP_DESK]
