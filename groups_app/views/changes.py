"""Forms that change groups, members and permissions. Each POST goes through one service.

No view reads the group before a POST: the service reads it once. A failed POST reads it
to show the form again.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseClientRedirect, retarget, trigger_client_event

from groups_app.forms import (
    AddMembersForm,
    AddPermissionForm,
    DeleteGroupForm,
    GroupNameForm,
    PermissionSetForm,
    PermissionSetFormSet,
    ProposalRejectForm,
    RemoveMembersForm,
    ReplaceMembersForm,
    parse_resources,
    permission_rows,
)
from groups_app.models import AuditEntry, ChangeProposal
from groups_app.roles import CHANGE_MEMBERSHIP, CHANGE_PERMISSIONS, MANAGE_GROUPS
from groups_app.segment import IamRole, UserGroup, ValidationFailed
from groups_app.services.approvals.changes import (
    members_add_or_file,
    permissions_add_or_propose,
    permissions_replace_or_propose,
)
from groups_app.services.approvals.proposals import proposal_approve, proposal_reject
from groups_app.services.errors import ChangeOutcomeUnknown, ServiceError
from groups_app.services.groups import group_get, group_membership, resource_catalog, roles_by_id
from groups_app.services.jobs import REPLACE_IN_WORKER_OVER, members_replace_start
from groups_app.services.manage import group_create, group_delete, group_rename
from groups_app.services.membership import (
    ReplacePreview,
    group_members_remove,
    group_members_replace,
    group_members_replace_preview,
)
from groups_app.services.mirror.selectors import known_workspace_users, mirrored_membership
from groups_app.services.people import PersonNotFound, person_emails
from groups_app.services.permissions import group_permissions_preview
from groups_app.views.jobs import to_started_job
from groups_app.views.submit import Submission, change_permission_required, submit_change, submit_preview

Action = AuditEntry.Action
Resolution = AuditEntry.Resolution
MEMBERS_CHANGED = "members-changed"
MEMBER_DIALOG_DONE = "member-dialog-done"
GROUP_CHANGED = "group-changed"


def _leave_to(request: HttpRequest, url: str) -> HttpResponse:
    """After a change that ends on another page: htmx navigates, a plain form redirects."""
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


def _announce(response: HttpResponse, submission: Submission, *events: str) -> HttpResponse:
    """Tell the page's regions to re-read themselves when the change may have altered the group."""
    if submission.may_have_changed:
        for event in events:
            # After the swap has settled: the regions refresh once the form shows its result.
            trigger_client_event(response, event, after="settle")
    return response


# -- groups ----------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@change_permission_required(MANAGE_GROUPS, Action.GROUP_CREATE)
def group_create_view(request: HttpRequest) -> HttpResponse:
    """Create a group, then land on its page."""
    form = GroupNameForm(request.POST or None)
    submission = submit_change(
        request,
        form,
        action=Action.GROUP_CREATE,
        call=lambda data: group_create(
            actor=request.user, name=data["name"], submission_key=data["submission_key"]
        ),
    )
    if submission.is_done:
        messages.success(request, f"Created the group {submission.result.name}.")
        return _leave_to(request, reverse("groups:detail", args=[submission.result.id]))
    context = {"form": form, "submission": submission, "nav_section": "groups"}
    return render(request, "groups_app/group_create.html", context, status=submission.status)


@require_http_methods(["GET", "POST"])
@change_permission_required(MANAGE_GROUPS, Action.GROUP_RENAME)
@vary_on_headers("HX-Request")
def group_rename_view(request: HttpRequest, group_id: str) -> HttpResponse:
    """Rename in place (htmx swaps the page header) or on its own page."""
    form = GroupNameForm(request.POST or None)
    submission = submit_change(
        request,
        form,
        action=Action.GROUP_RENAME,
        group_id=group_id,
        call=lambda data: group_rename(
            actor=request.user, group_id=group_id, name=data["name"], submission_key=data["submission_key"]
        ),
    )
    if submission.is_done:
        messages.success(request, f"Renamed to {submission.result.name}.")
        response = _leave_to(request, reverse("groups:detail", args=[group_id]))
        return _announce(response, submission, GROUP_CHANGED)
    group = group_get(group_id=group_id)
    if request.method == "GET":
        form = GroupNameForm(initial={"name": group.name})
    template = "groups_app/group_rename.html" + ("#rename-form" if request.htmx else "")
    context = {"form": form, "group": group, "submission": submission}
    return _announce(render(request, template, context, status=submission.status), submission, GROUP_CHANGED)


