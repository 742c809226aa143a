"""People: search everyone across the workspace, see one person's access, and change it.

No address reaches a URL (and so a server's access log, a browser's history or a Referer): a
person is addressed by an opaque key (`services.people.person_keys`), a search is POSTed and
remembered in the session under a random token (`?search=<token>`), and copying someone's
access is asked for by POST.
"""

from __future__ import annotations

from functools import wraps
from urllib.parse import urlencode

from django.contrib.auth.decorators import permission_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import replace_url

from groups_app.forms import (
    CopyAccessForm,
    GroupFindForm,
    PeopleListQuery,
    PeopleQuery,
    PersonGroupsForm,
    PersonPageQuery,
    segment_ids,
)
from groups_app.models import AuditEntry, Job
from groups_app.roles import CHANGE_MEMBERSHIP, VIEW
from groups_app.services.audit_log import audit_entries
from groups_app.services.changes import change_refused
from groups_app.services.errors import InvalidInput
from groups_app.services.groups import cached_resource_names
from groups_app.services.jobs import person_change_start
from groups_app.services.people import (
    ADD_CANDIDATES_SHOWN,
    PersonNotFound,
    addition_refusal,
    copy_access_preview,
    group_offers,
    groups_to_add,
    people_search,
    person_detail,
    person_email,
    person_groups,
    person_keys,
)
from groups_app.views.jobs import to_started_job
from groups_app.views.searches import SEARCH_FORGOTTEN, recalled_search, remember_search
from groups_app.views.submit import change_permission_required, form_error_text, show_errors

Action = AuditEntry.Action

HISTORY_PAGE_SIZE = 20


@require_http_methods(["GET", "POST"])
@permission_required(VIEW, raise_exception=True)
@vary_on_headers("HX-Request", "HX-Target")
def people_view(request: HttpRequest) -> HttpResponse:
    """Everyone in any group, searched by email or name, from the mirror.

    A search is POSTed, remembered in the session and shown at `?search=<token>` (redirected to,
    or pushed into the history by htmx), so what was typed — often an address — stays out of URLs.
    """
    if request.method == "POST":
        form = PeopleQuery(request.POST)
        if not form.is_valid():
            return _people_page(request, form, status=422)
        query = form.cleaned_data["q"]
        token = remember_search(request, query) if query else ""
        url = reverse("groups:people") + (f"?{urlencode({'search': token})}" if token else "")
        if not request.htmx:
            return redirect(url)
        # Typing searches as it goes: the address is replaced, never a history entry a keystroke.
        return replace_url(_people_page(request, form, query=query, token=token), url)
    params, notes = PeopleListQuery(request.GET).values()
    token = params["search"]
    query = recalled_search(request, token) if token else ""
    if query is None:
        notes.append(SEARCH_FORGOTTEN)
        query, token = "", ""
    form = PeopleQuery(initial={"q": query})
    return _people_page(request, form, query=query, token=token, page=params["page"], notes=notes)


def _people_page(
    request: HttpRequest,
    form: PeopleQuery,
    *,
    query: str = "",
    token: str = "",
    page: int = 1,
    notes: list[str] | None = None,
    status: int = 200,
) -> HttpResponse:
    template = "groups_app/people_list.html"
    if request.htmx and request.htmx.target == "people-table":
        template += "#people-table"
    context = {
        # Refused input shows its message, not everyone.
        "listing": None if form.errors else people_search(query=query, page=page),
        "form": form,
        "q": query,
        "query": {"search": token} if token else {},
        "notes": notes or [],
        "nav_section": "people",
    }
    return render(request, template, context, status=status)


def post_else_to_person_section(section: str):
    """A person's form answers POSTs; its address opened as a page (a reload after the form's
    answer, a new tab, the address bar) goes to that form on the person's page instead of an
    empty 405. Nothing is sent or recorded for it."""

    def decorate(view):
        @wraps(view)
        def wrapped(request: HttpRequest, key: str) -> HttpResponse:
            if request.method in ("GET", "HEAD"):
                return redirect(reverse("groups:person", args=[key]) + f"#{section}")
            if request.method != "POST":
                return HttpResponseNotAllowed(["GET", "HEAD", "POST"])
            return view(request, key)

        return wrapped

    return decorate


