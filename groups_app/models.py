from django.db import models


class Dashboard(models.Model):
    """Carries the dashboard's custom permissions; it has no table of its own.

    The roles (Django groups Viewer, Help desk, Administrator) are sets of these;
    see `groups_app.roles`.
    """

    class Meta:
        managed = False
        default_permissions = ()
        permissions = (
            ("view_groups", "Can view groups, members, permissions and the audit log"),
            ("change_membership", "Can add, remove and replace the members of a group"),
            ("handle_access_requests", "Can file, approve and deny access requests"),
            ("manage_groups", "Can create, rename and delete groups"),
            ("change_permissions", "Can change the roles and resources a group grants"),
            ("run_reviews", "Can start and complete membership reviews"),
        )

    def __str__(self) -> str:
        return "Group Admin"
