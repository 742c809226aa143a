"""The group list (home page) and the group detail page, each serving its htmx fragments."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.contrib.auth.decorators import permission_required
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import push_url

from groups_app.forms import AddMembersForm, GroupDetailQuery, GroupListQuery, MemberSearchQuery
from groups_app.roles import CHANGE_MEMBERSHIP, CHANGE_PERMISSIONS, MANAGE_GROUPS, RUN_REVIEWS, VIEW
from groups_app.rules import book
from groups_app.segment import Page, ValidationFailed
from groups_app.services.approvals.inbox import inbox_for
from groups_app.services.approvals.proposals import may_decide, proposals_open
from groups_app.services.audit import audit_entries_for_group
from groups_app.services.groups import (
    MEMBER_PAGE_SIZES,
    PAGE_SIZES,
    group_detail,
    group_detail_comparison,
    group_detail_from_mirror,
    group_get,
    group_invites_page,
    group_is_privileged,
    group_list,
    group_members_page,
    group_members_search,
)
from groups_app.services.mirror.selectors import mirror_freshness, mirrored_group_or_none
from groups_app.services.mirror.sync import request_sync
from groups_app.services.people import person_keys
from groups_app.views.searches import MEMBER_SEARCHES, SEARCH_FORGOTTEN, recalled_search, remember_search

STALE_CURSOR_NOTE = "That page link is no longer valid (the list changed); showing the first page."


@dataclass(frozen=True)
class TablePager:
    """What the pager partial needs for one cursor-paginated table."""

    prefix: str
    page: Page
    start: int
    size: int
    sizes: tuple[int, ...]

    @property
    def first_index(self) -> int:
        return self.start if self.page.items else 0

    @property
    def last_index(self) -> int:
        return self.start + len(self.page.items) - 1 if self.page.items else 0

    @property
    def next_params(self) -> dict:
        return {
            f"{self.prefix}_cursor": self.page.next,
            f"{self.prefix}_start": self.start + len(self.page.items),
        }

    @property
    def previous_params(self) -> dict:
        start = max(1, self.start - self.size)
        return {
            f"{self.prefix}_cursor": self.page.previous,
            f"{self.prefix}_start": None if start == 1 else start,
        }

    def size_params(self, size: int) -> dict:
        # A new page size starts over from the first page: a cursor belongs to its page size.
        return {f"{self.prefix}_size": size, f"{self.prefix}_cursor": None, f"{self.prefix}_start": None}

    @property
    def size_links(self) -> list[tuple[int, dict]]:
        return [(size, self.size_params(size)) for size in self.sizes]

    @property
    def target(self) -> str:
        return f"{self.prefix}-panel"


@require_http_methods(["GET", "POST"])
@vary_on_headers("HX-Request", "HX-Target")
def group_list_view(request: HttpRequest) -> HttpResponse:
    """All groups, from the mirror: search, sort, page. POST (Refresh) asks the worker for a sync."""
    if not request.user.has_perm(VIEW):
        return render(request, "groups_app/no_role.html", status=403)
    refresh = request.method == "POST"
    # Refresh re-shows what the browser shows now, which htmx swaps may have moved on from.
    query = _browser_query(request) if refresh and request.htmx else request.GET
    params, notes = GroupListQuery(query).values()
    if refresh:
        request_sync(trigger=f"Refresh by {request.user.get_username()}")
        if not request.htmx:
            return redirect(request.get_full_path())
    listing = group_list(
        query=params["q"],
        sort=params["sort"],
        descending=params["dir"] == "desc",
        page=params["page"],
        page_size=params["size"],
    )
    if listing.freshness.is_empty and not listing.freshness.is_updating:
        request_sync(trigger="first visit: the mirror is empty")
        listing = replace(listing, freshness=mirror_freshness())
    template = "groups_app/group_list.html"
    if request.htmx and request.htmx.target == "groups-table":
        template += "#groups-table"
    context = {
        "listing": listing,
        "params": params,
        "notes": notes,
        "query": query,
        "page_sizes": PAGE_SIZES,
        "nav_section": "groups",
        "sort_links": _sort_links(params),
        "can_manage_groups": request.user.has_perm(MANAGE_GROUPS),
        "inbox": None if request.htmx else inbox_for(request.user),
    }
    return render(request, template, context)


def _sort_links(params: dict) -> dict[str, dict]:
    """For each sortable column: the query that sorts by it, and how it is sorted now."""
    links = {}
    for column in ("name", "members"):
        is_current = params["sort"] == column
        next_dir = "desc" if is_current and params["dir"] == "asc" else "asc"
        state = ("ascending" if params["dir"] == "asc" else "descending") if is_current else "none"
        links[column] = {"query": {"sort": column, "dir": next_dir, "page": None}, "aria_sort": state}
    return links


@require_GET
@permission_required(VIEW, raise_exception=True)
@vary_on_headers("HX-Request", "HX-Target")
def group_detail_view(request: HttpRequest, group_id: str) -> HttpResponse:
    """A group's permissions, users and invites; each table pages on its own (htmx or links)."""
    target = request.htmx.target if request.htmx else None
    if target in ("users-panel", "invites-panel"):
        return _table_fragment(request, group_id, prefix=target.removesuffix("-panel"))
    if target == "group-header":
        group = group_get(group_id=group_id)
        context = {"group": group, **_privilege(group), **_abilities(request.user, group)}
        return render(request, "groups_app/group_detail.html#group-header", context)
    if target == "history-panel":
        context = {"group_id": group_id, "history": audit_entries_for_group(group_id)}
        return render(request, "groups_app/group_detail.html#history-panel", context)

    query = request.GET.copy()
    params, notes = GroupDetailQuery(query).values()
    context: dict = {
        "notes": notes,
        "nav_section": "groups",
        "query": query,
        "group_id": group_id,
        "add_members_form": AddMembersForm(),
        "history": audit_entries_for_group(group_id),
        "proposals": [(p, may_decide(p, request.user)) for p in proposals_open(group_id=group_id)],
    }
    # A first visit is painted from the mirror at once, with no upstream call; the page then
    # reads Segment (htmx, one round trip, or the "live" link with JavaScript off) and says
    # what differs. Paging, and every htmx request, read Segment.
    is_live = request.GET.get("live") == "1" or bool(request.htmx)
    has_position = bool(params["users_cursor"] or params["invites_cursor"])
    detail = None
    if not is_live and not has_position:
        detail = group_detail_from_mirror(
            group_id=group_id, users_count=params["users_size"], invites_count=params["invites_size"]
        )
    if detail is None:
        try:
            detail = _detail(group_id, params)
        except ValidationFailed:
            # A stale cursor in either table: show both from their first page.
            notes.append(STALE_CURSOR_NOTE)
            for prefix in ("users", "invites"):
                _forget_position(prefix, params, query)
            detail = _detail(group_id, params)
        context["comparison"] = group_detail_comparison(detail)
    live_query = query.copy()
    live_query["live"] = "1"
    context["live_query"] = live_query
    context.update(
        detail=detail,
        group=detail.group,
        problems=detail.problems,
        resource_names=detail.resource_names,
        is_privileged=detail.is_privileged,
        privileged_roles=settings.PRIVILEGED_ROLES,
        users=_pager("users", detail.users, params) if detail.users else None,
        invites=_pager("invites", detail.invites, params) if detail.invites else None,
        **_abilities(request.user, detail.group),
    )
    if context["can_change_membership"]:
        context["person_keys"] = _row_keys(detail.users, detail.invites)
    return render(request, "groups_app/group_detail.html", context)