@require_GET
@permission_required(VIEW, raise_exception=True)
@vary_on_headers("HX-Request", "HX-Target")
def person_view(request: HttpRequest, key: str) -> HttpResponse:
    """One person's groups, the access they grant, open requests and audit history."""
    try:
        email = person_email(key)
    except PersonNotFound:
        return _no_such_person(request)
    return _person_page(request, email)


@post_else_to_person_section("person-copy")
@permission_required(CHANGE_MEMBERSHIP, raise_exception=True)
def person_copy_view(request: HttpRequest, key: str) -> HttpResponse:
    """The groups another person (typed, so POSTed) is in and this one is not: a preview to tick
    and add. Nothing changes here."""
    try:
        email = person_email(key)
    except PersonNotFound:
        return _no_such_person(request)
    copy_form = CopyAccessForm(request.POST)
    preview = None
    if copy_form.is_valid():
        try:
            preview = copy_access_preview(email=email, source=copy_form.cleaned_data["source"])
        except InvalidInput as exc:
            show_errors(copy_form, exc)
    status = 422 if copy_form.errors else 200
    return _person_page(request, email, copy_form=copy_form, preview=preview, status=status)


@post_else_to_person_section("person-groups")
@change_permission_required(CHANGE_MEMBERSHIP, Action.MEMBERS_REMOVE)
def person_remove_view(request: HttpRequest, key: str) -> HttpResponse:
    """Remove the person from the chosen groups: a job in the worker, one audited change per group."""
    return _person_change(request, key, action=Action.MEMBERS_REMOVE)


@post_else_to_person_section("person-add")
@change_permission_required(CHANGE_MEMBERSHIP, Action.MEMBERS_ADD)
@vary_on_headers("HX-Request", "HX-Target")
def person_add_view(request: HttpRequest, key: str) -> HttpResponse:
    """Add the person to the chosen groups (also how a copy of someone's access is applied).

    With `find` (the Find button, or htmx searching as you type) it only finds groups by name:
    the groups ticked so far come back ticked, listed as selected, whatever the new search.
    """
    if "find" in request.POST or (request.htmx and request.htmx.target == "add-candidates"):
        try:
            email = person_email(key)
        except PersonNotFound:
            return _no_such_person(request)
        picker = _add_picker(request.user, email, request.POST)
        status = 422 if picker["find_form"].errors else 200
        if request.htmx:
            return render(request, "groups_app/person_detail.html#add-candidates", picker, status=status)
        return _person_page(request, email, picker=picker, status=status)
    return _person_change(request, key, action=Action.MEMBERS_ADD)


def _add_picker(actor, email: str, data=None) -> dict:
    """The "Add to groups" picker: groups found by name, and apart from them the groups ticked
    so far (those still offered stay ticked; those no longer offered are counted, never dropped
    silently). Each comes as (id, name, offer): a group the actor may not change is shown with
    the reason instead of a tick box."""
    find_form = GroupFindForm(data)
    query = find_form.cleaned_data["add_q"] if find_form.is_bound and find_form.is_valid() else ""
    sent = data.getlist("groups") if data is not None else []
    ticked = list(dict.fromkeys(segment_ids(sent)))
    selected = groups_to_add(email=email, group_ids=ticked) if ticked else []
    selected_ids = {group_id for group_id, _ in selected}
    found = groups_to_add(email=email, query=query)
    offers = group_offers(actor=actor, group_ids=[group_id for group_id, _ in [*selected, *found]])
    return {
        "find_form": find_form,
        "add_q": query,
        "selected": [(group_id, name, offers.get(group_id)) for group_id, name in selected],
        "not_offered": len(set(sent)) - len(selected),
        "candidates": [
            (group_id, name, offers.get(group_id)) for group_id, name in found if group_id not in selected_ids
        ],
        "candidates_capped": len(found) >= ADD_CANDIDATES_SHOWN,
        # The fragment alone has no `person`: a refused group's request link names them by key.
        "person_key": person_keys([email])[email],
    }


