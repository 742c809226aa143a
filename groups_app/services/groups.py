"""Read use-cases for groups: the list page (from the mirror), and the detail page (live)."""

from __future__ import annotations

import contextvars
import logging
import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db.models import Q

from groups_app.models import MirrorGroup, MirrorMember
from groups_app.segment import (
    RESOURCE_TYPES,
    IamRole,
    NamedResource,
    Page,
    Resource,
    SegmentClient,
    SegmentError,
    UserGroup,
    WorkspaceUser,
)
from groups_app.services.grants import permissions_fingerprint
from groups_app.services.mirror.selectors import (
    Freshness,
    mirror_freshness,
    mirrored_group,
    mirrored_resource_names,
    mirrored_roles,
    stored_permissions,
)
from groups_app.services.segment_client import get_client
from groups_app.services.workspace import (
    Membership,
    group_is_privileged,
    role_name,
)

logger = logging.getLogger("groups_app.reads")

ROLES_KEY = "groups:roles:v1"
SORTS = ("name", "members")
PAGE_SIZES = (25, 50, 100)
MEMBER_PAGE_SIZES = (10, 25, 50, 100)

# Upstream reads of one page run side by side; the pool outlives requests so that no
# thread is started per request.
_executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="segment-read")


@dataclass(frozen=True)
class GroupRow:
    group: UserGroup
    role_names: tuple[str, ...]
    resource_count: int
    is_privileged: bool


@dataclass(frozen=True)
class Listing[R]:
    """One numbered page of rows read from the mirror (groups, people), with its freshness."""

    rows: tuple[R, ...]
    total: int
    page: int
    page_count: int
    page_size: int
    freshness: Freshness

    @property
    def first_index(self) -> int:
        return (self.page - 1) * self.page_size + 1 if self.rows else 0

    @property
    def last_index(self) -> int:
        return self.first_index + len(self.rows) - 1 if self.rows else 0


def page_bounds(total: int, page: int, page_size: int) -> tuple[int, int, int]:
    """(page, page count, offset of its first row): a page past either end shows the nearest one."""
    page_count = max(1, math.ceil(total / page_size))
    page = min(max(1, page), page_count)
    return page, page_count, (page - 1) * page_size


@dataclass(frozen=True)
class PermissionView:
    role_id: str
    role_name: str
    resources: tuple[Resource, ...]


@dataclass(frozen=True)
class GroupDetail:
    """The detail page's reads. A part whose read failed is None, its message in `problems`."""

    group: UserGroup
    permissions: tuple[PermissionView, ...]
    users: Page[WorkspaceUser] | None
    invites: Page[str] | None
    is_privileged: bool
    problems: dict[str, str]
    resource_names: dict[tuple[str, str], str]
    as_of: datetime | None = None  # painted from the mirror, as of then; None: read live


def roles_by_id(*, client: SegmentClient | None = None) -> dict[str, IamRole]:
    """The workspace's roles by id, cached for ROLES_CACHE_TTL seconds.

    Raises:
        SegmentError: reading the roles failed.
    """
    roles = cache.get(ROLES_KEY)
    if roles is None:
        client = client or get_client()
        roles = {role.id: role for role in client.iter_roles()}
        cache.set(ROLES_KEY, roles, timeout=settings.ROLES_CACHE_TTL)
    return roles


RESOURCES_KEY = "groups:resources:v1"
RESOURCES_RETRY_TTL = 60


@dataclass(frozen=True)
class ResourceCatalog:
    """The workspace's resources by type, each sorted by name; `missing` types could not be read."""

    by_type: dict[str, tuple[NamedResource, ...]]
    missing: tuple[str, ...] = ()

    @property
    def names(self) -> dict[tuple[str, str], str]:
        return {(r.type, r.id): r.name for resources in self.by_type.values() for r in resources}


def resource_catalog(*, client: SegmentClient | None = None) -> ResourceCatalog:
    """Every resource a permission can name, read through the Public API's listings and cached
    for ROLES_CACHE_TTL seconds (a minute when a listing failed: names then show as ids)."""
    catalog = cache.get(RESOURCES_KEY)
    if catalog is None:
        client = client or get_client()
        by_type, missing = {}, []
        for resource_type in RESOURCE_TYPES:
            try:
                found = client.iter_resources(resource_type)
                by_type[resource_type] = tuple(sorted(found, key=lambda r: (r.name.casefold(), r.id)))
            except SegmentError as exc:
                logger.warning("Could not read the %s resources: %s", resource_type, exc)
                missing.append(resource_type)
        catalog = ResourceCatalog(by_type, tuple(missing))
        cache.set(
            RESOURCES_KEY, catalog, timeout=RESOURCES_RETRY_TTL if missing else settings.ROLES_CACHE_TTL
        )
    return catalog


def cached_resource_names() -> dict[tuple[str, str], str]:
    """Resource names if the catalog is cached; none otherwise (for pages that make no upstream call)."""
    catalog = cache.get(RESOURCES_KEY)
    return catalog.names if catalog is not None else {}


