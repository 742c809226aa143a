"""The in-process transport, and the same client over a real socket."""

import json

import pytest
import requests

from groups_app.segment import SegmentClient
from groups_app.services.segment_client import SANDBOX_BASE_URL
from sandbox.transport import SandboxAdapter
from tests.sandbox.conftest import TOKEN

pytestmark = pytest.mark.django_db


@pytest.fixture
def session():
    session = requests.Session()
    session.mount("http://sandbox.internal/", SandboxAdapter())
    return session


def test_round_trip_keeps_status_headers_query_and_body(session, workspace):
    response = session.post(
        f"{SANDBOX_BASE_URL}/groups/groupData000000000000000000001/users",
        data=json.dumps({"emails": ["Zoe@Example.com"]}),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        timeout=5,
    )
    listing = session.get(
        f"{SANDBOX_BASE_URL}/groups/groupData000000000000000000001/invites",
        params={"pagination.count": 1},
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=5,
    )

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["X-RateLimit-Consumed"] == "1"
    assert response.json()["data"]["userGroup"]["memberCount"] == 4
    assert listing.json()["data"]["emails"] == ["newbie@example.com"]
    assert listing.url.endswith("pagination.count=1")


def test_unknown_prefix_is_404(session, workspace):
    response = session.get("http://sandbox.internal/elsewhere", headers={"Authorization": f"Bearer {TOKEN}"})

    assert response.status_code == 404


def test_crash_in_the_sandbox_is_a_500_response(session, workspace, monkeypatch):
    from sandbox import api

    def explode(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(api, "_groups", explode)

    response = session.get(f"{SANDBOX_BASE_URL}/groups", headers={"Authorization": f"Bearer {TOKEN}"})

    assert response.status_code == 500
    assert response.json()["errors"][0]["type"] == "server-error"


def test_does_not_close_the_outer_database_connection(session, workspace):
    from django.db import connection

    session.get(f"{SANDBOX_BASE_URL}/groups", headers={"Authorization": f"Bearer {TOKEN}"})

    assert connection.connection is not None
    assert connection.in_atomic_block  # still inside the test's transaction


@pytest.mark.django_db(transaction=True)
def test_client_over_a_real_socket(live_server):
    client = SegmentClient(f"{live_server.url}/sandbox/api", TOKEN, timeout=(2, 10))

    created = client.create_user_group("Over HTTP")
    client.add_users_to_user_group(created.id, ["someone@example.com"])

    assert client.get_user_group(created.id).member_count == 1
    assert list(client.iter_invites_from_user_group(created.id)) == ["someone@example.com"]
