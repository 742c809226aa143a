"""What can I request? The catalogue of groups, and what a group is for (written by its owners
and Administrators)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from groups_app.forms import CatalogueQuery, GroupAboutForm
from groups_app.rules import book
from groups_app.services.catalogue import (
    catalogue_entries,
    catalogue_entry,
    catalogue_groups,
    group_about,
    group_about_set,
)
from groups_app.services.errors import InvalidInput, NotAllowed
from groups_app.services.groups import group_get
from groups_app.services.mirror.selectors import mirror_freshness
from groups_app.views.submit import show_errors

PAGE_SIZE = 25


@require_GET
@login_required
def catalogue_view(request: HttpRequest) -> HttpResponse:
    """Every group people can ask for, with what it is for, grants and owners; a Request button."""
    query = CatalogueQuery(request.GET)
    q = query.cleaned_data["q"] if query.is_valid() else ""
    page = Paginator(catalogue_groups(q=q), PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "query": query,
        "page": page,
        "entries": catalogue_entries(page.object_list),
        "freshness": mirror_freshness(),
        "nav_section": "catalogue",
    }
    return render(request, "groups_app/catalogue.html", context)


@require_http_methods(["GET", "POST"])
@login_required
def group_about_view(request: HttpRequest, group_id: str) -> HttpResponse:
    """Write what a group is for (Administrators and the group's owners)."""
    may_describe = book.may_describe(request.user, group_id=group_id)
    if request.method == "GET" and not may_describe:
        raise PermissionDenied("Only Administrators and the group's owners describe it.")
    about = group_about(group_id)
    form = GroupAboutForm(
        request.POST or None, initial={"description": about.description, "purpose": about.purpose}
    )
    entry = catalogue_entry(group_id)
    if request.method == "POST" and form.is_valid():
        name = entry.name if entry else (group_get(group_id=group_id).name if may_describe else "")
        try:
            group_about_set(actor=request.user, group_id=group_id, group_name=name, **form.cleaned_data)
        except NotAllowed as exc:
            raise PermissionDenied(exc.message) from None
        except InvalidInput as exc:
            show_errors(form, exc)
        else:
            messages.success(request, f"Saved what {name} is for.")
            return redirect("groups:catalogue-about", group_id=group_id)
    context = {"form": form, "entry": entry, "group_id": group_id, "nav_section": "catalogue"}
    return render(request, "groups_app/catalogue_about.html", context, status=422 if form.errors else 200)