def _person_change(request: HttpRequest, key: str, *, action: str) -> HttpResponse:
    """Validate the chosen groups against those offered, confirm a removal, then queue the change
    as a job and go to its page at once: the worker sends it, group by group."""
    try:
        email = person_email(key)
    except PersonNotFound:
        return _no_such_person(request)
    if action == Action.MEMBERS_REMOVE:
        offered = [(g.group.id, g.group.name) for g in person_groups(email)]
    else:
        offered = groups_to_add(email=email, group_ids=segment_ids(request.POST.getlist("groups")))
    form = PersonGroupsForm(request.POST, group_choices=offered)
    if not form.is_valid():
        change_refused(actor=request.user, action=action, reason=form_error_text(form), path=request.path)
        return _person_page(request, email, **_forms_for(action, form, request), status=422)
    if action == Action.MEMBERS_REMOVE and request.POST.get("confirmed") != "yes":
        names = dict(offered)
        chosen = [(g, names[g]) for g in form.cleaned_data["groups"]]
        return _person_page(request, email, remove_form=form, confirm_remove=chosen)
    kind = Job.Kind.PERSON_REMOVE if action == Action.MEMBERS_REMOVE else Job.Kind.PERSON_ADD
    try:
        started = person_change_start(
            actor=request.user,
            kind=kind,
            email=email,
            group_ids=form.cleaned_data["groups"],
            submission_key=form.cleaned_data.get("submission_key"),
        )
    except InvalidInput as exc:
        show_errors(form, exc)
        return _person_page(request, email, **_forms_for(action, form, request), status=422)
    return to_started_job(request, started.job, is_new=started.is_new)


def _forms_for(action: str, form: PersonGroupsForm, request: HttpRequest) -> dict:
    """The refused form back in its place; a refused addition keeps what was ticked."""
    if action == Action.MEMBERS_REMOVE:
        return {"remove_form": form}
    return {"add_form": form, "picker_data": request.POST}


def _no_such_person(request: HttpRequest, problem: str = "") -> HttpResponse:
    context = {"nav_section": "people", "problem": problem}
    return render(request, "groups_app/person_detail.html", context, status=404)


def _person_page(
    request: HttpRequest,
    email: str,
    *,
    remove_form: PersonGroupsForm | None = None,
    add_form: PersonGroupsForm | None = None,
    picker_data=None,
    picker: dict | None = None,
    copy_form: CopyAccessForm | None = None,
    preview=None,
    confirm_remove: list[tuple[str, str]] | None = None,
    status: int = 200,
) -> HttpResponse:
    try:
        person = person_detail(email)
    except InvalidInput as exc:  # a key kept for something that is not an address
        return _no_such_person(request, exc.message)
    params, _ = PersonPageQuery(request.GET).values()
    history = Paginator(audit_entries(text=person.email), HISTORY_PAGE_SIZE).get_page(params["history_page"])
    context = {
        "person": person,
        "nav_section": "people",
        "can_change": request.user.has_perm(CHANGE_MEMBERSHIP),
        "remove_form": remove_form
        or PersonGroupsForm(group_choices=[(g.group.id, g.group.name) for g in person.groups]),
        "add_form": add_form or PersonGroupsForm(),
        "copy_form": copy_form or CopyAccessForm(),
        "copy_apply_form": PersonGroupsForm(
            group_choices=[(g.group.id, g.group.name) for g in preview.to_add] if preview else []
        ),
        "preview": preview,
        "confirm_remove": confirm_remove,
        "history": history,
        # Resource names when they are cached already: this page makes no upstream call.
        "resource_names": cached_resource_names(),
    }
    if context["can_change"]:
        # What the rule book says before anything is typed: about the whole addition (their own
        # address, a domain not allowed) and about each group shown (a privileged group).
        shown = [*person.groups, *(preview.to_add if preview else ())]
        context["addition_refusal"] = addition_refusal(actor=request.user, email=person.email)
        context["offers"] = group_offers(actor=request.user, group_ids=[g.group.id for g in shown])
        # The Add to groups picker is shown only to those who may change membership.
        context.update(picker or _add_picker(request.user, person.email, picker_data))
    return render(request, "groups_app/person_detail.html", context, status=status)