@require_http_methods(["GET", "POST"])
@change_permission_required(MANAGE_GROUPS, Action.GROUP_DELETE)
def group_delete_view(request: HttpRequest, group_id: str) -> HttpResponse:
    """Delete after typing the group's name; says how many members lose its access."""
    form = DeleteGroupForm(request.POST or None)
    submission = submit_change(
        request,
        form,
        action=Action.GROUP_DELETE,
        group_id=group_id,
        call=lambda data: group_delete(
            actor=request.user,
            group_id=group_id,
            confirm_name=data["confirm_name"],
            submission_key=data["submission_key"],
        ),
    )
    if submission.is_done:
        messages.success(request, f"Deleted the group {submission.result.name}.")
        return _leave_to(request, reverse("groups:list"))
    group = group_get(group_id=group_id)
    context = {"form": form, "group": group, "submission": submission, "nav_section": "groups"}
    return render(request, "groups_app/group_delete.html", context, status=submission.status)


# -- members ----------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@change_permission_required(CHANGE_MEMBERSHIP, Action.MEMBERS_ADD)
@vary_on_headers("HX-Request")
def members_add_view(request: HttpRequest, group_id: str) -> HttpResponse:
    """Add pasted emails; the users and invites tables refresh in place."""
    form = AddMembersForm(request.POST or None)
    submission = submit_change(
        request,
        form,
        action=Action.MEMBERS_ADD,
        group_id=group_id,
        call=lambda data: members_add_or_file(
            actor=request.user,
            group_id=group_id,
            emails=data["emails"],
            submission_key=data["submission_key"],
            ends_on=data.get("ends_on"),
        ),
    )
    if submission.is_done:
        if not request.htmx:
            messages.success(request, submission.result.message)
            return redirect("groups:detail", group_id=group_id)
        form = AddMembersForm()
    template = "groups_app/members_add.html"
    if request.htmx:
        template += "#add-members-form"
    context = {
        "form": form,
        "submission": submission,
        "result": submission.result,
        "group_id": group_id,
        "group": None if request.htmx else group_get(group_id=group_id),
    }
    response = render(request, template, context, status=submission.status)
    return _announce(response, submission, MEMBERS_CHANGED, GROUP_CHANGED)


@require_http_methods(["GET", "POST"])
@change_permission_required(CHANGE_MEMBERSHIP, Action.MEMBERS_REMOVE)
@vary_on_headers("HX-Request")
def members_remove_view(request: HttpRequest, group_id: str) -> HttpResponse:
    """Confirm who loses access (GET ?person=<key>…, never an address in the URL), then remove
    them (POST)."""
    not_found = ""
    if request.method == "POST":
        form = RemoveMembersForm(request.POST)
    else:
        try:
            chosen = person_emails(request.GET.getlist("person"))
        except PersonNotFound as exc:
            chosen, not_found = [], exc.message
        form = RemoveMembersForm(emails=chosen)
    submission = submit_change(
        request,
        form,
        action=Action.MEMBERS_REMOVE,
        group_id=group_id,
        call=lambda data: group_members_remove(
            actor=request.user,
            group_id=group_id,
            emails=data["emails"],
            submission_key=data["submission_key"],
        ),
    )
    emails = (
        form.cleaned_data["emails"]
        if submission.is_done
        else (form.initial.get("emails") or request.POST.getlist("emails"))
    )
    applied = submission.uncertain is not None and submission.uncertain.entry.resolution == Resolution.APPLIED
    if submission.is_done or applied:
        if applied:  # Segment's answer was lost, reading back shows the removal happened
            messages.warning(request, submission.uncertain.message)
        else:
            messages.success(
                request,
                f"Removed {', '.join(emails)}." if len(emails) <= 3 else f"Removed {len(emails)} members.",
            )
        if not request.htmx:
            return redirect("groups:detail", group_id=group_id)
        # The dialog closes and empties (app.js), and the message in the banner takes focus.
        response = retarget(render(request, "base.html#banner"), "#banner")
        return _announce(response, submission, MEMBERS_CHANGED, GROUP_CHANGED, MEMBER_DIALOG_DONE)
    template = "groups_app/members_remove.html"
    if request.htmx:
        template += "#member-dialog"
    context = {
        "form": form,
        "submission": submission,
        "emails": emails,
        "people": _members_as_known(group_id, emails),
        "not_found": not_found,
        # Resending a change whose outcome is unknown is never offered; "not applied" renews the form.
        "can_submit": submission.uncertain is None or submission.uncertain.may_resubmit,
        "group": group_get(group_id=group_id),
        "group_id": group_id,
        "is_page": not request.htmx,
        "nav_section": "groups",
    }
    response = render(request, template, context, status=submission.status)
    return _announce(response, submission, MEMBERS_CHANGED, GROUP_CHANGED)


