"""Forms that change groups, members and permissions. Each POST goes through one service."""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseClientRedirect, trigger_client_event

from groups_app.forms import (
    AddMembersForm,
    AddPermissionForm,
    DeleteGroupForm,
    GroupNameForm,
    PermissionSetForm,
    PermissionSetFormSet,
    RemoveMembersForm,
    ReplaceMembersForm,
    permission_rows,
)
from groups_app.roles import CHANGE_MEMBERSHIP, CHANGE_PERMISSIONS, MANAGE_GROUPS
from groups_app.segment import Role, SegmentError, UserGroup, ValidationFailed
from groups_app.services.errors import DuplicateSubmission, InvalidInput, StaleChange
from groups_app.services.groups import group_get, roles_by_id
from groups_app.services.manage import group_create, group_delete, group_rename
from groups_app.services.membership import (
    group_members_add,
    group_members_remove,
    group_members_replace,
    group_members_replace_preview,
)
from groups_app.services.permissions import (
    group_permissions_add,
    group_permissions_preview,
    group_permissions_replace,
)

DUPLICATE_MESSAGE = "This form was already submitted; the change was not sent again."
MEMBERS_CHANGED = "members-changed"
GROUP_CHANGED = "group-changed"


def show_errors(form, exc: InvalidInput | ValidationFailed, field_map: dict[str, str] | None = None) -> None:
    """Put each error next to its field; upstream fields like `emails.3` map to `emails`."""
    field_map = field_map or {}
    placed = False
    for field, message in exc.field_errors.items():
        name = field_map.get(field) or field_map.get(field.split(".")[0]) or field.split(".")[0]
        if name in form.fields:
            if isinstance(exc, ValidationFailed) and "." in field and name == "emails":
                message = _name_the_email(form, field, message)
            form.add_error(name, message)
            placed = True
    if not placed:
        form.add_error(None, exc.message)


def _name_the_email(form, field: str, message: str) -> str:
    """Upstream says `emails.3`; people need to know which address that is."""
    try:
        index = int(field.split(".")[1])
        return f"{form.cleaned_data['emails'][index]}: {message}"
    except (KeyError, IndexError, ValueError, TypeError):
        return message


def partial_failure_message(exc: SegmentError) -> str:
    """Say exactly which emails were applied when a change sent in batches failed partway."""
    applied, rest = exc.completed_emails, exc.remaining_emails
    return (
        f"Segment failed partway: {len(applied)} email{'s' if len(applied) != 1 else ''} were applied "
        f"({', '.join(applied)}); {len(rest)} were not applied or their outcome is unknown "
        f"({', '.join(rest)}). {exc.message}"
    )


def _after_change(request: HttpRequest, response: HttpResponse, *events: str) -> HttpResponse:
    for event in events:
        trigger_client_event(response, event)
    return response


# -- groups ----------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@permission_required(MANAGE_GROUPS, raise_exception=True)
def group_create_view(request: HttpRequest) -> HttpResponse:
    """Create a group, then land on its page."""
    form = GroupNameForm(request.POST or None)
    if form.is_valid():
        try:
            group = group_create(
                actor=request.user,
                name=form.cleaned_data["name"],
                submission_key=form.cleaned_data["submission_key"],
            )
        except (InvalidInput, ValidationFailed) as exc:
            show_errors(form, exc)
        except DuplicateSubmission:
            form.add_error(None, DUPLICATE_MESSAGE)
        else:
            messages.success(request, f"Created the group {group.name}.")
            url = reverse("groups:detail", args=[group.id])
            return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
    return render(
        request,
        "groups_app/group_create.html",
        {"form": form, "nav_section": "groups"},
        status=422 if form.errors else 200,
    )


@require_http_methods(["GET", "POST"])
@permission_required(MANAGE_GROUPS, raise_exception=True)
@vary_on_headers("HX-Request")
def group_rename_view(request: HttpRequest, group_id: str) -> HttpResponse:
    """Rename in place (htmx swaps the page header) or on its own page."""
    group = group_get(group_id=group_id)
    form = GroupNameForm(request.POST or None, initial={"name": group.name})
    if form.is_valid():
        try:
            group = group_rename(
                actor=request.user,
                group_id=group_id,
                name=form.cleaned_data["name"],
                submission_key=form.cleaned_data["submission_key"],
            )
        except (InvalidInput, ValidationFailed) as exc:
            show_errors(form, exc)
        except DuplicateSubmission:
            form.add_error(None, DUPLICATE_MESSAGE)
        else:
            messages.success(request, f"Renamed to {group.name}.")
            if not request.htmx:
                return redirect("groups:detail", group_id=group_id)
            response = HttpResponseClientRedirect(reverse("groups:detail", args=[group_id]))
            return _after_change(request, response, GROUP_CHANGED)
    template = "groups_app/group_rename.html"
    if request.htmx:
        template += "#rename-form"
    return render(request, template, {"form": form, "group": group}, status=422 if form.errors else 200)


