"""What the API and the MCP server do, once for both doors: thin calls into the same services
the pages call, answers as plain JSON-ready dicts, and every failure as a `Problem`.

No rule is decided here. The scope check only narrows what a token may attempt (its account's
role is the rule book's to judge), and an attempt refused for its scope is audited like any
other refusal.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any

from groups_app.api.problems import Problem, problem_for
from groups_app.models import AccessRequest, ApiToken, AuditEntry, TokenAccount
from groups_app.roles import HANDLE_ACCESS_REQUESTS, VIEW
from groups_app.segment import UserGroup, check_id
from groups_app.services.approvals.access_requests import (
    access_request_approve,
    access_request_deny,
    access_request_file,
    access_request_queue,
)
from groups_app.services.approvals.changes import members_add_or_file
from groups_app.services.audit_log import audit_entries
from groups_app.services.changes import change_refused
from groups_app.services.errors import TooManyRefusals
from groups_app.services.groups import (
    SORTS,
    group_detail,
    group_invites_page,
    group_list,
    group_members_page,
)
from groups_app.services.membership import group_members_remove
from groups_app.services.people import person_detail

Action = AuditEntry.Action
Scope = ApiToken.Scope
SCOPE_ORDER = {Scope.READ: 0, Scope.REQUEST: 1, Scope.CHANGE: 2}
MAX_PAGE = 200


# -- who may try what -------------------------------------------------------------------------


def scope_allows(account: TokenAccount, needed: str) -> bool:
    return SCOPE_ORDER[account.api_token.scope] >= SCOPE_ORDER[needed]


def require_scope(
    account: TokenAccount, needed: str, *, action: str, group_id: str = "", path: str = ""
) -> None:
    """Refuse (and audit) an attempt its token's scope does not cover; nothing is sent.

    Raises:
        Problem: 403, with the refusal's audit entry.
    """
    if scope_allows(account, needed):
        return
    reason = f"The API token “{account.api_token.name}” has the scope {account.api_token.scope}; this needs {needed}."
    try:
        entry = change_refused(actor=account, action=action, reason=reason, group_id=group_id, path=path)
    except TooManyRefusals as exc:  # counted, not recorded one by one
        raise problem_for(exc, is_change=True) or exc from None
    raise Problem(
        403,
        "Refused",
        reason,
        kind="scope",
        extensions={"outcome": "refused", "audit_entry": entry.pk, "needed_scope": needed},
    )


def require_view(account: TokenAccount) -> None:
    """Reads need the Viewer role (or more), as the pages do."""
    if not account.has_perm(VIEW):
        raise Problem(403, "Refused", "Your role does not allow reading groups.", kind="refused")


@contextmanager
def as_problems(*, request_id: str = "", is_change: bool = False) -> Iterator[None]:
    """Turn what a service raises into the Problem it means."""
    try:
        yield
    except Problem:
        raise
    except Exception as exc:
        problem = problem_for(exc, request_id=request_id, is_change=is_change)
        if problem is None:
            raise
        raise problem from exc


def checked_group_id(group_id: str) -> str:
    try:
        return check_id(group_id)
    except ValueError:
        raise Problem(404, "Not found", "That group does not exist in Segment.", kind="not-found") from None


def submission_key(account: TokenAccount, idempotency_key: str) -> str | None:
    """An Idempotency-Key, per token, as the pipeline's submission key (a resent call is not resent)."""
    if not idempotency_key:
        return None
    if len(idempotency_key) > 200 or not idempotency_key.isprintable():
        raise Problem(
            422,
            "Invalid input",
            "Idempotency-Key: at most 200 printable characters.",
            kind="invalid-input",
            errors={"Idempotency-Key": ["At most 200 printable characters."]},
        )
    return hashlib.sha256(f"api:{account.api_token.caller_key}:{idempotency_key}".encode()).hexdigest()


# -- answers ----------------------------------------------------------------------------------


def _permissions(group: UserGroup, role_names: dict[str, str], resource_names: dict) -> list[dict[str, Any]]:
    return [
        {
            "role_id": p.role_id,
            "role_name": role_names.get(p.role_id) or p.role_name or p.role_id,
            "resources": [
                {
                    "id": r.id,
                    "type": r.type,
                    "name": resource_names.get((r.type, r.id), ""),
                    "labels": [{"key": label.key, "value": label.value} for label in r.labels],
                }
                for r in p.resources
            ],
        }
        for p in group.permissions
    ]


