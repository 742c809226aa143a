from django.conf import settings
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


class AuditQuerySet(models.QuerySet):
    """Audit entries are append-only: no bulk update or delete, only the one-time completion."""

    def update(self, **kwargs):
        raise PermissionError("Audit entries cannot be changed; complete a pending entry with complete().")

    def delete(self):
        raise PermissionError("Audit entries cannot be deleted.")

    def complete(self, pk: int, **fields) -> int:
        """Complete a pending entry; returns 0 if it was already completed (it never changes twice)."""
        return super(AuditQuerySet, self.filter(pk=pk, status=AuditEntry.Status.PENDING)).update(**fields)


class AuditEntry(models.Model):
    """One attempt at a change made through the dashboard, written before the upstream call."""

    class Status(models.TextChoices):
        PENDING = "pending", "Outcome unknown"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    class Action(models.TextChoices):
        GROUP_CREATE = "group.create", "Create group"
        GROUP_RENAME = "group.rename", "Rename group"
        GROUP_DELETE = "group.delete", "Delete group"
        MEMBERS_ADD = "members.add", "Add members"
        MEMBERS_REMOVE = "members.remove", "Remove members"
        MEMBERS_REPLACE = "members.replace", "Replace members"
        PERMISSIONS_ADD = "permissions.add", "Add permissions"
        PERMISSIONS_REPLACE = "permissions.replace", "Replace permissions"

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_username = models.CharField(max_length=150, help_text="Kept even if the account is deleted.")
    action = models.CharField(max_length=40, choices=Action.choices, db_index=True)
    group_id = models.CharField(max_length=64, blank=True, db_index=True)
    group_name = models.CharField(max_length=200, blank=True, help_text="The group's name at the time.")
    summary = models.CharField(max_length=500)
    details = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True)
    upstream_status = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)
    request_id = models.CharField(max_length=64, blank=True, db_index=True)
    submission_key = models.CharField(  # noqa: DJ001 - NULL keeps keyless entries out of the unique constraint
        max_length=64, null=True, blank=True, help_text="One per form shown; stops a double submission."
    )

    objects = AuditQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        default_permissions = ("view",)
        verbose_name_plural = "audit entries"
        constraints = [
            # A failed attempt may be submitted again; a pending or applied one may not.
            models.UniqueConstraint(
                fields=["submission_key"],
                condition=~models.Q(status="failed"),
                name="audit_one_live_entry_per_submission",
            )
        ]

    def __str__(self) -> str:
        return self.summary

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise PermissionError("Audit entries cannot be changed.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError("Audit entries cannot be deleted.")

    @property
    def outcome(self) -> str:
        return self.get_status_display()
