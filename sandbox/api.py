"""The sandbox's HTTP API: the Public API's IAM Groups operations in their wire format.

Every view goes through `operation()`, which authenticates the bearer token, applies
injected faults and latency, counts the rate-limit budget, parses the JSON body, and
turns `ApiError` into the `{"errors": [...]}` envelope.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import re
import secrets
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.core import signing
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.db.models import Count, OuterRef, Prefetch, QuerySet, Subquery
from django.db.models.functions import Coalesce, Lower
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from groups_app.segment.models import RESOURCE_TYPES
from sandbox import faults, ratelimit
from sandbox.models import GroupPermission, Invite, Membership, Resource, Role, UserGroup, WorkspaceUser

logger = logging.getLogger("sandbox.api")

DEFAULT_COUNT = 200
MAX_COUNT = 1000
MAX_NAME_LENGTH = 100
READ_METHODS = ("GET", "HEAD")
INJECTED_429_WAIT_MS = 1000
_EMAIL_KEY = re.compile(r"^emails(?:\.(\d+)|\[(\d+)\])$")
_PAGINATION_KEYS = {
    "pagination.count": "count",
    "pagination.cursor": "cursor",
    "pagination[count]": "count",
    "pagination[cursor]": "cursor",
}

# Operations that read query parameters (pagination, or the emails to remove); the others take none.
WITH_QUERY = frozenset(
    {
        "list_user_groups",
        "list_users_from_user_group",
        "list_invites_from_user_group",
        "remove_users_from_user_group",
        "list_roles",
        "list_sources",
        "list_warehouses",
        "list_spaces",
        "list_functions",
    }
)

OPERATIONS = (
    "list_user_groups",
    "create_user_group",
    "get_user_group",
    "update_user_group",
    "delete_user_group",
    "list_users_from_user_group",
    "list_invites_from_user_group",
    "add_users_to_user_group",
    "replace_users_in_user_group",
    "remove_users_from_user_group",
    "add_permissions_to_user_group",
    "replace_permissions_for_user_group",
    "list_roles",
    "get_workspace",
    "list_sources",
    "list_warehouses",
    "list_spaces",
    "list_functions",
)


class ApiError(Exception):
    """Becomes an error envelope with this status."""

    def __init__(self, status: int, message: str, *, type: str = "error", field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"type": type, "message": message}
        if field is not None:
            self.body["field"] = field


def error_response(
    status: int, errors: list[dict[str, Any]], headers: dict[str, str] | None = None
) -> JsonResponse:
    return JsonResponse({"errors": errors}, status=status, headers=headers)


def not_found(what: str = "Resource") -> ApiError:
    return ApiError(404, f"{what} not found", type="not-found")


def invalid(field: str, message: str) -> ApiError:
    return ApiError(422, message, type="validation", field=field)


# -- the dispatcher ---------------------------------------------------------------------


def operation(routes: dict[str, str]) -> Callable:
    """Route each HTTP method of one path to an operation handler named in OPERATIONS."""

    def decorator(view: Callable) -> Callable:
        @csrf_exempt
        @login_not_required
        @functools.wraps(view)
        def wrapper(request: HttpRequest, **kwargs: Any) -> JsonResponse:
            name = routes.get(request.method or "")
            if name is None:
                return error_response(404, [not_found("Route").body])
            if not _authorized(request):
                return error_response(401, [{"type": "unauthorized", "message": "Unauthorized"}])
            fault = faults.take_fault(name, OPERATIONS)
            _delay(request, hang=fault == "hang")
            if fault in ("500", "503"):
                return error_response(
                    int(fault), [{"type": "server-error", "message": "Injected server error"}]
                )
            kind = "read" if request.method in READ_METHODS else "write"
            limit = (
                settings.SANDBOX_READ_LIMIT_PER_MINUTE
                if kind == "read"
                else settings.SANDBOX_WRITE_LIMIT_PER_MINUTE
            )
            budget = ratelimit.consume(_token(request), kind, limit)
            if fault == "429":
                return _rate_limited(budget, wait_ms=INJECTED_429_WAIT_MS)
            if budget.exceeded:
                return _rate_limited(budget, wait_ms=budget.ms_before_next)
            try:
                if request.GET and name not in WITH_QUERY:
                    key = next(iter(request.GET))
                    raise invalid(key, f"Unexpected query parameter: {key}")
                body = _json_body(request) if request.method in ("POST", "PUT", "PATCH") else None
                if kind == "read":  # no transaction: on SQLite it would take the write lock
                    data = view(request, name, body=body, **kwargs)
                else:
                    with transaction.atomic():
                        data = view(request, name, body=body, **kwargs)
            except ApiError as exc:
                return error_response(exc.status, [exc.body], headers=budget.headers())
            if fault == "applied-500":
                return error_response(500, [{"type": "server-error", "message": "Injected server error"}])
            return JsonResponse({"data": data}, headers=budget.headers())

        return wrapper

    return decorator


def _token(request: HttpRequest) -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _authorized(request: HttpRequest) -> bool:
    """The configured token; never the public default one while DEBUG is off."""
    token = _token(request)
    if not settings.DEBUG and secrets.compare_digest(token.encode(), settings.SANDBOX_DEFAULT_TOKEN.encode()):
        return False
    return bool(token) and secrets.compare_digest(token.encode(), settings.SANDBOX_API_TOKEN.encode())


def _delay(request: HttpRequest, *, hang: bool) -> None:
    """Added latency, and for a "hang" fault a wait past the client's timeout.

    After a hang the call is still performed, as a real server may do after the
    client gave up: the client cannot know whether a timed-out mutation happened.
    """
    if settings.SANDBOX_LATENCY_MS:
        time.sleep(settings.SANDBOX_LATENCY_MS / 1000)
    if hang:
        # In-process, the transport says how long the client waits; hold just past it.
        client_wait = request.META.get("sandbox.read_timeout")
        seconds = settings.SANDBOX_HANG_SECONDS
        time.sleep(min(seconds, client_wait + 0.01) if client_wait is not None else seconds)


def _rate_limited(budget: ratelimit.Budget, *, wait_ms: int) -> JsonResponse:
    return error_response(
        429,
        [
            {
                "type": "too-many-requests",
                "message": "Too many requests, please try again later.",
                "data": {
                    "msBeforeNext": wait_ms,
                    "remainingPoints": budget.remaining,
                    "consumedPoints": budget.consumed,
                    "isFirstInDuration": False,
                },
            }
        ],
        headers={**budget.headers(), "Retry-After": str(max(1, math.ceil(wait_ms / 1000)))},
    )


def _json_body(request: HttpRequest) -> dict[str, Any]:
    try:
        body = json.loads(request.body or b"null")
    except (ValueError, UnicodeDecodeError):
        raise invalid("body", "The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise invalid("body", "The request body must be a JSON object.")
    return body


# -- query parameters -------------------------------------------------------------------


def _pagination(
    request: HttpRequest, listing: str, *, extra_keys: Callable[[str], bool] = lambda key: False
) -> tuple[int, int]:
    """Read count and cursor in every shape the SDKs send; return (offset, count)."""
    values: dict[str, str] = {}
    for key in request.GET:
        if key in _PAGINATION_KEYS:
            values[_PAGINATION_KEYS[key]] = request.GET[key]
        elif key == "pagination":
            try:
                shape = json.loads(request.GET[key])
            except ValueError:
                raise invalid("pagination", "pagination must be a JSON object.") from None
            if not isinstance(shape, dict) or set(shape) - {"count", "cursor"}:
                raise invalid("pagination", "pagination accepts only count and cursor.")
            values.update({k: str(v) for k, v in shape.items() if v is not None})
        elif not extra_keys(key):
            raise invalid(key, f"Unexpected query parameter: {key}")
    count = DEFAULT_COUNT
    if "count" in values:
        try:
            count = int(values["count"])
        except ValueError:
            raise invalid("pagination.count", "pagination.count must be a number.") from None
        if not 1 <= count <= MAX_COUNT:
            raise invalid("pagination.count", f"pagination.count must be between 1 and {MAX_COUNT}.")
    offset = 0
    if values.get("cursor"):
        try:
            offset = signing.Signer(salt=f"sandbox-cursor:{listing}").unsign_object(values["cursor"])
        except signing.BadSignature:
            raise invalid("pagination.cursor", "Unknown pagination cursor.") from None
    return offset, count


def _cursor(listing: str, offset: int) -> str:
    return signing.Signer(salt=f"sandbox-cursor:{listing}").sign_object(offset)


def _page(queryset: QuerySet, listing: str, offset: int, count: int) -> tuple[list, dict[str, Any]]:
    total = queryset.count()
    items = list(queryset[offset : offset + count])
    pagination: dict[str, Any] = {"current": _cursor(listing, offset), "totalEntries": total}
    if offset + count < total:
        pagination["next"] = _cursor(listing, offset + count)
    if offset > 0:
        pagination["previous"] = _cursor(listing, max(0, offset - count))
    return items, pagination


# -- serialization and lookups ------------------------------------------------------------


def _count_of(model: type[Membership] | type[Invite]) -> Coalesce:
    """A correlated count per group (two joins would multiply users by invites)."""
    counts = model.objects.filter(group=OuterRef("pk")).order_by().values("group").annotate(n=Count("pk"))
    return Coalesce(Subquery(counts.values("n")), 0)


def _groups() -> QuerySet[UserGroup]:
    return UserGroup.objects.annotate(
        user_count=_count_of(Membership),
        invite_count=_count_of(Invite),
    ).prefetch_related(Prefetch("permissions", GroupPermission.objects.select_related("role")))


def _group(group_id: str) -> UserGroup:
    try:
        return _groups().get(pk=group_id)
    except UserGroup.DoesNotExist:
        raise not_found("User group") from None


def _permission_payload(permission: GroupPermission) -> dict[str, Any]:
    return {"roleId": permission.role_id, "roleName": permission.role.name, "resources": permission.resources}


def _group_payload(group: UserGroup) -> dict[str, Any]:
    return {
        "id": group.id,
        "name": group.name,
        "memberCount": group.user_count + group.invite_count,
        "permissions": [_permission_payload(p) for p in group.permissions.all()],
    }


def _name(body: dict[str, Any], *, exclude_id: str | None = None) -> str:
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise invalid("name", "name is required.")
    if len(name) > MAX_NAME_LENGTH:
        raise invalid("name", f"name must be at most {MAX_NAME_LENGTH} characters.")
    clash = UserGroup.objects.filter(name__iexact=name)
    if exclude_id:
        clash = clash.exclude(pk=exclude_id)
    if clash.exists():
        raise invalid("name", "A user group with this name already exists.")
    return name


def _checked_emails(values: Any, field: str = "emails") -> list[str]:
    if not isinstance(values, list) or not values:
        raise invalid(field, "emails must be a non-empty list.")
    emails: dict[str, None] = {}
    for index, value in enumerate(values):
        try:
            if not isinstance(value, str):
                raise ValidationError("not a string")
            validate_email(value.strip())
        except ValidationError:
            raise invalid(f"{field}.{index}", f"{value!r} is not a valid email address.") from None
        emails.setdefault(value.strip().lower(), None)
    return list(emails)


def _checked_permissions(body: dict[str, Any]) -> list[tuple[Role, list[dict[str, Any]]]]:
    permissions = body.get("permissions")
    if not isinstance(permissions, list):
        raise invalid("permissions", "permissions must be a list.")
    roles = {role.id: role for role in Role.objects.all()}
    checked = []
    for i, permission in enumerate(permissions):
        if not isinstance(permission, dict):
            raise invalid(f"permissions.{i}", "Each permission must be an object.")
        role = roles.get(permission.get("roleId"))
        if role is None:
            raise invalid(f"permissions.{i}.roleId", f"Unknown roleId {permission.get('roleId')!r}.")
        resources = permission.get("resources")
        if not isinstance(resources, list):
            raise invalid(f"permissions.{i}.resources", "resources must be a list.")
        cleaned = []
        for j, resource in enumerate(resources):
            where = f"permissions.{i}.resources.{j}"
            if (
                not isinstance(resource, dict)
                or not isinstance(resource.get("id"), str)
                or not resource["id"]
            ):
                raise invalid(f"{where}.id", "Each resource needs an id.")
            if resource.get("type") not in RESOURCE_TYPES:
                raise invalid(f"{where}.type", f"type must be one of {', '.join(RESOURCE_TYPES)}.")
            entry: dict[str, Any] = {"id": resource["id"], "type": resource["type"]}
            labels = _checked_labels(resource, where)
            if labels:
                entry["labels"] = labels
            cleaned.append(entry)
        checked.append((role, cleaned))
    return checked


def _checked_labels(resource: dict[str, Any], where: str) -> list[dict[str, str]]:
    """Labels restrict a WORKSPACE grant: a list of {key, value} strings (and an optional description)."""
    labels = resource.get("labels")
    if labels is None or labels == []:
        return []
    if not isinstance(labels, list):
        raise invalid(f"{where}.labels", "labels must be a list.")
    if resource["type"] != "WORKSPACE":
        raise invalid(f"{where}.labels", "Only WORKSPACE resources take labels.")
    checked = []
    for k, label in enumerate(labels):
        field = f"{where}.labels.{k}"
        if not isinstance(label, dict) or set(label) - {"key", "value", "description"}:
            raise invalid(field, "Each label is an object with key and value.")
        if not all(isinstance(label.get(name), str) and label[name].strip() for name in ("key", "value")):
            raise invalid(field, "A label's key and value must be non-empty strings.")
        if not isinstance(label.get("description", ""), str):
            raise invalid(field, "A label's description must be a string.")
        checked.append({name: label[name] for name in ("key", "value", "description") if name in label})
    return checked


def _all_permissions(group_id: str) -> list[dict[str, Any]]:
    return [
        _permission_payload(p)
        for p in GroupPermission.objects.filter(group_id=group_id).select_related("role")
    ]


# -- the operations --------------------------------------------------------------------------


@operation({"GET": "list_user_groups", "POST": "create_user_group"})
def groups(request: HttpRequest, name: str, *, body: dict | None) -> dict[str, Any]:
    if name == "create_user_group":
        group = UserGroup.objects.create(name=_name(body or {}))
        return {"userGroup": _group_payload(_group(group.id))}
    offset, count = _pagination(request, "groups")
    # The page first, then the counts of its groups only (not of every group, for each page).
    ids, pagination = _page(
        UserGroup.objects.order_by(Lower("name"), "id").values_list("id", flat=True), "groups", offset, count
    )
    found = _groups().in_bulk(ids)  # a group deleted in between is left out
    return {"userGroups": [_group_payload(found[i]) for i in ids if i in found], "pagination": pagination}


@operation({"GET": "get_user_group", "PATCH": "update_user_group", "DELETE": "delete_user_group"})
def group(request: HttpRequest, name: str, *, body: dict | None, group_id: str) -> dict[str, Any]:
    group = _group(group_id)
    if name == "update_user_group":
        group.name = _name(body or {}, exclude_id=group.id)
        group.save(update_fields=["name"])
        return {"userGroup": _group_payload(_group(group.id))}
    if name == "delete_user_group":
        group.delete()
        return {"status": "SUCCESS"}
    return {"userGroup": _group_payload(group)}


@operation({"GET": "list_users_from_user_group", "POST": "add_users_to_user_group"})
def group_users(request: HttpRequest, name: str, *, body: dict | None, group_id: str) -> dict[str, Any]:
    group = _group(group_id)
    if name == "add_users_to_user_group":
        _add_emails(group, _checked_emails((body or {}).get("emails")))
        return {"userGroup": _group_payload(_group(group.id))}
    offset, count = _pagination(request, f"users:{group.id}")
    users = WorkspaceUser.objects.filter(memberships__group=group).order_by("email")
    items, pagination = _page(users, f"users:{group.id}", offset, count)
    return {
        "users": [{"id": u.id, "name": u.name, "email": u.email} for u in items],
        "pagination": pagination,
    }


@operation({"PUT": "replace_users_in_user_group", "DELETE": "remove_users_from_user_group"})
def group_users_by_email(
    request: HttpRequest, name: str, *, body: dict | None, group_id: str
) -> dict[str, Any]:
    group = _group(group_id)
    if name == "replace_users_in_user_group":
        emails = _checked_emails((body or {}).get("emails"))
        Membership.objects.filter(group=group).exclude(user__email__in=emails).delete()
        Invite.objects.filter(group=group).exclude(email__in=emails).delete()
        _add_emails(group, emails)
        return {"userGroup": _group_payload(_group(group.id))}
    emails = _checked_emails(_emails_from_query(request))
    Membership.objects.filter(group=group, user__email__in=emails).delete()
    Invite.objects.filter(group=group, email__in=emails).delete()
    return {"status": "SUCCESS"}


@operation({"GET": "list_invites_from_user_group"})
def group_invites(request: HttpRequest, name: str, *, body: dict | None, group_id: str) -> dict[str, Any]:
    group = _group(group_id)
    offset, count = _pagination(request, f"invites:{group.id}")
    invites = Invite.objects.filter(group=group).order_by("email").values_list("email", flat=True)
    items, pagination = _page(invites, f"invites:{group.id}", offset, count)
    return {"emails": items, "pagination": pagination}


@operation({"POST": "add_permissions_to_user_group", "PUT": "replace_permissions_for_user_group"})
def group_permissions(request: HttpRequest, name: str, *, body: dict | None, group_id: str) -> dict[str, Any]:
    group = _group(group_id)
    checked = _checked_permissions(body or {})
    if name == "replace_permissions_for_user_group":
        GroupPermission.objects.filter(group=group).delete()
    elif not checked:
        raise invalid("permissions", "permissions must not be empty.")
    existing = {
        (p.role_id, json.dumps(p.resources, sort_keys=True))
        for p in GroupPermission.objects.filter(group=group)
    }
    for role, resources in checked:
        key = (role.id, json.dumps(resources, sort_keys=True))
        if key not in existing:
            GroupPermission.objects.create(group=group, role=role, resources=resources)
            existing.add(key)
    return {"permissions": _all_permissions(group.id)}


@operation({"GET": "list_roles"})
def roles(request: HttpRequest, name: str, *, body: dict | None) -> dict[str, Any]:
    offset, count = _pagination(request, "roles")
    items, pagination = _page(Role.objects.order_by("name", "id"), "roles", offset, count)
    return {
        "roles": [{"id": r.id, "name": r.name, "description": r.description} for r in items],
        "pagination": pagination,
    }


# -- the resources permissions grant roles on (read-only here) --------------------------------

FUNCTION_TYPES = ("SOURCE", "DESTINATION", "INSERT_DESTINATION", "INSERT_SOURCE")


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


@operation({"GET": "get_workspace"})
def workspace(request: HttpRequest, name: str, *, body: dict | None) -> dict[str, Any]:
    found = Resource.objects.filter(type="WORKSPACE").first()
    if found is None:
        raise not_found("Workspace")
    return {"workspace": {"id": found.id, "name": found.name, "slug": _slug(found.name)}}


@operation({"GET": "list_sources"})
def sources(request: HttpRequest, name: str, *, body: dict | None) -> dict[str, Any]:
    offset, count = _pagination(request, "sources")
    items, pagination = _page(Resource.objects.filter(type="SOURCE"), "sources", offset, count)
    return {
        "sources": [{"id": r.id, "name": r.name, "slug": _slug(r.name), "enabled": True} for r in items],
        "pagination": pagination,
    }


@operation({"GET": "list_warehouses"})
def warehouses(request: HttpRequest, name: str, *, body: dict | None) -> dict[str, Any]:
    offset, count = _pagination(request, "warehouses")
    items, pagination = _page(Resource.objects.filter(type="WAREHOUSE"), "warehouses", offset, count)
    return {
        "warehouses": [
            {
                "id": r.id,
                "enabled": True,
                "metadata": {
                    "id": "warehouseMetadata",
                    "name": r.name.split()[0],
                    "slug": _slug(r.name.split()[0]),
                },
                "settings": {"name": r.name},
            }
            for r in items
        ],
        "pagination": pagination,
    }


@operation({"GET": "list_spaces"})
def spaces(request: HttpRequest, name: str, *, body: dict | None) -> dict[str, Any]:
    offset, count = _pagination(request, "spaces")
    items, pagination = _page(Resource.objects.filter(type="SPACE"), "spaces", offset, count)
    return {
        "spaces": [{"id": r.id, "name": r.name, "slug": _slug(r.name)} for r in items],
        "pagination": pagination,
    }


@operation({"GET": "list_functions"})
def functions(request: HttpRequest, name: str, *, body: dict | None) -> dict[str, Any]:
    function_type = request.GET.get("resourceType", "")
    if function_type not in FUNCTION_TYPES:
        raise invalid("resourceType", f"resourceType must be one of {', '.join(FUNCTION_TYPES)}.")
    offset, count = _pagination(
        request, f"functions:{function_type}", extra_keys=lambda key: key == "resourceType"
    )
    found = Resource.objects.filter(type="FUNCTION", function_type=function_type)
    items, pagination = _page(found, f"functions:{function_type}", offset, count)
    return {
        "functions": [{"id": r.id, "displayName": r.name, "resourceType": function_type} for r in items],
        "pagination": pagination,
    }


@csrf_exempt
@login_not_required
def unknown_path(request: HttpRequest, path: str = "") -> JsonResponse:
    return error_response(404, [not_found("Route").body])


def _emails_from_query(request: HttpRequest) -> list[str]:
    """The emails to remove, as documented (`emails.0=`), bracketed, or repeated (`emails=a&emails=b`)."""
    indexed, repeated = [], []
    for key in request.GET:
        if key == "emails":
            repeated += request.GET.getlist(key)
            continue
        match = _EMAIL_KEY.match(key)
        if not match:
            raise invalid(key, f"Unexpected query parameter: {key}")
        indexed.append((int(match.group(1) or match.group(2)), request.GET[key]))
    return [email for _, email in sorted(indexed)] + repeated


def _add_emails(group: UserGroup, emails: list[str]) -> None:
    """Workspace users become members; any other email becomes a pending invite."""
    users = {u.email: u for u in WorkspaceUser.objects.filter(email__in=emails)}
    member_ids = set(Membership.objects.filter(group=group).values_list("user_id", flat=True))
    invited = set(Invite.objects.filter(group=group, email__in=emails).values_list("email", flat=True))
    Membership.objects.bulk_create(
        [
            Membership(group=group, user=users[e])
            for e in emails
            if e in users and users[e].id not in member_ids
        ]
    )
    Invite.objects.bulk_create(
        [Invite(group=group, email=e) for e in emails if e not in users and e not in invited]
    )