@require_http_methods(["GET", "POST"])
@change_permission_required(CHANGE_MEMBERSHIP, Action.MEMBERS_REPLACE)
def members_replace_view(request: HttpRequest, group_id: str) -> HttpResponse:
    """Paste the complete list, preview the difference, confirm to apply it.

    Previewing sends nothing and is not audited; confirming is the attempted change.
    """
    form = ReplaceMembersForm(request.POST or None)
    submission = Submission(form)
    preview = None
    if "confirm" in request.POST and _is_large(form):
        # Many addresses: the worker reads the group whole and sends the list, as a job.
        started = members_replace_start(
            actor=request.user,
            group_id=group_id,
            emails=form.cleaned_data["emails"],
            fingerprint=form.cleaned_data["fingerprint"],
            submission_key=form.cleaned_data["submission_key"],
        )
        return to_started_job(request, started.job, is_new=started.is_new)
    if "confirm" in request.POST:
        submission = submit_change(
            request,
            form,
            action=Action.MEMBERS_REPLACE,
            group_id=group_id,
            call=lambda data: group_members_replace(
                actor=request.user,
                group_id=group_id,
                emails=data["emails"],
                fingerprint=data["fingerprint"],
                confirm_empty=data["confirm_empty"],
                submission_key=data["submission_key"],
            ),
        )
        if submission.is_done:
            result = submission.result
            messages.success(
                request,
                f"Members replaced: {len(result.to_add)} added, {len(result.to_remove)} removed, "
                f"{len(result.unchanged)} unchanged.",
            )
            return redirect("groups:detail", group_id=group_id)
        if submission.stale:
            preview = submission.stale.preview
        elif "confirm_empty" in form.errors:  # show the preview again, the box next to its message
            preview = group_members_replace_preview(group_id=group_id, emails=form.cleaned_data["emails"])
    elif form.is_valid():
        preview = submit_preview(
            form,
            lambda: group_members_replace_preview(group_id=group_id, emails=form.cleaned_data["emails"]),
        )
    if request.method == "GET":
        # The list starts as the group is now: edit it rather than retype it.
        form = ReplaceMembersForm(
            initial={"emails": "\n".join(sorted(group_membership(group_id=group_id).emails))}
        )
    context = {
        "form": form,
        "submission": submission,
        "preview": preview,
        "note": submission.stale.message if submission.stale else "",
        "group": preview.group if preview else group_get(group_id=group_id),
        "nav_section": "groups",
        "submission_key": uuid.uuid4().hex,
        "emails_text": ", ".join(preview.emails) if preview else "",
        "people": _preview_people(preview) if preview else None,
    }
    return render(request, "groups_app/members_replace.html", context, status=submission.status)


def _is_large(form: ReplaceMembersForm) -> bool:
    """A valid Replace all naming more addresses than a request should send itself."""
    return form.is_valid() and len(form.cleaned_data["emails"]) > REPLACE_IN_WORKER_OVER


@dataclass(frozen=True)
class PreviewPerson:
    """One email a change names, with what the mirror knows of it."""

    email: str
    name: str = ""
    kind: str = ""  # "user", "invite", "new" (to add, never seen: invited), or "" (unknown)


def _members_as_known(group_id: str, emails) -> list[PreviewPerson]:
    """Current members of a group by name and user/invite, from the mirror where it knows them."""
    current = mirrored_membership(group_id, among=emails) if emails else None
    names = {user.email.lower(): user.name for user in current.users} if current else {}
    invites = {email.lower() for email in current.invites} if current else set()
    people = []
    for email in emails:
        key = email.lower()
        if key in names:
            people.append(PreviewPerson(email, name=names[key], kind="user"))
        else:
            people.append(PreviewPerson(email, kind="invite" if key in invites else ""))
    return people


def _preview_people(preview: ReplacePreview) -> dict[str, list[PreviewPerson]]:
    """The preview's emails with names and user/invite, from the mirror where it knows them.

    An email to add is a workspace user if the mirror has seen one in any group, else it
    will be invited.
    """
    known_users = known_workspace_users(preview.to_add)
    current = _members_as_known(preview.group.id, [*preview.to_remove, *preview.unchanged])
    return {
        "to_add": [
            PreviewPerson(email, kind="user" if email.lower() in known_users else "new")
            for email in preview.to_add
        ],
        "to_remove": current[: len(preview.to_remove)],
        "unchanged": current[len(preview.to_remove) :],
    }


