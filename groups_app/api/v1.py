"""The REST API, version 1 (django-ninja): routes and their documentation, nothing else.

Each route authenticates by bearer token (BearerToken), hands its validated input to
`operations` and returns what that answers; `operations` calls the same services as the pages.
"""

from __future__ import annotations

import logging
from datetime import date
from typing import Literal

from django.http import Http404, HttpRequest, HttpResponse
from ninja import Header, NinjaAPI, Query, Status
from ninja.errors import AuthenticationError, ValidationError

from groups_app.api import operations
from groups_app.api.auth import BearerToken
from groups_app.api.problems import UNAUTHENTICATED, Problem, problem_for, problem_response
from groups_app.api.schemas import (
    AccessRequestFiledOut,
    AccessRequestIn,
    AccessRequestPageOut,
    AuditPageOut,
    DecisionOut,
    DenyIn,
    EmailsIn,
    GroupListOut,
    GroupOut,
    InvitePageOut,
    MembersAddIn,
    MembersAddOut,
    MembersRemoveOut,
    PersonIn,
    PersonOut,
    ProblemOut,
    UserPageOut,
)
from groups_app.models import TokenAccount

logger = logging.getLogger("groups_app.api")

DESCRIPTION = """\
Group Admin's REST API: the same rules, audit log and outcomes as the pages.

Authenticate with a personal API token (the **API tokens** page, or
`manage.py create_api_token`): `Authorization: Bearer gat_…`. A token's scope — `read`,
`request` (also file access requests) or `change` (everything its account's role allows) —
never exceeds its account's role. Every change is audited as the account, "via API token"
and the token's name. Errors are `application/problem+json` (RFC 9457), with `errors` per field; too many
calls answer 429 with `Retry-After`.
"""


class GroupAdminAPI(NinjaAPI):
    def get_openapi_operation_id(self, operation) -> str:
        return operation.view_func.__name__


api = GroupAdminAPI(
    title="Group Admin API",
    version="1",
    description=DESCRIPTION,
    urls_namespace="api-v1",
    auth=BearerToken(),
)

READ = {
    401: ProblemOut,
    403: ProblemOut,
    404: ProblemOut,
    422: ProblemOut,
    429: ProblemOut,
    502: ProblemOut,
    503: ProblemOut,
}
CHANGE = {**READ, 409: ProblemOut}


def _account(request: HttpRequest) -> TokenAccount:
    return request.auth  # type: ignore[attr-defined]


# -- errors as problem details ------------------------------------------------------------------


@api.exception_handler(Problem)
def _problem(request: HttpRequest, exc: Problem) -> HttpResponse:
    return problem_response(request, exc)


