"""The sandbox workspace's own data. The dashboard never reads these models: it talks
to the sandbox through the Segment client, exactly as it talks to Segment."""

import secrets
import string

from django.db import models

ID_ALPHABET = string.ascii_letters + string.digits
ID_LENGTH = 27


def new_id() -> str:
    """An identifier shaped like Segment's: 27 letters and digits."""
    return "".join(secrets.choice(ID_ALPHABET) for _ in range(ID_LENGTH))


class WorkspaceUser(models.Model):
    id = models.CharField(primary_key=True, max_length=32, default=new_id)
    name = models.CharField(max_length=200)
    email = models.EmailField(unique=True, help_text="Stored lower-case.")

    class Meta:
        ordering = ["email"]

    def __str__(self) -> str:
        return self.email


class Role(models.Model):
    id = models.CharField(primary_key=True, max_length=32, default=new_id)
    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class UserGroup(models.Model):
    id = models.CharField(primary_key=True, max_length=32, default=new_id)
    name = models.CharField(max_length=100)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    group = models.ForeignKey(UserGroup, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(WorkspaceUser, on_delete=models.CASCADE, related_name="memberships")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["group", "user"], name="sandbox_unique_membership")]

    def __str__(self) -> str:
        return f"{self.user_id} in {self.group_id}"


class Invite(models.Model):
    """An email added to a group that is not (yet) a workspace user."""

    group = models.ForeignKey(UserGroup, on_delete=models.CASCADE, related_name="invites")
    email = models.EmailField(help_text="Stored lower-case.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["group", "email"], name="sandbox_unique_invite")]

    def __str__(self) -> str:
        return f"{self.email} invited to {self.group_id}"


class GroupPermission(models.Model):
    """A role the group grants on resources, kept in the API's own shape."""

    group = models.ForeignKey(UserGroup, on_delete=models.CASCADE, related_name="permissions")
    role = models.ForeignKey(Role, on_delete=models.PROTECT, related_name="+")
    resources = models.JSONField(default=list, help_text='[{"id", "type", "labels"?}, …]')

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.role_id} on {self.group_id}"


class Resource(models.Model):
    """Something a permission can grant a role on: the workspace, a source, warehouse, space or function."""

    id = models.CharField(primary_key=True, max_length=32, default=new_id)
    type = models.CharField(max_length=16, db_index=True)
    name = models.CharField(max_length=200)
    function_type = models.CharField(
        max_length=24, blank=True, help_text="For functions: SOURCE, DESTINATION, …"
    )

    class Meta:
        ordering = ["type", "name", "id"]

    def __str__(self) -> str:
        return f"{self.type} {self.name}"