def _access_request(access_request: AccessRequest) -> dict[str, Any]:
    return {
        "id": access_request.pk,
        "group_id": access_request.group_id,
        "group_name": access_request.group_name,
        "email": access_request.email,
        "requester": access_request.requester_username,
        "justification": access_request.justification,
        "needed_until": access_request.needed_until,
        "status": access_request.status,
        "status_label": access_request.get_status_display(),
        "created_at": access_request.created_at,
        "decided_at": access_request.decided_at,
        "decided_by": access_request.decided_by_username or None,
        "decision_reason": access_request.decision_reason or None,
        "provisioning_audit_entry": access_request.provisioning_entry_id,
        "provisioning_error": access_request.provisioning_error or None,
    }


def _audit_entry(entry: AuditEntry) -> dict[str, Any]:
    return {
        "id": entry.pk,
        "created_at": entry.created_at,
        "completed_at": entry.completed_at,
        "actor": entry.actor_username,
        "via": entry.via or None,
        "action": entry.action,
        "action_label": entry.get_action_display(),
        "group_id": entry.group_id or None,
        "group_name": entry.group_name or None,
        "summary": entry.summary,
        "status": entry.status,
        "outcome": entry.outcome,
        "resolution": entry.resolution or None,
        "upstream_status": entry.upstream_status,
        "error": entry.error or None,
        "details": entry.details,
        "request_id": entry.request_id or None,
    }


# -- reads ------------------------------------------------------------------------------------


def groups_search(
    account: TokenAccount,
    *,
    query: str = "",
    sort: str = "name",
    order: str = "asc",
    page: int = 1,
    page_size: int = 50,
) -> dict[str, Any]:
    """Groups from the mirror, with its "as of"."""
    require_view(account)
    listing = group_list(
        query=query[:200],
        sort=sort if sort in SORTS else "name",
        descending=order == "desc",
        page=page,
        page_size=min(max(page_size, 1), MAX_PAGE),
    )
    freshness = listing.freshness
    return {
        "as_of": freshness.as_of,
        "is_updating": freshness.is_updating,
        "total": listing.total,
        "page": listing.page,
        "page_count": listing.page_count,
        "page_size": listing.page_size,
        "items": [
            {
                "id": row.group.id,
                "name": row.group.name,
                "member_count": row.group.member_count,
                "role_names": list(row.role_names),
                "resource_count": row.resource_count,
                "is_privileged": row.is_privileged,
            }
            for row in listing.rows
        ],
    }


def group_read(account: TokenAccount, *, group_id: str) -> dict[str, Any]:
    """One group, read live: counts, permissions with role and resource names, labels."""
    require_view(account)
    group_id = checked_group_id(group_id)
    with as_problems():
        detail = group_detail(group_id=group_id, users_count=1, invites_count=1)
    role_names = {p.role_id: p.role_name for p in detail.permissions}
    return {
        "id": detail.group.id,
        "name": detail.group.name,
        "member_count": detail.group.member_count,
        "user_count": detail.users.total_entries if detail.users is not None else None,
        "invite_count": detail.invites.total_entries if detail.invites is not None else None,
        "is_privileged": detail.is_privileged,
        "permissions": _permissions(detail.group, role_names, detail.resource_names),
        "problems": detail.problems,
    }


def _cursor_page(
    read: Callable[..., Any], account: TokenAccount, group_id: str, cursor: str, count: int
) -> Any:
    require_view(account)
    group_id = checked_group_id(group_id)
    with as_problems():
        return read(group_id=group_id, cursor=cursor or None, count=min(max(count, 1), MAX_PAGE))


def group_users(account: TokenAccount, *, group_id: str, cursor: str = "", count: int = 50) -> dict[str, Any]:
    page = _cursor_page(group_members_page, account, group_id, cursor, count)
    return {
        "items": [{"id": u.id, "name": u.name, "email": u.email} for u in page.items],
        "next_cursor": page.next,
        "previous_cursor": page.previous,
        "total": page.total_entries,
    }


