from django.conf import settings
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.urls import reverse

from groups_app.models import AuditEntry, ExternalIdentity, Job, JobItem, SyncRun
from groups_app.services.accounts import identity_link_audited, identity_unlink_audited

ADMIN_SOURCE = "the Django admin"


class ExternalIdentityInline(admin.TabularInline):
    """The single sign-on identities that sign in to this account. Adding a row links a subject,
    deleting it unlinks it (its sessions end); a row is never edited into another subject."""

    model = ExternalIdentity
    extra = 0
    fields = ("issuer", "subject", "email", "linked_by", "linked_at", "last_sign_in_at")
    readonly_fields = ("email", "linked_by", "linked_at", "last_sign_in_at")
    verbose_name = "single sign-on identity"

    def has_change_permission(self, request, obj=None):
        return False

    def get_formset(self, request, obj=None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)
        formset.form.base_fields["issuer"].initial = settings.OIDC_OP_ISSUER
        return formset


class AuditedUserAdmin(UserAdmin):
    """Accounts: roles, flags and email (each change audited through the signals in
    groups_app.signals), and their single sign-on identities. Direct permissions are not offered:
    permissions come from roles."""

    inlines = [ExternalIdentityInline]
    fieldsets = (
        (None, {"fields": ("username", "password")}),
        ("Personal info", {"fields": ("first_name", "last_name", "email")}),
        ("Roles and access", {"fields": ("is_active", "is_staff", "is_superuser", "groups")}),
        ("Important dates", {"fields": ("last_login", "date_joined")}),
    )
    filter_horizontal = ("groups",)

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None else []  # identities are linked to an existing account

    def save_formset(self, request, form, formset, change):
        if formset.model is not ExternalIdentity:
            return super().save_formset(request, form, formset, change)
        linked = formset.save(commit=False)
        for identity in formset.deleted_objects:
            identity.delete()
            identity_unlink_audited(actor=request.user, identity=identity, source=ADMIN_SOURCE)
        for identity in linked:
            identity.linked_by = request.user.get_username()
            identity.save()
            identity_link_audited(actor=request.user, identity=identity, source=ADMIN_SOURCE)
        formset.save_m2m()
        return None


admin.site.unregister(get_user_model())
admin.site.register(get_user_model(), AuditedUserAdmin)


@admin.register(ExternalIdentity)
class ExternalIdentityAdmin(admin.ModelAdmin):
    """Read-only: who signs in as whom. Link and unlink on the account's page (audited there)."""

    list_display = ("subject", "issuer", "user", "email", "linked_by", "linked_at", "last_sign_in_at")
    search_fields = ("subject", "email", "user__username", "user__email")
    list_select_related = ("user",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


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


class JobItemInline(admin.TabularInline):
    """Each item's outcome, with its audit entry (what an item sends stays on the job's page)."""

    model = JobItem
    fields = ("position", "target_name", "target_id", "status", "message", "audit_entry", "finished_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("audit_entry")


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    """Read-only: long work the worker runs (a person's groups, large Replace all, exports),
    to find a stuck one: its status, heartbeat and runs. Cancel it on its own page."""

    list_display = (
        "id",
        "title",
        "kind",
        "status",
        "created_by_username",
        "created_at",
        "done_count",
        "total",
        "runs",
        "heartbeat_at",
    )
    list_filter = ("kind", "status")
    search_fields = ("title", "created_by_username")
    date_hierarchy = "created_at"
    exclude = ("parameters", "key", "submission_key")
    inlines = [JobItemInline]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def view_on_site(self, obj):
        return reverse("groups:job", args=[obj.pk])
