"""Create the three roles as Django groups with their permissions.

The permission rows are created here because Django only creates them after all
migrations have run (post_migrate), too late for this migration to use them.
"""

from django.db import migrations

PERMISSIONS = {
    "view_groups": "Can view groups, members, permissions and the audit log",
    "change_membership": "Can add, remove and replace the members of a group",
    "handle_access_requests": "Can file, approve and deny access requests",
    "manage_groups": "Can create, rename and delete groups",
    "change_permissions": "Can change the roles and resources a group grants",
    "run_reviews": "Can start and complete membership reviews",
}

ROLES = {
    "Viewer": ["view_groups"],
    "Help desk": ["view_groups", "change_membership", "handle_access_requests"],
    "Administrator": list(PERMISSIONS),
}


def create_roles(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    content_type, _ = ContentType.objects.get_or_create(app_label="groups_app", model="dashboard")
    permissions = {}
    for codename, name in PERMISSIONS.items():
        permissions[codename], _ = Permission.objects.get_or_create(
            content_type=content_type, codename=codename, defaults={"name": name}
        )
    for role, codenames in ROLES.items():
        group, _ = Group.objects.get_or_create(name=role)
        group.permissions.add(*(permissions[codename] for codename in codenames))


def delete_roles(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Group.objects.filter(name__in=ROLES).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("groups_app", "0001_dashboard_permissions"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_roles, delete_roles)]
