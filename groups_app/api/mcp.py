"""The MCP server at /mcp: Model Context Protocol over Streamable HTTP, as a plain Django view.

Why a Django view and not the SDK's server: the SDK serves ASGI (Starlette), and Group Admin
runs under WSGI (gunicorn) with its middleware — request ids, the Segment deadline, the audit
origin. The transport is small: each JSON-RPC request is one POST answered with one JSON
body (the spec lets a server answer `application/json` instead of opening an SSE stream);
notifications get 202. The server is stateless — no `Mcp-Session-Id`, no GET stream, nothing
kept between requests — so it runs on any number of workers. The official client
(tests/api/test_mcp.py) checks it end to end against a live server.

Tools are thin calls into `operations`, the same code the REST API runs: the same bearer
tokens and scopes, the same services and rule book, changes audited "via API token <name>".
A token sees only the tools its scope allows (read: the read tools).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal
from urllib.parse import urlsplit

from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from ninja import Field, Schema
from pydantic import ValidationError

from groups_app.api import operations
from groups_app.api.auth import bearer_account
from groups_app.api.problems import Problem, problem_for
from groups_app.api.schemas import (
    AccessRequestFiledOut,
    AccessRequestPageOut,
    DecisionOut,
    GroupListOut,
    GroupOut,
    MembersAddOut,
    MembersRemoveOut,
    PersonOut,
)
from groups_app.models import ApiToken, TokenAccount

logger = logging.getLogger("groups_app.mcp")

PROTOCOL_VERSIONS = ("2025-11-25", "2025-06-18", "2025-03-26")  # newest first
SERVER_INFO = {"name": "group-admin", "title": "Group Admin", "version": "1"}
INSTRUCTIONS = (
    "Group Admin administers the user groups of a Segment workspace. Search groups and people, "
    "read a group live, file and decide access requests, add and remove members. Every change "
    "goes through the same rules as the dashboard (roles, privileged groups, the two-person "
    "rule) and is audited in the name of the token's owner."
)

PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS, INTERNAL_ERROR = (
    -32700,
    -32600,
    -32601,
    -32602,
    -32603,
)
MAX_BODY = 1_000_000


# -- tools ------------------------------------------------------------------------------------


class SearchGroupsIn(Schema):
    query: str = Field("", max_length=200, description="Part of the group's name; empty lists all.")
    sort: Literal["name", "members"] = "name"
    order: Literal["asc", "desc"] = "asc"
    page: int = Field(1, ge=1)
    page_size: int = Field(25, ge=1, le=200)


class GroupIdIn(Schema):
    group_id: str = Field(..., max_length=64, description="The group's Segment id.")


class FindPersonIn(Schema):
    email: str = Field(..., max_length=320)


class ListAccessRequestsIn(Schema):
    status: str = Field("open", max_length=24, description="open (needs a person), or a status.")
    group: str = Field("", max_length=200, description="A group id or part of its name.")
    cursor: int = Field(0, ge=0)
    limit: int = Field(50, ge=1, le=200)


class RequestAccessIn(Schema):
    group_id: str = Field(..., max_length=64)
    justification: str = Field(..., max_length=5000, description="Why the access is needed.")
    emails: list[str] | None = Field(
        None, max_length=1000, description="Whom for; leave out to ask for yourself (others: Help desk)."
    )
    needed_until: date | None = Field(None, description="The access ends after this day (YYYY-MM-DD).")


class DecideIn(Schema):
    access_request_id: int = Field(..., ge=1)
    decision: Literal["approve", "deny"]
    reason: str = Field("", max_length=5000, description="Required to deny; sent to the requester.")


class MembersIn(Schema):
    group_id: str = Field(..., max_length=64)
    emails: list[str] = Field(..., min_length=1, max_length=1000)


@dataclass(frozen=True)
class Tool:
    name: str
    title: str
    description: str
    scope: str
    arguments: type[Schema]
    answer: type[Schema]
    run: Callable[[TokenAccount, Any, str], dict[str, Any]]
    says: Callable[[dict[str, Any]], str]
    is_read_only: bool = True
    is_destructive: bool = False

    def listing(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "inputSchema": self.arguments.model_json_schema(),
            "outputSchema": self.answer.model_json_schema(),
            "annotations": {
                "title": self.title,
                "readOnlyHint": self.is_read_only,
                "destructiveHint": self.is_destructive,
                "idempotentHint": self.is_read_only,
                "openWorldHint": False,
            },
        }


def _lines(*lines: str) -> str:
    return "\n".join(line for line in lines if line)


def _say_groups(answer: dict[str, Any]) -> str:
    as_of = answer["as_of"].isoformat() if answer["as_of"] else "never (the mirror is empty)"
    rows = [
        f"- {g['name']} (id {g['id']}): {g['member_count']} members; roles: {', '.join(g['role_names']) or 'none'}"
        + (" — privileged" if g["is_privileged"] else "")
        for g in answer["items"]
    ]
    return _lines(
        f"{answer['total']} groups match (page {answer['page']} of {answer['page_count']}); workspace as of {as_of}.",
        *rows,
    )


def _say_group(answer: dict[str, Any]) -> str:
    grants = [
        f"- {p['role_name']} on "
        + ", ".join(
            (r["name"] or r["id"])
            + f" ({r['type']})"
            + "".join(f"[{label['key']}={label['value']}]" for label in r["labels"])
            for r in p["resources"]
        )
        for p in answer["permissions"]
    ]
    return _lines(
        f"{answer['name']} (id {answer['id']}): {answer['member_count']} members "
        f"({answer['user_count'] if answer['user_count'] is not None else '?'} users, "
        f"{answer['invite_count'] if answer['invite_count'] is not None else '?'} pending invites)"
        + (", privileged" if answer["is_privileged"] else "")
        + ".",
        "Permissions:" if grants else "It grants no permissions.",
        *grants,
    )


def _say_person(answer: dict[str, Any]) -> str:
    if not answer["is_known"]:
        return f"{answer['email']} is in no group (as far as the mirror knows)."
    groups = [
        f"- {g['name']} (id {g['id']})" + (" — pending invite" if g["is_invite"] else "")
        for g in answer["groups"]
    ]
    grants = [
        f"- {g['role_name']} on {g['resource']['id']} ({g['resource']['type']}) through {', '.join(g['through_groups'])}"
        for g in answer["grants"]
    ]
    return _lines(
        f"{answer['email']} is in {len(groups)} groups:", *groups, "Access:" if grants else "", *grants
    )


def _say_requests(answer: dict[str, Any]) -> str:
    rows = [
        f"- #{r['id']}: {r['email']} → {r['group_name']} ({r['status_label']}), by {r['requester']}: {r['justification']}"
        for r in answer["items"]
    ]
    return _lines(
        f"{len(rows)} access requests.",
        *rows,
        f"More: cursor {answer['next_cursor']}." if answer["next_cursor"] else "",
    )


def _say_filed(answer: dict[str, Any]) -> str:
    return (
        _lines(
            *(
                f"Filed request #{r['id']} for {r['email']} to join {r['group_name']}."
                for r in answer["filed"]
            ),
            *(f"{email} is already a member; nothing filed." for email in answer["already_members"]),
            *(f"{r['email']} already has a pending request (#{r['id']})." for r in answer["already_pending"]),
        )
        or "Nothing was filed."
    )


def _say_decision(answer: dict[str, Any]) -> str:
    request = answer["access_request"]
    return f"Request #{request['id']} ({request['email']} → {request['group_name']}): {request['status_label']}. Audit entry #{answer['audit_entry']}."


def _say_change(answer: dict[str, Any]) -> str:
    return f"{answer['message']} (outcome: {answer['outcome']}; audit entry #{answer['audit_entry']})"


TOOLS = (
    Tool(
        "search_groups",
        "Search groups",
        "Search the workspace's groups by name (from Group Admin's mirror, which says how fresh it is).",
        ApiToken.Scope.READ,
        SearchGroupsIn,
        GroupListOut,
        lambda account, a, _: operations.groups_search(
            account, query=a.query, sort=a.sort, order=a.order, page=a.page, page_size=a.page_size
        ),
        _say_groups,
    ),
    Tool(
        "get_group",
        "Read a group",
        "Read one group live from Segment: member counts, and the roles it grants on which resources (labels included).",
        ApiToken.Scope.READ,
        GroupIdIn,
        GroupOut,
        lambda account, a, _: operations.group_read(account, group_id=a.group_id),
        _say_group,
    ),
    Tool(
        "find_person",
        "Find a person",
        "The groups a person (by email) is in, and the roles and resources those grant them.",
        ApiToken.Scope.READ,
        FindPersonIn,
        PersonOut,
        lambda account, a, _: operations.person_lookup(account, email=a.email),
        _say_person,
    ),
    Tool(
        "list_access_requests",
        "List access requests",
        "Access requests: approvers see the queue (status 'open': needing a person), others their own.",
        ApiToken.Scope.READ,
        ListAccessRequestsIn,
        AccessRequestPageOut,
        lambda account, a, _: operations.access_requests_list(
            account, status=a.status, group=a.group, cursor=a.cursor, limit=a.limit
        ),
        _say_requests,
    ),
    Tool(
        "request_access",
        "Request access",
        "File an access request to a group, for yourself or (Help desk) for others; someone else decides it.",
        ApiToken.Scope.REQUEST,
        RequestAccessIn,
        AccessRequestFiledOut,
        lambda account, a, request_id: operations.access_request_create(
            account,
            group_id=a.group_id,
            justification=a.justification,
            emails=a.emails,
            needed_until=a.needed_until,
            request_id=request_id,
        )[1],
        _say_filed,
        is_read_only=False,
    ),
    Tool(
        "decide_access_request",
        "Approve or deny an access request",
        "Approve (adds the person to the group) or deny (with a reason) a pending access request. "
        "Nobody decides a request they filed or one for themselves.",
        ApiToken.Scope.CHANGE,
        DecideIn,
        DecisionOut,
        lambda account, a, request_id: operations.access_request_decide(
            account,
            access_request_id=a.access_request_id,
            approve=a.decision == "approve",
            reason=a.reason,
            request_id=request_id,
        ),
        _say_decision,
        is_read_only=False,
    ),
    Tool(
        "add_members",
        "Add members",
        "Add people (by email) to a group; unknown emails are invited. For a privileged group the "
        "additions may be filed for a second Administrator instead.",
        ApiToken.Scope.CHANGE,
        MembersIn,
        MembersAddOut,
        lambda account, a, request_id: operations.members_add(
            account, group_id=a.group_id, emails=a.emails, request_id=request_id
        )[1],
        _say_change,
        is_read_only=False,
    ),
    Tool(
        "remove_members",
        "Remove members",
        "Remove users and pending invites (by email) from a group; they lose the access it grants.",
        ApiToken.Scope.CHANGE,
        MembersIn,
        MembersRemoveOut,
        lambda account, a, request_id: operations.members_remove(
            account, group_id=a.group_id, emails=a.emails, request_id=request_id
        ),
        _say_change,
        is_read_only=False,
        is_destructive=True,
    ),
)
TOOLS_BY_NAME = {tool.name: tool for tool in TOOLS}


def visible_tools(account: TokenAccount) -> list[Tool]:
    return [tool for tool in TOOLS if operations.scope_allows(account, tool.scope)]


# -- JSON-RPC ---------------------------------------------------------------------------------


class RpcError(Exception):
    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code, self.message, self.data = code, message, data


def _tool_error(text: str, problem: dict[str, Any] | None = None) -> dict[str, Any]:
    result: dict[str, Any] = {"content": [{"type": "text", "text": text}], "isError": True}
    if problem is not None:
        result["structuredContent"] = problem
    return result


def call_tool(account: TokenAccount, params: dict[str, Any], request: HttpRequest) -> dict[str, Any]:
    name = params.get("name")
    tool = TOOLS_BY_NAME.get(name) if isinstance(name, str) else None
    if tool is None:
        raise RpcError(INVALID_PARAMS, f"Unknown tool: {name!r}")
    arguments = params.get("arguments") or {}
    if not isinstance(arguments, dict):
        raise RpcError(INVALID_PARAMS, "arguments must be an object")
    request_id = getattr(request, "id", "")
    try:
        if not operations.scope_allows(account, tool.scope):
            operations.require_scope(
                account, tool.scope, action=_refused_action(tool), path=f"/mcp {tool.name}"
            )
        checked = tool.arguments.model_validate(arguments)
        answer = tool.run(account, checked, request_id)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}" for e in exc.errors()
        )
        return _tool_error(f"Invalid arguments: {problems}")
    except Exception as exc:
        problem = problem_for(exc, request_id=request_id, is_change=not tool.is_read_only)
        if problem is None:
            raise
        body = problem.body()
        text = f"{problem.title}: {problem.detail}"
        if problem.errors:
            text += " " + "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in problem.errors.items())
        if body.get("audit_entry"):
            text += f" (audit entry #{body['audit_entry']})"
        if problem.status == 202:  # filed for approval: not an error
            return {"content": [{"type": "text", "text": text}], "structuredContent": body, "isError": False}
        return _tool_error(text, body)
    structured = tool.answer.model_validate(answer).model_dump(mode="json")
    return {
        "content": [{"type": "text", "text": tool.says(answer)}],
        "structuredContent": structured,
        "isError": False,
    }


def _refused_action(tool: Tool) -> str:
    return {
        "request_access": "request.file",
        "decide_access_request": "request.approve",
        "add_members": "members.add",
        "remove_members": "members.remove",
    }.get(tool.name, "members.add")


def _initialize(params: dict[str, Any]) -> dict[str, Any]:
    wanted = params.get("protocolVersion")
    version = wanted if wanted in PROTOCOL_VERSIONS else PROTOCOL_VERSIONS[0]
    return {
        "protocolVersion": version,
        "capabilities": {"tools": {"listChanged": False}},
        "serverInfo": SERVER_INFO,
        "instructions": INSTRUCTIONS,
    }


def dispatch(
    account: TokenAccount, method: str, params: dict[str, Any], request: HttpRequest
) -> dict[str, Any]:
    if method == "initialize":
        return _initialize(params)
    if method == "ping":
        return {}
    if method == "tools/list":
        return {"tools": [tool.listing() for tool in visible_tools(account)]}
    if method == "tools/call":
        return call_tool(account, params, request)
    raise RpcError(METHOD_NOT_FOUND, f"Method not found: {method}")


def _rpc_error(message_id: Any, code: int, message: str, *, status: int = 200) -> JsonResponse:
    return JsonResponse(
        {"jsonrpc": "2.0", "id": message_id, "error": {"code": code, "message": message}}, status=status
    )


def _is_foreign_origin(request: HttpRequest) -> bool:
    """A browser page of another site posting here (DNS rebinding): the spec says refuse it."""
    origin = request.headers.get("Origin")
    if not origin:
        return False
    parts = urlsplit(origin)
    return (
        not url_has_allowed_host_and_scheme(
            f"{origin}/", allowed_hosts={request.get_host()}, require_https=request.is_secure()
        )
        or not parts.netloc
    )


@csrf_exempt
@login_not_required
@never_cache
def mcp_view(request: HttpRequest) -> HttpResponse:
    """POST one JSON-RPC message; GET (a server stream) and DELETE (sessions) are not offered."""
    if request.method != "POST":
        response = HttpResponse(status=405)
        response["Allow"] = "POST"
        return response
    if _is_foreign_origin(request):
        return _rpc_error(None, INVALID_REQUEST, "Origin not allowed.", status=403)
    try:
        account = bearer_account(request)
    except Exception as exc:  # the token's rate limit
        problem = problem_for(exc)
        if problem is None:
            raise
        response = _rpc_error(None, INVALID_REQUEST, problem.detail, status=problem.status)
        if problem.retry_after is not None:
            response["Retry-After"] = str(problem.retry_after)
        return response
    if account is None:
        response = _rpc_error(
            None, INVALID_REQUEST, "Send an API token as 'Authorization: Bearer <token>'.", status=401
        )
        response["WWW-Authenticate"] = 'Bearer realm="group-admin"'
        return response
    version = request.headers.get("MCP-Protocol-Version")
    if version and version not in PROTOCOL_VERSIONS:
        return _rpc_error(None, INVALID_REQUEST, f"Unsupported MCP-Protocol-Version: {version}", status=400)
    if len(request.body) > MAX_BODY:
        return _rpc_error(None, INVALID_REQUEST, "The message is too large.", status=413)
    try:
        message = json.loads(request.body)
    except (ValueError, UnicodeDecodeError):
        return _rpc_error(None, PARSE_ERROR, "Parse error: the body is not JSON.", status=400)
    if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
        return _rpc_error(None, INVALID_REQUEST, "Expected one JSON-RPC 2.0 message.", status=400)
    method = message.get("method")
    if "id" not in message or method is None:
        return HttpResponse(status=202)  # a notification, or a response to us: nothing to answer
    message_id = message["id"]
    params = message.get("params") or {}
    if not isinstance(method, str) or not isinstance(params, dict):
        return _rpc_error(message_id, INVALID_REQUEST, "method must be a string and params an object.")
    try:
        result = dispatch(account, method, params, request)
    except RpcError as exc:
        return _rpc_error(message_id, exc.code, exc.message)
    except Problem as exc:
        return _rpc_error(message_id, INTERNAL_ERROR, exc.detail)
    except Exception:
        logger.exception("The MCP method %s failed", method)
        return _rpc_error(message_id, INTERNAL_ERROR, "Internal error; the request id is in the server log.")
    return JsonResponse({"jsonrpc": "2.0", "id": message_id, "result": result})