@require_http_methods(["GET", "POST"])
@permission_required(MANAGE_GROUPS, raise_exception=True)
def group_delete_view(request: HttpRequest, group_id: str) -> HttpResponse:
    """Delete after typing the group's name; says how many members lose its access."""
    group = group_get(group_id=group_id)
    form = DeleteGroupForm(request.POST or None)
    if form.is_valid():
        try:
            group_delete(
                actor=request.user,
                group_id=group_id,
                confirm_name=form.cleaned_data["confirm_name"],
                submission_key=form.cleaned_data["submission_key"],
            )
        except InvalidInput as exc:
            show_errors(form, exc)
        except DuplicateSubmission:
            form.add_error(None, DUPLICATE_MESSAGE)
        else:
            messages.success(request, f"Deleted the group {group.name}.")
            url = reverse("groups:list")
            return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
    return render(
        request,
        "groups_app/group_delete.html",
        {"form": form, "group": group, "nav_section": "groups"},
        status=422 if form.errors else 200,
    )


# -- members ----------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@permission_required(CHANGE_MEMBERSHIP, raise_exception=True)
@vary_on_headers("HX-Request")
def members_add_view(request: HttpRequest, group_id: str) -> HttpResponse:
    """Add pasted emails; the users and invites tables refresh in place."""
    form = AddMembersForm(request.POST or None)
    result = None
    if form.is_valid():
        try:
            result = group_members_add(
                actor=request.user,
                group_id=group_id,
                emails=form.cleaned_data["emails"],
                submission_key=form.cleaned_data["submission_key"],
            )
        except (InvalidInput, ValidationFailed) as exc:
            show_errors(form, exc)
        except SegmentError as exc:
            if not exc.completed_emails:
                raise
            form.add_error("emails", partial_failure_message(exc))
        except DuplicateSubmission:
            form.add_error(None, DUPLICATE_MESSAGE)
        else:
            if not request.htmx:
                messages.success(request, result.message)
                return redirect("groups:detail", group_id=group_id)
            form = AddMembersForm()
    template = "groups_app/members_add.html"
    if request.htmx:
        template += "#add-members-form"
    group = None if request.htmx else group_get(group_id=group_id)
    response = render(
        request,
        template,
        {"form": form, "result": result, "group_id": group_id, "group": group},
        status=422 if form.errors else 200,
    )
    return _after_change(request, response, MEMBERS_CHANGED, GROUP_CHANGED) if result else response


@require_http_methods(["GET", "POST"])
@permission_required(CHANGE_MEMBERSHIP, raise_exception=True)
@vary_on_headers("HX-Request")
def members_remove_view(request: HttpRequest, group_id: str) -> HttpResponse:
    """Confirm who loses access (GET ?email=…), then remove them (POST)."""
    if request.method == "POST":
        form = RemoveMembersForm(request.POST)
    else:
        form = RemoveMembersForm(emails=request.GET.getlist("email"))
    emails = form.initial.get("emails") or request.POST.getlist("emails")
    if request.method == "POST" and form.is_valid():
        emails = form.cleaned_data["emails"]
        try:
            group_members_remove(
                actor=request.user,
                group_id=group_id,
                emails=emails,
                submission_key=form.cleaned_data["submission_key"],
            )
        except (InvalidInput, ValidationFailed) as exc:
            show_errors(form, exc)
        except DuplicateSubmission:
            form.add_error(None, DUPLICATE_MESSAGE)
        else:
            text = f"Removed {', '.join(emails)}." if len(emails) <= 3 else f"Removed {len(emails)} members."
            if not request.htmx:
                messages.success(request, text)
                return redirect("groups:detail", group_id=group_id)
            response = render(
                request, "groups_app/members_remove.html#member-dialog", {"done": text, "group_id": group_id}
            )
            return _after_change(request, response, MEMBERS_CHANGED, GROUP_CHANGED)
    template = "groups_app/members_remove.html"
    if request.htmx:
        template += "#member-dialog"
    group = group_get(group_id=group_id)
    return render(
        request,
        template,
        {"form": form, "emails": emails, "group": group, "group_id": group_id, "nav_section": "groups"},
        status=422 if form.errors else 200,
    )


@require_http_methods(["GET", "POST"])
@permission_required(CHANGE_MEMBERSHIP, raise_exception=True)
def members_replace_view(request: HttpRequest, group_id: str) -> HttpResponse:
    """Paste the complete list, preview the difference, confirm to apply it."""
    form = ReplaceMembersForm(request.POST or None)
    preview = None
    note = ""
    if form.is_valid():
        emails = form.cleaned_data["emails"]
        try:
            if "confirm" in request.POST:
                preview = group_members_replace(
                    actor=request.user,
                    group_id=group_id,
                    emails=emails,
                    fingerprint=form.cleaned_data["fingerprint"],
                    submission_key=form.cleaned_data["submission_key"],
                )
                messages.success(
                    request,
                    f"Members replaced: {len(preview.to_add)} added, {len(preview.to_remove)} removed.",
                )
                return redirect("groups:detail", group_id=group_id)
            preview = group_members_replace_preview(group_id=group_id, emails=emails)
        except StaleChange as exc:
            preview, note = exc.preview, exc.message
        except (InvalidInput, ValidationFailed) as exc:
            show_errors(form, exc)
            preview = None
        except DuplicateSubmission:
            form.add_error(None, DUPLICATE_MESSAGE)
    group = preview.group if preview else group_get(group_id=group_id)
    context = {
        "form": form,
        "preview": preview,
        "note": note,
        "group": group,
        "nav_section": "groups",
        "submission_key": uuid.uuid4().hex,
        "emails_text": ", ".join(preview.emails) if preview else "",
    }
    return render(request, "groups_app/members_replace.html", context, status=422 if form.errors else 200)