def group_list(
    *,
    query: str = "",
    sort: str = "name",
    descending: bool = False,
    page: int = 1,
    page_size: int = 25,
) -> Listing[GroupRow]:
    """One page of the groups whose name contains `query`, sorted by name or member count.

    Read from the mirror: no upstream call, whatever the workspace's size.
    """
    groups = MirrorGroup.objects.all()
    needle = query.strip().casefold()
    if needle:
        groups = groups.filter(name_key__contains=needle)
    order = ["member_count", "name_key", "group_id"] if sort == "members" else ["name_key", "group_id"]
    groups = groups.order_by(*(f"-{f}" if descending else f for f in order))
    total = groups.count()
    page, page_count, start = page_bounds(total, page, page_size)
    roles = mirrored_roles()
    rows = []
    for stored in groups[start : start + page_size]:
        group = mirrored_group(stored)
        rows.append(
            GroupRow(
                group=group,
                role_names=tuple(sorted({role_name(p, roles) for p in group.permissions}, key=str.casefold)),
                resource_count=len({(r.type, r.id) for p in group.permissions for r in p.resources}),
                is_privileged=group_is_privileged(group, roles),
            )
        )
    return Listing(
        rows=tuple(rows),
        total=total,
        page=page,
        page_count=page_count,
        page_size=page_size,
        freshness=mirror_freshness(),
    )


def group_choices() -> list[tuple[str, str]]:
    """Every mirrored group as (id, name), by name: for pickers."""
    return list(MirrorGroup.objects.order_by("name_key", "group_id").values_list("group_id", "name"))


def group_permissions_view(group: UserGroup, roles: dict[str, IamRole]) -> tuple[PermissionView, ...]:
    """The group's permissions with role names, sorted by role, resources by type and id."""
    views = [
        PermissionView(
            role_id=p.role_id,
            role_name=role_name(p, roles),
            resources=tuple(sorted(p.resources, key=lambda r: (r.type, r.id))),
        )
        for p in group.permissions
    ]
    return tuple(sorted(views, key=lambda v: (v.role_name.casefold(), v.role_id)))


def group_detail(
    *,
    group_id: str,
    users_cursor: str | None = None,
    users_count: int = 25,
    invites_cursor: str | None = None,
    invites_count: int = 25,
    client: SegmentClient | None = None,
) -> GroupDetail:
    """A group with one page of its users and of its invites, fetched side by side.

    Only the group itself must be read: when users, invites or roles fail, the rest is
    still returned, with the failed part's message in `problems`.

    Raises:
        NotFound: no such group.
        ValidationFailed: a stale cursor (the caller retries from the first page).
        SegmentError: reading the group failed.
    """
    client = client or get_client()
    calls = {
        "group": lambda: client.get_user_group(group_id),
        "users": lambda: client.list_users_from_user_group(group_id, count=users_count, cursor=users_cursor),
        "invites": lambda: client.list_invites_from_user_group(
            group_id, count=invites_count, cursor=invites_cursor
        ),
    }
    # Role and resource names come from the mirror (its full sync reads both; a name it could
    # not read shows as the id); they are read live only while the mirror has read none.
    mirrored_names = mirrored_resource_names()
    results: dict[str, Any] = {"roles": mirrored_roles()}
    if not results["roles"]:
        calls["roles"] = lambda: roles_by_id(client=client)
        calls["resources"] = lambda: resource_catalog(client=client)
    results.update(_run_side_by_side(calls, concurrent=client.concurrent_requests))
    group = results["group"]
    if isinstance(group, Exception):
        raise group
    for name in ("users", "invites"):
        # A stale cursor is the caller's to handle; it is not a failure of the page.
        if isinstance(results[name], SegmentError) and results[name].status == 422:
            raise results[name]
    problems = {
        name: results[name].message
        for name in ("roles", "users", "invites")
        if isinstance(results[name], Exception)
    }
    roles = {} if "roles" in problems else results["roles"]
    return GroupDetail(
        group=group,
        permissions=group_permissions_view(group, roles),
        users=None if "users" in problems else results["users"],
        invites=None if "invites" in problems else results["invites"],
        is_privileged=group_is_privileged(group, roles),
        problems=problems,
        resource_names=results["resources"].names if "resources" in results else mirrored_names,
    )


def group_detail_from_mirror(
    *, group_id: str, users_count: int = 25, invites_count: int = 25
) -> GroupDetail | None:
    """A group's page as the mirror holds it — the group, its permissions with role and resource
    names, the first page of its users and of its invites — with no upstream call; None when
    the mirror does not hold the group. `as_of` is when the mirror last read the workspace."""
    stored = MirrorGroup.objects.filter(group_id=group_id).first()
    freshness = mirror_freshness()
    if stored is None or freshness.as_of is None:
        return None
    group = mirrored_group(stored)
    roles = mirrored_roles()
    members = MirrorMember.objects.filter(group_id=group_id).order_by("name_key", "email")
    users = tuple(
        WorkspaceUser(id=m.user_id, name=m.name, email=m.email)
        for m in members.filter(kind=MirrorMember.Kind.USER)[:users_count]
    )
    invites = tuple(
        members.filter(kind=MirrorMember.Kind.INVITE)
        .order_by("email")
        .values_list("email", flat=True)[:invites_count]
    )
    return GroupDetail(
        group=group,
        permissions=group_permissions_view(group, roles),
        users=Page(items=users, total_entries=stored.user_count),
        invites=Page(items=invites, total_entries=stored.invite_count),
        is_privileged=group_is_privileged(group, roles),
        problems={},
        resource_names=mirrored_resource_names(),
        as_of=max(freshness.as_of, stored.read_at),
    )


