"""Read use-cases for groups: the searchable index, the list page, and the detail page."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.core.cache import cache

from groups_app.segment import Page, Permission, Resource, Role, SegmentClient, User, UserGroup, get_client

INDEX_KEY = "groups:index:v1"
ROLES_KEY = "groups:roles:v1"
SORTS = ("name", "members")
PAGE_SIZES = (25, 50, 100)
MEMBER_PAGE_SIZES = (10, 25, 50, 100)

# Upstream reads of one page run side by side; the pool outlives requests so that no
# thread is started per request.
_executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="segment-read")


@dataclass(frozen=True)
class GroupIndex:
    groups: tuple[UserGroup, ...]
    built_at: datetime


@dataclass(frozen=True)
class GroupRow:
    group: UserGroup
    role_names: tuple[str, ...]
    resource_count: int


@dataclass(frozen=True)
class GroupListing:
    rows: tuple[GroupRow, ...]
    total: int
    page: int
    page_count: int
    page_size: int
    built_at: datetime

    @property
    def first_index(self) -> int:
        return (self.page - 1) * self.page_size + 1 if self.rows else 0

    @property
    def last_index(self) -> int:
        return self.first_index + len(self.rows) - 1 if self.rows else 0


@dataclass(frozen=True)
class PermissionView:
    role_id: str
    role_name: str
    resources: tuple[Resource, ...]


@dataclass(frozen=True)
class GroupDetail:
    group: UserGroup
    permissions: tuple[PermissionView, ...]
    users: Page[User] | None
    invites: Page[str] | None


def group_index(*, refresh: bool = False, client: SegmentClient | None = None) -> GroupIndex:
    """Every group of the workspace, cached for GROUP_INDEX_TTL seconds (the API has no search).

    Raises:
        SegmentError: reading a page failed.
    """
    index = None if refresh else cache.get(INDEX_KEY)
    if index is None:
        client = client or get_client()
        index = GroupIndex(groups=tuple(client.iter_user_groups()), built_at=datetime.now(UTC))
        cache.set(INDEX_KEY, index, timeout=settings.GROUP_INDEX_TTL)
    return index


def group_index_forget() -> None:
    """Drop the cached index so that the next read rebuilds it."""
    cache.delete(INDEX_KEY)


def roles_by_id(*, client: SegmentClient | None = None) -> dict[str, Role]:
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


def role_name(permission: Permission, roles: dict[str, Role]) -> str:
    """The role's name from list_roles, else the payload's roleName, else its id."""
    role = roles.get(permission.role_id)
    return role.name if role else permission.role_name or permission.role_id


def group_list(
    *,
    query: str = "",
    sort: str = "name",
    descending: bool = False,
    page: int = 1,
    page_size: int = 25,
    refresh: bool = False,
    client: SegmentClient | None = None,
) -> GroupListing:
    """One page of the groups whose name contains `query`, sorted by name or member count.

    Raises:
        SegmentError: building the index failed.
    """
    index = group_index(refresh=refresh, client=client)
    roles = roles_by_id(client=client)
    needle = query.strip().casefold()
    groups = [group for group in index.groups if needle in group.name.casefold()]
    if sort == "members":
        groups.sort(key=lambda g: (g.member_count, g.name.casefold()), reverse=descending)
    else:
        groups.sort(key=lambda g: (g.name.casefold(), g.id), reverse=descending)
    page_count = max(1, math.ceil(len(groups) / page_size))
    page = min(max(1, page), page_count)
    start = (page - 1) * page_size
    rows = tuple(
        GroupRow(
            group=group,
            role_names=tuple(sorted({role_name(p, roles) for p in group.permissions}, key=str.casefold)),
            resource_count=len({(r.type, r.id) for p in group.permissions for r in p.resources}),
        )
        for group in groups[start : start + page_size]
    )
    return GroupListing(
        rows=rows,
        total=len(groups),
        page=page,
        page_count=page_count,
        page_size=page_size,
        built_at=index.built_at,
    )


def group_permissions_view(group: UserGroup, roles: dict[str, Role]) -> tuple[PermissionView, ...]:
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
    include_users: bool = True,
    include_invites: bool = True,
    client: SegmentClient | None = None,
) -> GroupDetail:
    """A group with one page of its users and of its invites, fetched side by side.

    Raises:
        NotFound: no such group.
        SegmentError: any other failure of the reads.
    """
    client = client or get_client()
    calls = {
        "group": lambda: client.get_user_group(group_id),
        "roles": lambda: roles_by_id(client=client),
    }
    if include_users:
        calls["users"] = lambda: client.list_users_from_user_group(
            group_id, count=users_count, cursor=users_cursor
        )
    if include_invites:
        calls["invites"] = lambda: client.list_invites_from_user_group(
            group_id, count=invites_count, cursor=invites_cursor
        )
    results = _run_side_by_side(calls, concurrent=client.concurrent_requests)
    group = results["group"]
    return GroupDetail(
        group=group,
        permissions=group_permissions_view(group, results["roles"]),
        users=results.get("users"),
        invites=results.get("invites"),
    )


def _run_side_by_side(calls: dict, *, concurrent: bool) -> dict:
    """Run independent reads at once when the client allows it; re-raise the first failure."""
    if not concurrent:
        return {name: call() for name, call in calls.items()}
    futures = {name: _executor.submit(call) for name, call in calls.items()}
    return {name: future.result() for name, future in futures.items()}


def group_members_page(
    *, group_id: str, cursor: str | None = None, count: int = 25, client: SegmentClient | None = None
) -> Page[User]:
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


def group_get(*, group_id: str, client: SegmentClient | None = None) -> UserGroup:
    """One group with its permissions, read fresh.

    Raises:
        NotFound, SegmentError.
    """
    return (client or get_client()).get_user_group(group_id)