# -- permissions --------------------------------------------------------------------------------


def _roles_for(group: UserGroup) -> dict[str, IamRole]:
    """Roles to choose from: the workspace's, plus any the group holds that the list lacks."""
    roles = dict(roles_by_id())
    for permission in group.permissions:
        roles.setdefault(
            permission.role_id, IamRole(permission.role_id, permission.role_name or permission.role_id)
        )
    return roles


@require_http_methods(["GET", "POST"])
@change_permission_required(CHANGE_PERMISSIONS, Action.PERMISSIONS_ADD)
def permissions_add_view(request: HttpRequest, group_id: str) -> HttpResponse:
    """Grant a role on resources picked by name, or typed as ids (labels as `id[key=value]`)."""
    roles = roles_by_id()
    catalog = resource_catalog()
    form = AddPermissionForm(request.POST or None, roles=roles, catalog=catalog)
    submission = submit_change(
        request,
        form,
        action=Action.PERMISSIONS_ADD,
        group_id=group_id,
        field_map={"permissions": "role", "roleId": "role", "resources": "resource_ids"},
        call=lambda data: permissions_add_or_propose(
            actor=request.user,
            group_id=group_id,
            permissions=[form.permission()],
            submission_key=data["submission_key"],
            confirm_unknown=data["confirm_unknown"],
        ),
    )
    if submission.is_done:
        messages.success(request, f"Granted {form.permission().role_name}.")
        return _leave_to(request, reverse("groups:detail", args=[group_id]))
    if submission.awaiting:
        messages.warning(request, submission.awaiting.message)
        return _leave_to(request, reverse("groups:detail", args=[group_id]))
    group = group_get(group_id=group_id)
    if request.method == "GET":
        form = AddPermissionForm(roles=_roles_for(group), catalog=catalog)
    context = {
        "form": form,
        "group": group,
        "submission": submission,
        "missing_types": catalog.missing,
        "nav_section": "groups",
    }
    return render(request, "groups_app/permissions_add.html", context, status=submission.status)


@require_http_methods(["GET", "POST"])
@change_permission_required(CHANGE_PERMISSIONS, Action.PERMISSIONS_REPLACE)
def permissions_edit_view(request: HttpRequest, group_id: str) -> HttpResponse:
    """Edit the full set of permissions, preview the difference, confirm to replace it.

    Labels are edited in the ids box as `id[key=value]`; what the form has no control for
    is kept from the group's current grants by the service.
    """
    group = None if request.method == "POST" else group_get(group_id=group_id)
    roles = _roles_for(group) if group else _roles_for_submitted(request.POST)
    form = PermissionSetForm(request.POST or None)
    rows = PermissionSetFormSet(
        request.POST or None,
        initial=permission_rows(group.permissions) if group else None,
        form_kwargs={"roles": roles},
        prefix="rows",
    )
    submission = Submission(form)
    preview = None
    if "add_row" in request.POST:
        rows = PermissionSetFormSet(
            _with_extra_row(request.POST, "rows"), form_kwargs={"roles": roles}, prefix="rows"
        )
        if rows.forms:  # the new row's role takes focus (app.js)
            rows.forms[-1].fields["role"].widget.attrs["data-autofocus"] = ""
        form.is_valid()
    elif "confirm" in request.POST:
        submission = submit_change(
            request,
            FormWithRows(form, rows),
            action=Action.PERMISSIONS_REPLACE,
            group_id=group_id,
            call=lambda data: permissions_replace_or_propose(
                actor=request.user,
                group_id=group_id,
                permissions=rows.permissions(),
                fingerprint=data["fingerprint"],
                confirm_empty=data["confirm_empty"],
                confirm_unknown=data["confirm_unknown"],
                submission_key=data["submission_key"],
            ),
        )
        if submission.is_done:
            result = submission.result
            messages.success(
                request, f"Permissions replaced: {len(result.added)} added, {len(result.removed)} removed."
            )
            return redirect("groups:detail", group_id=group_id)
        if submission.awaiting:
            messages.warning(request, submission.awaiting.message)
            return redirect("groups:detail", group_id=group_id)
        if submission.stale:
            preview = submission.stale.preview
        elif rows.is_valid():
            preview = group_permissions_preview(group_id=group_id, permissions=rows.permissions())
    elif request.method == "POST" and form.is_valid() and rows.is_valid():
        preview = group_permissions_preview(group_id=group_id, permissions=rows.permissions())
    group = group or (preview.group if preview else group_get(group_id=group_id))
    catalog = resource_catalog()
    names = catalog.names
    context = {
        "form": form,
        "rows": rows,
        "rows_with_names": [(row, _row_resource_names(row, names)) for row in rows],
        "catalog": catalog,
        "resource_names": names,
        "preview": preview,
        "note": submission.stale.message if submission.stale else "",
        "group": group,
        "submission": submission,
        "nav_section": "groups",
        # The confirmation is a new form: it gets its own key, and the fingerprint it was previewed on.
        "submission_key": uuid.uuid4().hex,
    }
    has_errors = bool(form.errors) or (rows.is_bound and (any(rows.errors) or bool(rows.non_form_errors())))
    status = submission.status if submission.status != 200 else (422 if has_errors else 200)
    return render(request, "groups_app/permissions_edit.html", context, status=status)