def _table_fragment(request: HttpRequest, group_id: str, *, prefix: str) -> HttpResponse:
    """One table of the detail page, paged by htmx.

    The link carries this table's state; the other table's state is taken from the
    browser's URL, which earlier swaps may have changed since this table was rendered.
    A table refreshing itself after a change (it triggered the request) keeps the
    browser's URL as it is.
    """
    query = _browser_query(request)
    is_refresh = request.htmx.trigger == f"{prefix}-panel"
    if not is_refresh:
        for key in [key for key in query if key.startswith(f"{prefix}_")]:
            del query[key]
        for key in request.GET:
            if key.startswith(f"{prefix}_"):
                query.setlist(key, request.GET.getlist(key))
    params, notes = GroupDetailQuery(query).values()
    fetch = group_members_page if prefix == "users" else group_invites_page
    cursor = params[f"{prefix}_cursor"] or None
    try:
        page = fetch(group_id=group_id, cursor=cursor, count=params[f"{prefix}_size"])
    except ValidationFailed:
        if not cursor:
            raise
        notes.append(STALE_CURSOR_NOTE)
        _forget_position(prefix, params, query)
        page = fetch(group_id=group_id, cursor=None, count=params[f"{prefix}_size"])
    context = {
        prefix: _pager(prefix, page, params),
        "panel_notes": notes,
        "query": query,
        "group_id": group_id,
        # The table pages from Segment; whether its group is privileged comes from the mirror.
        **_abilities(request.user, mirrored_group_or_none(group_id), group_id=group_id),
    }
    if context["can_change_membership"]:
        context["person_keys"] = _row_keys(page)
    response = render(request, f"groups_app/group_detail.html#{prefix}-panel", context)
    if is_refresh:
        return response
    return push_url(response, f"{request.path}?{query.urlencode()}" if query else request.path)