@api.exception_handler(AuthenticationError)
def _unauthenticated(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    return problem_response(request, UNAUTHENTICATED)


@api.exception_handler(ValidationError)
def _invalid(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    errors: dict[str, list[str]] = {}
    for error in exc.errors:
        location = [str(part) for part in error.get("loc", ())]
        # ("body", "payload", "emails", "0") → "emails.0"; ("query", "page") → "page"
        parts = location[2:] if location[:1] == ["body"] else location[1:]
        errors.setdefault(".".join(parts) or "body", []).append(error.get("msg", "Invalid value."))
    detail = "; ".join(f"{name}: {' '.join(messages)}" for name, messages in errors.items())
    return problem_response(
        request, Problem(422, "Invalid input", detail, kind="invalid-input", errors=errors)
    )


@api.exception_handler(Http404)
def _not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return problem_response(request, Problem(404, "Not found", "No such resource.", kind="not-found"))


@api.exception_handler(Exception)
def _other(request: HttpRequest, exc: Exception) -> HttpResponse:
    problem = problem_for(exc, request_id=getattr(request, "id", ""))
    if problem is None:
        logger.exception("The API failed on %s %s", request.method, request.path)
        problem = Problem(500, "Internal error", "Something went wrong; the request id is in the server log.")
    return problem_response(request, problem)


# -- groups ------------------------------------------------------------------------------------


@api.get("/groups", response={200: GroupListOut, **READ}, tags=["groups"])
def list_groups(
    request: HttpRequest,
    q: str = Query("", max_length=200, description="Part of the name."),
    sort: Literal["name", "members"] = "name",
    order: Literal["asc", "desc"] = "asc",
    page: int = Query(1, ge=1),
    page_size: int = Query(50, ge=1, le=200),
):
    """Search the groups (from the mirror: `as_of` says how fresh)."""
    return operations.groups_search(
        _account(request), query=q, sort=sort, order=order, page=page, page_size=page_size
    )


@api.get("/groups/{group_id}", response={200: GroupOut, **READ}, tags=["groups"])
def get_group(request: HttpRequest, group_id: str):
    """One group, read live from Segment: counts, permissions with role and resource names, labels."""
    return operations.group_read(_account(request), group_id=group_id)


@api.get("/groups/{group_id}/users", response={200: UserPageOut, **READ}, tags=["groups"])
def list_group_users(
    request: HttpRequest,
    group_id: str,
    cursor: str = Query("", max_length=500),
    count: int = Query(50, ge=1, le=200),
):
    """One page of the group's workspace users (live); pass `next_cursor` back as `cursor`."""
    return operations.group_users(_account(request), group_id=group_id, cursor=cursor, count=count)


@api.get("/groups/{group_id}/invites", response={200: InvitePageOut, **READ}, tags=["groups"])
def list_group_invites(
    request: HttpRequest,
    group_id: str,
    cursor: str = Query("", max_length=500),
    count: int = Query(50, ge=1, le=200),
):
    """One page of the group's pending invites (live)."""
    return operations.group_invites(_account(request), group_id=group_id, cursor=cursor, count=count)


@api.post(
    "/groups/{group_id}/members",
    response={200: MembersAddOut, 202: MembersAddOut, **CHANGE},
    tags=["changes"],
)
def add_members(
    request: HttpRequest,
    group_id: str,
    payload: MembersAddIn,
    idempotency_key: str = Header("", alias="Idempotency-Key"),
):
    """Add members (unknown emails become invites), optionally until a day. A privileged group
    under the two-person rule: access requests are filed instead (202, `awaiting_approval`).
    Needs scope `change`."""
    status, answer = operations.members_add(
        _account(request),
        group_id=group_id,
        emails=payload.emails,
        until=payload.until,
        idempotency_key=idempotency_key,
        request_id=getattr(request, "id", ""),
    )
    return Status(status, answer)


@api.post("/groups/{group_id}/members/remove", response={200: MembersRemoveOut, **CHANGE}, tags=["changes"])
def remove_members(
    request: HttpRequest,
    group_id: str,
    payload: EmailsIn,
    idempotency_key: str = Header("", alias="Idempotency-Key"),
):
    """Remove users and invites from a group. Needs scope `change`."""
    return operations.members_remove(
        _account(request),
        group_id=group_id,
        emails=payload.emails,
        idempotency_key=idempotency_key,
        request_id=getattr(request, "id", ""),
    )


# -- people ------------------------------------------------------------------------------------


@api.post("/people/lookup", response={200: PersonOut, **READ}, tags=["people"])
def lookup_person(request: HttpRequest, payload: PersonIn):
    """A person's groups, roles and resources (from the mirror). POST, so no email is in a URL."""
    return operations.person_lookup(_account(request), email=payload.email)


# -- access requests ---------------------------------------------------------------------------


@api.get("/access-requests", response={200: AccessRequestPageOut, **READ}, tags=["access requests"])
def list_access_requests(
    request: HttpRequest,
    status: str = Query("open", max_length=24, description="open (needs a person), or a status."),
    group: str = Query("", max_length=200),
    cursor: int = Query(0, ge=0),
    limit: int = Query(50, ge=1, le=200),
):
    """Approvers (Help desk, Administrators) see the queue; others their own requests."""
    return operations.access_requests_list(
        _account(request), status=status, group=group, cursor=cursor, limit=limit
    )


@api.post(
    "/access-requests",
    response={200: AccessRequestFiledOut, 201: AccessRequestFiledOut, **CHANGE},
    tags=["access requests"],
)
def file_access_request(request: HttpRequest, payload: AccessRequestIn):
    """File access requests for yourself, or (Help desk) for others. Needs scope `request`."""
    status, answer = operations.access_request_create(
        _account(request),
        group_id=payload.group_id,
        justification=payload.justification,
        emails=payload.emails,
        needed_until=payload.needed_until,
        request_id=getattr(request, "id", ""),
    )
    return Status(status, answer)


@api.post(
    "/access-requests/{access_request_id}/approve",
    response={200: DecisionOut, **CHANGE},
    tags=["access requests"],
)
def approve_access_request(request: HttpRequest, access_request_id: int):
    """Approve and provision (never one you filed or for yourself). Needs scope `change`."""
    return operations.access_request_decide(
        _account(request),
        access_request_id=access_request_id,
        approve=True,
        request_id=getattr(request, "id", ""),
    )


@api.post(
    "/access-requests/{access_request_id}/deny",
    response={200: DecisionOut, **CHANGE},
    tags=["access requests"],
)
def deny_access_request(request: HttpRequest, access_request_id: int, payload: DenyIn):
    """Deny with a reason (sent to the requester). Needs scope `change`."""
    return operations.access_request_decide(
        _account(request),
        access_request_id=access_request_id,
        approve=False,
        reason=payload.reason,
        request_id=getattr(request, "id", ""),
    )


# -- audit log ---------------------------------------------------------------------------------


@api.get("/audit", response={200: AuditPageOut, **READ}, tags=["audit"])
def list_audit_entries(
    request: HttpRequest,
    text: str = Query("", max_length=200),
    actor: str = Query("", max_length=150),
    action: str = Query("", max_length=40),
    group: str = Query("", max_length=200),
    status: str = Query(
        "", max_length=10, description="An outcome: succeeded, failed, unknown, refused, filed, pending."
    ),
    date_from: date | None = None,
    date_to: date | None = None,
    cursor: int = Query(0, ge=0),
    limit: int = Query(50, ge=1, le=200),
):
    """The audit log, newest first, with its filters."""
    return operations.audit_list(
        _account(request),
        cursor=cursor,
        limit=limit,
        text=text,
        actor=actor,
        action=action,
        group=group,
        status=status,
        date_from=date_from,
        date_to=date_to,
    )
