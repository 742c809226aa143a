from django.contrib import admin

from groups_app.models import AuditEntry, SyncRun


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


@admin.register(SyncRun)
class SyncRunAdmin(admin.ModelAdmin):
    """Read-only: each reading of the workspace into the mirror, with its calls, pages and errors."""

    list_display = (
        "started_at",
        "kind",
        "group_id",
        "status",
        "duration",
        "calls",
        "pages",
        "page_size",
        "group_count",
        "member_count",
        "observed_count",
        "trigger",
    )
    list_filter = ("kind", "status")
    search_fields = ("group_id", "trigger")
    date_hierarchy = "started_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
