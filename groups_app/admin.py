from django.contrib import admin

from groups_app.models import AuditEntry


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    """Read-only: audit entries are written by the dashboard and never edited or deleted."""

    list_display = ("created_at", "actor_username", "action", "group_name", "status", "upstream_status")
    list_filter = ("status", "action")
    search_fields = ("summary", "actor_username", "group_name", "group_id", "request_id")
    date_hierarchy = "created_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