@dataclass(frozen=True)
class MirrorComparison:
    """How a live reading of a group's page differs from the mirror's copy (read as of `as_of`)."""

    as_of: datetime
    differences: tuple[str, ...]
    new_on_page: tuple[str, ...]  # users and invites on the live pages the copy does not hold

    @property
    def differs(self) -> bool:
        return bool(self.differences or self.new_on_page)


def group_detail_comparison(detail: GroupDetail) -> MirrorComparison | None:
    """What the live page shows that the mirror's copy does not; None without a copy."""
    stored = MirrorGroup.objects.filter(group_id=detail.group.id).first()
    freshness = mirror_freshness()
    if stored is None or freshness.as_of is None:
        return None
    live = detail.group
    differences = []
    if stored.name != live.name:
        differences.append(f"it was named “{stored.name}”")
    if stored.member_count != live.member_count:
        differences.append(f"it had {stored.member_count} members, now {live.member_count}")
    if permissions_fingerprint(stored_permissions(stored)) != permissions_fingerprint(live.permissions):
        differences.append("its permissions changed")
    on_page = [u.email.lower() for u in (detail.users.items if detail.users else ())]
    on_page += [e.lower() for e in (detail.invites.items if detail.invites else ())]
    held = set(
        MirrorMember.objects.filter(group_id=live.id, email__in=on_page).values_list("email", flat=True)
    )
    return MirrorComparison(
        as_of=max(freshness.as_of, stored.read_at),
        differences=tuple(differences),
        new_on_page=tuple(e for e in on_page if e not in held),
    )


def _run_side_by_side(calls: dict[str, Callable[[], Any]], *, concurrent: bool) -> dict[str, Any]:
    """Run independent reads at once when the client allows it; a failed read's result is its error.

    Each thread runs in a copy of the caller's context, so the request's deadline applies.
    """

    def outcome(call: Callable[[], Any]) -> Any:
        try:
            return call()
        except SegmentError as exc:
            logger.warning("A read of the page failed: %s", exc)
            return exc

    if not concurrent:
        return {name: outcome(call) for name, call in calls.items()}
    futures = {
        name: _executor.submit(contextvars.copy_context().run, outcome, call) for name, call in calls.items()
    }
    return {name: future.result() for name, future in futures.items()}


def group_members_page(
    *, group_id: str, cursor: str | None = None, count: int = 25, client: SegmentClient | None = None
) -> Page[WorkspaceUser]:
    """One page of a group's workspace users.

    Raises:
        NotFound, ValidationFailed (a stale cursor), SegmentError.
    """
    return (client or get_client()).list_users_from_user_group(group_id, count=count, cursor=cursor)


def group_invites_page(
    *, group_id: str, cursor: str | None = None, count: int = 25, client: SegmentClient | None = None
) -> Page[str]:
    """One page of a group's pending invites.

    Raises:
        NotFound, ValidationFailed (a stale cursor), SegmentError.
    """
    return (client or get_client()).list_invites_from_user_group(group_id, count=count, cursor=cursor)


def group_membership(*, group_id: str, client: SegmentClient | None = None) -> Membership:
    """Every user and invite of a group (all pages).

    Raises:
        NotFound, SegmentError.
    """
    client = client or get_client()
    return Membership(
        users=tuple(client.iter_users_from_user_group(group_id)),
        invites=tuple(client.iter_invites_from_user_group(group_id)),
    )


def group_get(*, group_id: str, client: SegmentClient | None = None) -> UserGroup:
    """One group with its permissions, read fresh.

    Raises:
        NotFound, SegmentError.
    """
    return (client or get_client()).get_user_group(group_id)


@dataclass(frozen=True)
class MemberSearch:
    """A group's members whose email or name contains the query, from the mirror."""

    query: str
    rows: tuple[Any, ...]  # MirrorMember
    total: int
    read_at: datetime | None  # when the mirror last read this group; None: it does not hold it


MEMBER_SEARCH_LIMIT = 50


def group_members_search(*, group_id: str, query: str) -> MemberSearch:
    """Search within one group's users and invites (the API cannot): from the mirror, with the
    time the mirror last read the group."""
    needle = query.strip().casefold()
    read_at = MirrorGroup.objects.filter(group_id=group_id).values_list("read_at", flat=True).first()
    members = MirrorMember.objects.filter(group_id=group_id)
    if needle:
        members = members.filter(Q(email__contains=needle) | Q(name_key__contains=needle))
    total = members.count()
    return MemberSearch(query.strip(), tuple(members.order_by("email")[:MEMBER_SEARCH_LIMIT]), total, read_at)