def _row_resource_names(row, names: dict[tuple[str, str], str]) -> list[str]:
    """The names of the resources a row of "Edit all" names, where the workspace's listings know them."""
    resource_type = row["resource_type"].value() or ""
    try:
        resources = parse_resources(row["resource_ids"].value() or "", resource_type)
    except ValidationError:
        return []
    return [names[(resource_type, r.id)] for r in resources if (resource_type, r.id) in names]


def _roles_for_submitted(data) -> dict[str, IamRole]:
    """On POST, without reading the group: the workspace's roles, plus role ids the rows name.

    An id that no role has is refused by Segment (a field error), never silently dropped.
    """
    roles = dict(roles_by_id())
    for key, value in data.items():
        if key.startswith("rows-") and key.endswith("-role") and value and value not in roles:
            roles[value] = IamRole(value, value)
    return roles


class FormWithRows:
    """The confirmation form and its formset, validated and reported as one form."""

    def __init__(self, form, rows) -> None:
        self._form, self._rows = form, rows

    def __getattr__(self, name):
        return getattr(self._form, name)

    def is_valid(self) -> bool:
        return self._form.is_valid() & self._rows.is_valid()

    @property
    def errors(self) -> dict:
        errors = dict(self._form.errors)
        for index, row_errors in enumerate(self._rows.errors if self._rows.is_bound else []):
            for field, field_errors in row_errors.items():
                errors[f"row {index + 1} {field}"] = field_errors
        if self._rows.is_bound and self._rows.non_form_errors():
            errors["rows"] = self._rows.non_form_errors()
        return errors


def _with_extra_row(data, prefix: str):
    """The submitted rows plus one blank row (a tampered count is left for the formset to refuse)."""
    data = data.copy()
    total = data.get(f"{prefix}-TOTAL_FORMS", "")
    if total.isdigit():
        data[f"{prefix}-TOTAL_FORMS"] = str(int(total) + 1)
    return data


# -- proposals (the two-person rule for privileged grants) ------------------------------------


@require_POST
@change_permission_required(MANAGE_GROUPS, Action.PERMISSIONS_PROPOSE)
def proposal_decide_view(
    request: HttpRequest, group_id: str, proposal_id: int, decision: str
) -> HttpResponse:
    """A second Administrator approves (applies) or rejects a proposed privileged grant."""
    if decision not in ("approve", "reject"):
        raise Http404("Unknown decision.")
    proposal = get_object_or_404(ChangeProposal, pk=proposal_id, group_id=group_id)
    try:
        if decision == "approve":
            proposal_approve(actor=request.user, proposal_id=proposal.pk)
            messages.success(
                request,
                f"Approved and applied: {proposal.get_kind_display().lower()} on {proposal.group_name}.",
            )
        else:
            form = ProposalRejectForm(request.POST)
            if not form.is_valid():
                messages.error(request, f"Not rejected: {' '.join(form.errors['reason'])}")
                return redirect("groups:detail", group_id=group_id)
            proposal_reject(actor=request.user, proposal_id=proposal.pk, reason=form.cleaned_data["reason"])
            messages.success(request, "Rejected; nothing was changed.")
    except ChangeOutcomeUnknown as exc:
        messages.warning(request, exc.message)
    except (ServiceError, ValidationFailed) as exc:
        messages.error(request, exc.message)
    return redirect("groups:detail", group_id=group_id)