# -- permissions --------------------------------------------------------------------------------


def _roles_for(group: UserGroup) -> dict[str, Role]:
    """Roles to choose from: the workspace's, plus any the group holds that the list lacks."""
    roles = dict(roles_by_id())
    for permission in group.permissions:
        roles.setdefault(
            permission.role_id, Role(permission.role_id, permission.role_name or permission.role_id)
        )
    return roles


@require_http_methods(["GET", "POST"])
@permission_required(CHANGE_PERMISSIONS, raise_exception=True)
def permissions_add_view(request: HttpRequest, group_id: str) -> HttpResponse:
    """Grant a role on resources."""
    group = group_get(group_id=group_id)
    roles = _roles_for(group)
    form = AddPermissionForm(request.POST or None, roles=roles)
    if form.is_valid():
        try:
            group_permissions_add(
                actor=request.user,
                group_id=group_id,
                permissions=[form.permission()],
                submission_key=form.cleaned_data["submission_key"],
            )
        except (InvalidInput, ValidationFailed) as exc:
            show_errors(form, exc, {"permissions": "role", "roleId": "role", "resources": "resource_ids"})
        except DuplicateSubmission:
            form.add_error(None, DUPLICATE_MESSAGE)
        else:
            messages.success(request, f"Granted {form.permission().role_name} to {group.name}.")
            url = reverse("groups:detail", args=[group_id])
            return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
    return render(
        request,
        "groups_app/permissions_add.html",
        {"form": form, "group": group, "nav_section": "groups"},
        status=422 if form.errors else 200,
    )


@require_http_methods(["GET", "POST"])
@permission_required(CHANGE_PERMISSIONS, raise_exception=True)
def permissions_edit_view(request: HttpRequest, group_id: str) -> HttpResponse:
    """Edit the full set of permissions, preview the difference, confirm to replace it."""
    group = group_get(group_id=group_id)
    roles = _roles_for(group)
    form = PermissionSetForm(request.POST or None)
    rows = PermissionSetFormSet(
        request.POST or None,
        initial=permission_rows(group.permissions),
        form_kwargs={"roles": roles},
        prefix="rows",
    )
    preview = None
    note = ""
    if request.method == "POST" and "add_row" in request.POST:
        rows = PermissionSetFormSet(
            _with_extra_row(request.POST, "rows"), form_kwargs={"roles": roles}, prefix="rows"
        )
        form = PermissionSetForm(request.POST)
        form.is_valid()
    elif form.is_valid() and rows.is_valid():
        permissions = rows.permissions()
        try:
            if "confirm" in request.POST:
                preview = group_permissions_replace(
                    actor=request.user,
                    group_id=group_id,
                    permissions=permissions,
                    fingerprint=form.cleaned_data["fingerprint"],
                    confirm_empty=form.cleaned_data["confirm_empty"],
                    submission_key=form.cleaned_data["submission_key"],
                )
                messages.success(
                    request,
                    f"Permissions replaced: {len(preview.added)} added, {len(preview.removed)} removed.",
                )
                return redirect("groups:detail", group_id=group_id)
            preview = group_permissions_preview(group_id=group_id, permissions=permissions)
        except StaleChange as exc:
            preview, note = exc.preview, exc.message
        except (InvalidInput, ValidationFailed) as exc:
            show_errors(form, exc)
            preview = group_permissions_preview(group_id=group_id, permissions=permissions)
        except DuplicateSubmission:
            form.add_error(None, DUPLICATE_MESSAGE)
    context = {
        "form": form,
        "rows": rows,
        "preview": preview,
        "note": note,
        "group": group,
        "nav_section": "groups",
        # The confirmation is a new form: it gets its own key, and the fingerprint it was previewed on.
        "submission_key": uuid.uuid4().hex,
    }
    has_errors = bool(form.errors) or (rows.is_bound and any(rows.errors))
    return render(request, "groups_app/permissions_edit.html", context, status=422 if has_errors else 200)


def _with_extra_row(data, prefix: str):
    """The submitted rows plus one blank row (a tampered count is left for the formset to refuse)."""
    data = data.copy()
    total = data.get(f"{prefix}-TOTAL_FORMS", "")
    if total.isdigit():
        data[f"{prefix}-TOTAL_FORMS"] = str(int(total) + 1)
    return data