def group_invites(
    account: TokenAccount, *, group_id: str, cursor: str = "", count: int = 50
) -> dict[str, Any]:
    page = _cursor_page(group_invites_page, account, group_id, cursor, count)
    return {
        "items": [{"email": email} for email in page.items],
        "next_cursor": page.next,
        "previous_cursor": page.previous,
        "total": page.total_entries,
    }


def person_lookup(account: TokenAccount, *, email: str) -> dict[str, Any]:
    """A person's groups, roles and resources, from the mirror."""
    require_view(account)
    with as_problems():
        person = person_detail(email)
    return {
        "email": person.email,
        "name": person.name or None,
        "is_known": person.is_known,
        "is_user": person.is_user,
        "as_of": person.freshness.as_of,
        "groups": [
            {
                "id": g.group.id,
                "name": g.group.name,
                "is_invite": g.is_invite,
                "is_privileged": g.is_privileged,
                "role_names": list(g.role_names),
            }
            for g in person.groups
        ],
        "grants": [
            {
                "role_name": grant.role_name,
                "resource": {
                    "id": grant.resource.id,
                    "type": grant.resource.type,
                    "labels": [{"key": label.key, "value": label.value} for label in grant.resource.labels],
                },
                "through_groups": list(grant.groups),
            }
            for grant in person.grants
        ],
        "open_requests": [_access_request(r) for r in person.open_requests],
    }


def access_requests_list(
    account: TokenAccount, *, status: str = "open", group: str = "", cursor: int = 0, limit: int = 50
) -> dict[str, Any]:
    """Approvers see the queue; everyone else their own requests (as on the pages)."""
    limit = min(max(limit, 1), MAX_PAGE)
    if account.has_perm(HANDLE_ACCESS_REQUESTS):
        statuses = {"open", "", *AccessRequest.Status.values}
        if status not in statuses:
            raise Problem(
                422,
                "Invalid input",
                f"status: one of {', '.join(sorted(s for s in statuses if s))}.",
                kind="invalid-input",
                errors={"status": ["Not a status of access requests."]},
            )
        found = access_request_queue(status=status, group=group[:200])
    else:
        found = AccessRequest.objects.filter(requester_id=account.pk).order_by("created_at", "id")
    if cursor:
        found = found.filter(id__gt=cursor)
    rows = list(found.order_by("id")[: limit + 1])
    return {
        "items": [_access_request(r) for r in rows[:limit]],
        "next_cursor": rows[limit - 1].pk if len(rows) > limit else None,
    }


def audit_list(account: TokenAccount, *, cursor: int = 0, limit: int = 50, **filters: Any) -> dict[str, Any]:
    """Audit entries, newest first, with the audit log's filters."""
    require_view(account)
    limit = min(max(limit, 1), MAX_PAGE)
    if filters.get("action") and filters["action"] not in Action.values:
        raise Problem(
            422,
            "Invalid input",
            "Not an action of the audit log.",
            kind="invalid-input",
            errors={"action": ["Not an action of the audit log."]},
        )
    if filters.get("status") and filters["status"] not in AuditEntry.Status.values:
        raise Problem(
            422,
            "Invalid input",
            "Not an outcome of the audit log.",
            kind="invalid-input",
            errors={"status": ["Not an outcome of the audit log."]},
        )
    entries = audit_entries(**{k: v for k, v in filters.items() if v not in (None, "")})
    if cursor:
        entries = entries.filter(id__lt=cursor)
    rows = list(entries.order_by("-id")[: limit + 1])
    return {
        "items": [_audit_entry(e) for e in rows[:limit]],
        "next_cursor": rows[limit - 1].pk if len(rows) > limit else None,
    }


# -- changes ----------------------------------------------------------------------------------


