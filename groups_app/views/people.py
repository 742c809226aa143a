"""People: search everyone across the workspace, see one person's access, and change it."""

from __future__ import annotations

from django.contrib.auth.decorators import permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers

from groups_app.forms import CopyAccessForm, PeopleQuery, PersonGroupsForm
from groups_app.models import AuditEntry
from groups_app.roles import CHANGE_MEMBERSHIP, VIEW
from groups_app.services.changes import change_refused
from groups_app.services.errors import InvalidInput
from groups_app.services.groups import cached_resource_names
from groups_app.services.people import (
    PersonChange,
    checked_person_email,
    copy_access_preview,
    groups_to_add,
    people_search,
    person_add_to_groups,
    person_detail,
    person_groups,
    person_remove_from_groups,
)
from groups_app.views.submit import change_permission_required, form_error_text, show_errors

Action = AuditEntry.Action


@require_GET
@permission_required(VIEW, raise_exception=True)
@vary_on_headers("HX-Request", "HX-Target")
def people_view(request: HttpRequest) -> HttpResponse:
    """Everyone in any group, searched by email or name, from the mirror."""
    query = PeopleQuery(request.GET)
    query.is_valid()
    q = query.cleaned_data.get("q") or ""
    listing = people_search(query=q, page=query.cleaned_data.get("page") or 1)
    template = "groups_app/people_list.html"
    if request.htmx and request.htmx.target == "people-table":
        template += "#people-table"
    context = {"listing": listing, "q": q, "query": request.GET, "nav_section": "people"}
    return render(request, template, context)


@require_GET
@permission_required(VIEW, raise_exception=True)
@vary_on_headers("HX-Request", "HX-Target")
def person_view(request: HttpRequest, email: str) -> HttpResponse:
    """One person's groups, the access they grant, open requests and audit history; with
    `?source=` the groups another person has that this one lacks (copy access)."""
    if request.htmx and request.htmx.target == "add-candidates":
        context = {"candidates": groups_to_add(email=email, query=request.GET.get("add_q", "")[:200])}
        return render(request, "groups_app/person_detail.html#add-candidates", context)
    copy_form = CopyAccessForm(request.GET if "source" in request.GET else None)
    preview = None
    if copy_form.is_bound and copy_form.is_valid():
        try:
            preview = copy_access_preview(email=email, source=copy_form.cleaned_data["source"])
        except InvalidInput as exc:
            show_errors(copy_form, exc)
    return _person_page(request, email, copy_form=copy_form, preview=preview)


@require_POST
@change_permission_required(CHANGE_MEMBERSHIP, Action.MEMBERS_REMOVE)
def person_remove_view(request: HttpRequest, email: str) -> HttpResponse:
    """Remove the person from the chosen groups: one audited change per group."""
    return _person_change(request, email, action=Action.MEMBERS_REMOVE, change=person_remove_from_groups)


@require_POST
@change_permission_required(CHANGE_MEMBERSHIP, Action.MEMBERS_ADD)
def person_add_view(request: HttpRequest, email: str) -> HttpResponse:
    """Add the person to the chosen groups (also how a copy of someone's access is applied)."""
    return _person_change(request, email, action=Action.MEMBERS_ADD, change=person_add_to_groups)


def _person_change(request: HttpRequest, email: str, *, action: str, change) -> HttpResponse:
    """Validate the chosen groups against those offered, confirm a removal, then change; the
    page (with the person's whole detail) is read once, after."""
    try:
        email = checked_person_email(email)
    except InvalidInput:
        return _not_an_email(request, email)
    if action == Action.MEMBERS_REMOVE:
        offered = [(g.group.id, g.group.name) for g in person_groups(email)]
    else:
        offered = groups_to_add(email=email, group_ids=request.POST.getlist("groups"))
    form = PersonGroupsForm(request.POST, group_choices=offered)
    if not form.is_valid():
        change_refused(actor=request.user, action=action, reason=form_error_text(form), path=request.path)
        return _person_page(request, email, **{_form_name(action): form}, status=422)
    if action == Action.MEMBERS_REMOVE and request.POST.get("confirmed") != "yes":
        names = dict(offered)
        chosen = [(g, names[g]) for g in form.cleaned_data["groups"]]
        return _person_page(request, email, remove_form=form, confirm_remove=chosen)
    try:
        result: PersonChange = change(
            actor=request.user,
            email=email,
            group_ids=form.cleaned_data["groups"],
            submission_key=form.cleaned_data.get("submission_key"),
        )
    except InvalidInput as exc:
        show_errors(form, exc)
        return _person_page(request, email, **{_form_name(action): form}, status=422)
    return _person_page(request, email, change=result)


def _form_name(action: str) -> str:
    return "remove_form" if action == Action.MEMBERS_REMOVE else "add_form"


def _not_an_email(request: HttpRequest, email: str) -> HttpResponse:
    return render(request, "groups_app/person_detail.html", {"bad_email": email}, status=404)


def _person_page(
    request: HttpRequest,
    email: str,
    *,
    remove_form: PersonGroupsForm | None = None,
    add_form: PersonGroupsForm | None = None,
    copy_form: CopyAccessForm | None = None,
    preview=None,
    change: PersonChange | None = None,
    confirm_remove: list[tuple[str, str]] | None = None,
    status: int = 200,
) -> HttpResponse:
    try:
        person = person_detail(email)
    except InvalidInput:
        return _not_an_email(request, email)
    context = {
        "person": person,
        "nav_section": "people",
        "can_change": request.user.has_perm(CHANGE_MEMBERSHIP),
        "remove_form": remove_form
        or PersonGroupsForm(group_choices=[(g.group.id, g.group.name) for g in person.groups]),
        "add_form": add_form or PersonGroupsForm(),
        "add_q": request.GET.get("add_q", "")[:200],
        "candidates": groups_to_add(email=person.email, query=request.GET.get("add_q", "")[:200]),
        "copy_form": copy_form or CopyAccessForm(),
        "copy_apply_form": PersonGroupsForm(
            group_choices=[(g.group.id, g.group.name) for g in preview.to_add] if preview else []
        ),
        "preview": preview,
        "change": change,
        "confirm_remove": confirm_remove,
        # Resource names when they are cached already: this page makes no upstream call.
        "resource_names": cached_resource_names(),
    }
    return render(request, "groups_app/person_detail.html", context, status=status)
