"""Group owners: the owners panel of a group's page (Administrators set them), and "Groups I own"."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers

from groups_app.forms import OwnerForm
from groups_app.roles import MANAGE_GROUPS, VIEW
from groups_app.rules import book
from groups_app.services.approvals.access_requests import decidable_by
from groups_app.services.errors import InvalidInput, NotAllowed
from groups_app.services.groups import group_get
from groups_app.services.mirror.selectors import mirrored_group_or_none, mirrored_roles
from groups_app.services.owners import (
    group_owner_add,
    group_owner_remove,
    group_owners,
    groups_owned_by,
    is_owner,
    requests_for_owned_groups,
)
from groups_app.services.workspace import group_is_privileged
from groups_app.views.submit import show_errors

OWNERS_PANEL = "groups_app/group_owners.html#owners-panel"


def _panel_context(request: HttpRequest, group_id: str, form: OwnerForm | None = None) -> dict:
    return {
        "group_id": group_id,
        "owners": group_owners(group_id),
        # Who decides a request when nobody owns the group: a privileged group's, Administrators.
        "is_privileged": _is_privileged(group_id),
        "can_set_owners": book.may_act(request.user, MANAGE_GROUPS),
        "can_describe": book.may_describe(request.user, group_id=group_id),
        "owner_form": form or OwnerForm(),
    }


def _is_privileged(group_id: str) -> bool:
    group = mirrored_group_or_none(group_id)
    return group is not None and group_is_privileged(group, mirrored_roles())


def _may_see(request: HttpRequest, group_id: str) -> bool:
    return request.user.has_perm(VIEW) or is_owner(request.user, group_id)


@require_http_methods(["GET", "POST"])
@vary_on_headers("HX-Request", "HX-Target")
@login_required
def group_owners_view(request: HttpRequest, group_id: str) -> HttpResponse:
    """A group's owners; Administrators add one by email or username (audited)."""
    if not _may_see(request, group_id):
        return render(request, "groups_app/no_role.html", status=403)
    form = OwnerForm(request.POST or None)
    group = None
    is_refused = False
    if request.method == "POST" and form.is_valid():
        # Someone who may not set owners is refused (and audited) before Segment is read.
        group = group_get(group_id=group_id) if book.may_act(request.user, MANAGE_GROUPS) else None
        try:
            owner = group_owner_add(
                actor=request.user,
                group_id=group_id,
                group_name=group.name if group else "",
                owner=form.cleaned_data["owner"],
            )
        except InvalidInput as exc:
            show_errors(form, exc)
        except NotAllowed as exc:
            form.add_error(None, exc.message)
            is_refused = True
        else:
            messages.success(request, f"{owner.label} now owns {owner.group_name}.")
            if not request.htmx:
                return redirect("groups:owners", group_id=group_id)
            form = OwnerForm()
    context = _panel_context(request, group_id, form)
    status = 403 if is_refused else 422 if form.errors else 200
    if request.htmx and request.htmx.target == "owners-panel":
        return render(request, OWNERS_PANEL, context, status=status)
    context.update(group=group or group_get(group_id=group_id), nav_section="groups")
    return render(request, "groups_app/group_owners.html", context, status=status)


@require_POST
@login_required
def group_owner_remove_view(request: HttpRequest, group_id: str, owner_id: int) -> HttpResponse:
    """Remove an owner (Administrators; audited)."""
    try:
        owner = group_owner_remove(actor=request.user, group_id=group_id, owner_id=owner_id)
    except (InvalidInput, NotAllowed) as exc:
        messages.error(request, exc.message)
        status = 403 if isinstance(exc, NotAllowed) else 422
    else:
        messages.success(request, f"{owner.label} no longer owns {owner.group_name}.")
        status = 200
    if request.htmx:
        return render(request, OWNERS_PANEL, _panel_context(request, group_id), status=status)
    return redirect("groups:owners", group_id=group_id)


@require_GET
@login_required
def owned_groups_view(request: HttpRequest) -> HttpResponse:
    """Groups I own, and the requests for them that wait for a person."""
    owned = list(groups_owned_by(request.user))
    waiting = list(requests_for_owned_groups(request.user))
    allowed = decidable_by(request.user, waiting)
    access_requests = [(r, r.pk in allowed) for r in waiting]
    context = {"owned": owned, "access_requests": access_requests, "nav_section": "owned"}
    return render(request, "groups_app/owned_groups.html", context)