def members_add(
    account: TokenAccount,
    *,
    group_id: str,
    emails: list[str],
    until: date | None = None,
    idempotency_key: str = "",
    request_id: str = "",
) -> tuple[int, dict[str, Any]]:
    """Add members through the same pipeline, rule book and two-person rule as the pages;
    `until` ends the memberships the addition makes after that day (time-bound access).

    Returns (HTTP status, answer): 200 when sent, 202 when filed for a second person.
    """
    group_id = checked_group_id(group_id)
    require_scope(
        account,
        Scope.CHANGE,
        action=Action.MEMBERS_ADD,
        group_id=group_id,
        path=f"/groups/{group_id}/members",
    )
    key = submission_key(account, idempotency_key)
    with as_problems(request_id=request_id, is_change=True):
        changed = members_add_or_file(
            actor=account, group_id=group_id, emails=emails, submission_key=key, ends_on=until
        )
    result = changed.result
    filed = bool(result.awaiting_approval)
    return 202 if filed else 200, {
        "outcome": "filed" if filed else changed.entry.status,
        "message": result.message,
        "group": {"id": result.group.id, "name": result.group.name},
        "added": list(result.added_users),
        "invited": list(result.invited),
        "already_members": list(result.already_members),
        "awaiting_approval": list(result.awaiting_approval),
        "audit_entry": changed.entry.pk if changed.entry is not None else None,
    }


def members_remove(
    account: TokenAccount,
    *,
    group_id: str,
    emails: list[str],
    idempotency_key: str = "",
    request_id: str = "",
) -> dict[str, Any]:
    group_id = checked_group_id(group_id)
    require_scope(
        account,
        Scope.CHANGE,
        action=Action.MEMBERS_REMOVE,
        group_id=group_id,
        path=f"/groups/{group_id}/members/remove",
    )
    key = submission_key(account, idempotency_key)
    with as_problems(request_id=request_id, is_change=True):
        changed = group_members_remove(actor=account, group_id=group_id, emails=emails, submission_key=key)
    removed = list(changed.entry.details.get("emails", []))
    return {
        "outcome": changed.entry.status,
        "message": f"Removed {len(removed)} from {changed.result.name}.",
        "group": {"id": changed.result.id, "name": changed.result.name},
        "removed": removed,
        "audit_entry": changed.entry.pk,
    }


def access_request_create(
    account: TokenAccount,
    *,
    group_id: str,
    justification: str,
    emails: list[str] | None = None,
    needed_until: date | None = None,
    request_id: str = "",
) -> tuple[int, dict[str, Any]]:
    """File requests: for oneself (no emails) or, with Help desk's role, for others."""
    group_id = checked_group_id(group_id)
    require_scope(
        account, Scope.REQUEST, action=Action.REQUEST_FILE, group_id=group_id, path="/access-requests"
    )
    with as_problems(request_id=request_id, is_change=True):
        result = access_request_file(
            actor=account,
            group_id=group_id,
            emails=emails or None,
            justification=justification,
            needed_until=needed_until,
        )
    return 201 if result.filed else 200, {
        "outcome": "filed" if result.filed else "nothing to file",
        "filed": [_access_request(r) for r in result.filed],
        "already_members": list(result.already_members),
        "already_pending": [_access_request(r) for r in result.duplicates],
        "audit_entries": [
            e.pk for r in result.filed for e in r.audit_entries.filter(action=Action.REQUEST_FILE)
        ],
    }


def access_request_decide(
    account: TokenAccount, *, access_request_id: int, approve: bool, reason: str = "", request_id: str = ""
) -> dict[str, Any]:
    """Approve (and provision) or deny a pending request, as the queue's buttons do."""
    action = Action.REQUEST_APPROVE if approve else Action.REQUEST_DENY
    require_scope(account, Scope.CHANGE, action=action, path=f"/access-requests/{access_request_id}")
    if not AccessRequest.objects.filter(pk=access_request_id).exists():
        raise Problem(404, "Not found", "No such access request.", kind="not-found")
    with as_problems(request_id=request_id, is_change=True):
        if approve:
            access_request = access_request_approve(actor=account, access_request_id=access_request_id)
        else:
            access_request = access_request_deny(
                actor=account, access_request_id=access_request_id, reason=reason
            )
    access_request.refresh_from_db()
    decision = access_request.audit_entries.filter(action=action).order_by("-id").first()
    return {
        "outcome": "succeeded",
        "access_request": _access_request(access_request),
        "audit_entry": decision.pk if decision else None,
        "provisioning_audit_entry": access_request.provisioning_entry_id,
    }
