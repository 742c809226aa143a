"""The MCP server, driven by the official `mcp` client against a live server."""

import asyncio
import json
import os
from concurrent.futures import ThreadPoolExecutor

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from groups_app.models import AccessRequest, AuditEntry
from groups_app.services.api_tokens import api_token_create
from groups_app.services.audit import SYSTEM
from sandbox.models import Membership, WorkspaceUser
from tests.factories import administrator, viewer

# The client's event loop runs in the test's thread; the ORM calls are made outside it.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

pytestmark = pytest.mark.django_db(transaction=True)

READ_TOOLS = {"search_groups", "get_group", "find_person", "list_access_requests"}


def token(user, scope, name=""):
    return api_token_create(actor=SYSTEM, user=user, name=name or f"{scope}-assistant", scope=scope).secret


def with_client(url, secret, work):
    """Connect the official client (initialize handshake included) and run `work(client)`."""

    async def main():
        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {secret}"}, timeout=30)
        async with http, Client(streamable_http_client(url, http_client=http)) as client:
            return await work(client)

    # In a thread of its own: the browser tests' Playwright leaves an event loop in this one.
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, main()).result()


@pytest.fixture
def mcp_url(live_server, demo_workspace):
    return f"{live_server.url}/mcp"


def test_request_token_initialises_lists_tools_searches_and_requests_access(mcp_url, demo_workspace):
    vera = viewer(username="vera", email="vera@example.com")
    team = next(g for g in demo_workspace.values() if g.name != "All Employees" and "<" not in g.name)

    async def work(client):
        tools = (await client.list_tools()).tools
        found = await client.call_tool("search_groups", {"query": team.name})
        filed = await client.call_tool(
            "request_access", {"group_id": team.id, "justification": "Dashboards for the Q3 review"}
        )
        return (client.server_info, client.protocol_version), tools, found, filed

    (server, version), tools, found, filed = with_client(mcp_url, token(vera, "request"), work)

    assert server.name == "group-admin"
    assert version == "2025-11-25"
    names = {tool.name for tool in tools}
    assert names == READ_TOOLS | {"request_access"}
    assert all(tool.input_schema["type"] == "object" for tool in tools)
    assert not found.is_error
    assert team.id in [g["id"] for g in found.structured_content["items"]]
    assert team.name in found.content[0].text
    assert not filed.is_error, filed.content[0].text
    assert f"for vera@example.com to join {team.name}" in filed.content[0].text
    access_request = AccessRequest.objects.get()
    assert (access_request.email, access_request.group_id) == ("vera@example.com", team.id)
    entry = AuditEntry.objects.get(action=AuditEntry.Action.REQUEST_FILE)
    assert entry.via == "API token request-assistant"
    assert entry.actor_username == "vera"


def test_read_token_sees_only_read_tools_and_is_refused_on_changes(mcp_url, demo_workspace):
    ada = administrator(username="ada", email="ada@example.com")
    team = next(g for g in demo_workspace.values() if g.name != "All Employees" and "<" not in g.name)

    async def work(client):
        tools = {tool.name for tool in (await client.list_tools()).tools}
        added = await client.call_tool("add_members", {"group_id": team.id, "emails": ["x@example.com"]})
        return tools, added

    tools, added = with_client(mcp_url, token(ada, "read"), work)

    assert tools == READ_TOOLS
    assert added.is_error
    assert "scope read" in added.content[0].text
    assert added.structured_content["outcome"] == "refused"
    assert not Membership.objects.filter(group=team, user__email="x@example.com").exists()
    assert AuditEntry.objects.get(action=AuditEntry.Action.MEMBERS_ADD).status == AuditEntry.Status.REFUSED


def test_change_token_adds_members_and_reads_the_group(mcp_url, demo_workspace):
    ada = administrator(username="ada", email="ada@example.com")
    team = next(g for g in demo_workspace.values() if g.name != "All Employees" and "<" not in g.name)
    newcomer = WorkspaceUser.objects.exclude(memberships__group=team).first()

    async def work(client):
        added = await client.call_tool("add_members", {"group_id": team.id, "emails": [newcomer.email]})
        group = await client.call_tool("get_group", {"group_id": team.id})
        bad = await client.call_tool("add_members", {"group_id": team.id, "emails": []})
        return added, group, bad

    added, group, bad = with_client(mcp_url, token(ada, "change", name="assistant"), work)

    assert not added.is_error, added.content[0].text
    assert added.structured_content["added"] == [newcomer.email]
    assert Membership.objects.filter(group=team, user=newcomer).exists()
    assert AuditEntry.objects.get(pk=added.structured_content["audit_entry"]).via == "API token assistant"
    assert group.structured_content["name"] == team.name
    assert bad.is_error and "emails" in bad.content[0].text


def test_no_token_is_refused_with_401(live_server, db):
    response = httpx2.post(
        f"{live_server.url}/mcp",
        json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}},
        headers={"Accept": "application/json, text/event-stream"},
    )

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_transport_edges(client, db):
    secret = token(viewer(username="vera"), "read")
    auth = {"HTTP_AUTHORIZATION": f"Bearer {secret}"}

    def post(payload, **extra):
        return client.post("/mcp", payload, content_type="application/json", **auth, **extra)

    assert client.get("/mcp", **auth).status_code == 405
    assert post({"jsonrpc": "2.0", "method": "notifications/initialized"}).status_code == 202
    assert post("not json").status_code == 400
    assert json.loads(post({"jsonrpc": "2.0", "id": 7, "method": "nope"}).content)["error"]["code"] == -32601
    assert (
        post({"jsonrpc": "2.0", "id": 1, "method": "ping"}, HTTP_ORIGIN="https://evil.example").status_code
        == 403
    )
    assert (
        post(
            {"jsonrpc": "2.0", "id": 1, "method": "ping"}, HTTP_MCP_PROTOCOL_VERSION="1999-01-01"
        ).status_code
        == 400
    )
    initialized = json.loads(
        post(
            {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18"}}
        ).content
    )
    assert initialized["result"]["protocolVersion"] == "2025-06-18"
    unknown = json.loads(
        post({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "rm_rf"}}).content
    )
    assert unknown["error"]["code"] == -32602