def _row_keys(*pages: Page | None) -> dict[str, str]:
    """The opaque keys the tables' Remove links and tick boxes use for their rows' addresses
    (users carry an email; invites are addresses)."""
    return person_keys(
        getattr(item, "email", item) for page in pages if page is not None for item in page.items
    )


def _privilege(group) -> dict:
    return {"is_privileged": group_is_privileged(group), "privileged_roles": settings.PRIVILEGED_ROLES}


def _abilities(user, group=None, *, group_id: str = "") -> dict[str, Any]:
    """What the signed-in person may change on this group, as the rule book says; templates only
    show what is allowed, and say why a role that could otherwise change it may not here."""
    facts = {"actor": user, "group": group, "group_id": group_id}
    membership = book.decide(book.ProposedChange(permission=CHANGE_MEMBERSHIP, **facts))
    permissions = book.decide(book.ProposedChange(permission=CHANGE_PERMISSIONS, **facts))
    refused_here = not membership.is_allowed and membership.rule != "role"
    return {
        "can_change_membership": membership.is_allowed,
        "membership_refusal": membership.reason if refused_here else "",
        "can_change_permissions": permissions.is_allowed,
        "can_manage_groups": user.has_perm(MANAGE_GROUPS),
        "can_run_reviews": user.has_perm(RUN_REVIEWS),
    }


def _browser_query(request: HttpRequest) -> QueryDict:
    """The query string of the page the browser shows (htmx sends its URL), else this request's."""
    current = urlsplit(request.htmx.current_url or "") if request.htmx else None
    if current is not None and current.path == request.path:
        return QueryDict(current.query, mutable=True)
    return request.GET.copy()


def _detail(group_id: str, params: dict):
    return group_detail(
        group_id=group_id,
        users_cursor=params["users_cursor"] or None,
        users_count=params["users_size"],
        invites_cursor=params["invites_cursor"] or None,
        invites_count=params["invites_size"],
    )


def _forget_position(prefix: str, params: dict, query: QueryDict) -> None:
    """Send a table back to its first page (its cursor is no longer valid)."""
    params[f"{prefix}_cursor"], params[f"{prefix}_start"] = "", 1
    query.pop(f"{prefix}_cursor", None)
    query.pop(f"{prefix}_start", None)


def _pager(prefix: str, page: Page, params: dict) -> TablePager:
    return TablePager(
        prefix=prefix,
        page=page,
        start=params[f"{prefix}_start"] if params[f"{prefix}_cursor"] else 1,
        size=params[f"{prefix}_size"],
        sizes=MEMBER_PAGE_SIZES,
    )


@require_http_methods(["GET", "POST"])
@permission_required(VIEW, raise_exception=True)
@vary_on_headers("HX-Request")
def group_member_search_view(request: HttpRequest, group_id: str) -> HttpResponse:
    """Search within a group's members (from the mirror); htmx swaps the results into the detail page.

    As on People, the search is POSTed and remembered under a token (`?search=<token>`), so an
    address typed into the box stays out of URLs; without JavaScript the POST is redirected there.
    """
    url = reverse("groups:members-search", args=[group_id])
    notes = []
    token = ""
    if request.method == "POST":
        form = MemberSearchQuery(request.POST)
        if form.is_valid():
            query = form.cleaned_data["q"]
            token = remember_search(request, query, store=MEMBER_SEARCHES) if query else ""
            if not request.htmx:
                return redirect(url + (f"?{urlencode({'search': token})}" if token else ""))
    else:
        token = request.GET.get("search", "")
        query = recalled_search(request, token, store=MEMBER_SEARCHES) if token else ""
        if query is None:
            notes.append(SEARCH_FORGOTTEN)
            query, token = "", ""
        form = MemberSearchQuery({"q": query})
    search = (
        group_members_search(group_id=group_id, query=form.cleaned_data["q"]) if form.is_valid() else None
    )
    group = mirrored_group_or_none(group_id)
    context = {
        "search": search,
        "form": form,
        "token": token,
        "notes": notes,
        # People's pages are addressed by an opaque key, never by the address.
        "person_keys": person_keys(member.email for member in search.rows) if search else {},
        "group_id": group_id,
        "group": group,
        "nav_section": "groups",
        **_abilities(request.user, group, group_id=group_id),
    }
    template = "groups_app/member_search.html"
    if request.htmx:
        template += "#member-search-results"
    return render(request, template, context, status=422 if form.errors else 200)
