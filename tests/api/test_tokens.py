"""API tokens: the page, the command, how they are stored and audited."""

import hashlib
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from groups_app.models import ApiToken, AuditEntry
from tests.api.conftest import bearer

pytestmark = pytest.mark.django_db


def test_command_prints_the_token_once_as_its_last_line_and_stores_only_a_digest(client, ada):
    out = StringIO()

    call_command(
        "create_api_token",
        "ada",
        "--scope",
        "change",
        "--name",
        "deploy",
        "--expires-days",
        "30",
        stdout=out,
        stderr=StringIO(),
    )

    secret = out.getvalue().strip().splitlines()[-1]
    token = ApiToken.objects.get()
    assert secret.startswith("gat_") and len(secret) > 40
    assert token.digest == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in str(list(ApiToken.objects.values()))
    assert (token.name, token.scope, token.user) == ("deploy", "change", ada)
    assert token.expires_at is not None
    assert client.get("/api/v1/groups", **bearer(secret)).status_code == 200
    entry = AuditEntry.objects.get(action=AuditEntry.Action.API_TOKEN_CREATE)
    assert secret not in entry.summary + str(entry.details)


@pytest.mark.parametrize(
    "args",
    [
        ["nobody", "--scope", "read"],
        ["ada", "--scope", "read", "--expires-days", "0"],
        ["ada", "--scope", "read", "--name", "a\x00b"],
    ],
)
def test_command_refuses_bad_input(ada, args):
    with pytest.raises(CommandError):
        call_command("create_api_token", *args, stdout=StringIO(), stderr=StringIO())
    assert not ApiToken.objects.exists()


def test_command_refuses_an_unknown_scope(ada):
    with pytest.raises(CommandError):
        call_command("create_api_token", "ada", "--scope", "admin", stdout=StringIO(), stderr=StringIO())


def test_page_creates_a_token_shown_once(client, vera):
    client.force_login(vera)

    created = client.post(
        reverse("groups:api-tokens"), {"name": "reports", "scope": "read", "expires_days": "90"}
    )
    listed = client.get(reverse("groups:api-tokens"))

    token = ApiToken.objects.get()
    page = created.content.decode()
    secret = page.split('class="token-secret">')[1].split("<")[0]
    assert created.status_code == 201
    assert token.digest == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in listed.content.decode()
    assert "reports" in listed.content.decode()
    assert "no-store" in created["Cache-Control"]


def test_page_shows_field_errors_and_creates_nothing(client, vera):
    client.force_login(vera)

    response = client.post(
        reverse("groups:api-tokens"), {"name": "", "scope": "root", "expires_days": "9999"}
    )

    assert response.status_code == 422
    assert not ApiToken.objects.exists()
    for field in ("name", "scope", "expires_days"):
        assert f'id="id_{field}_error"' in response.content.decode() or field in str(
            response.context["form"].errors
        )


def test_a_second_live_token_of_the_same_name_is_refused(client, vera):
    client.force_login(vera)
    client.post(reverse("groups:api-tokens"), {"name": "reports", "scope": "read"})

    again = client.post(reverse("groups:api-tokens"), {"name": "reports", "scope": "read"})

    assert again.status_code == 422
    assert ApiToken.objects.count() == 1


def test_revoke_ends_the_token_at_once_and_is_audited(client, vera, make_token):
    secret = make_token(vera, "read")
    client.force_login(vera)

    client.post(reverse("groups:api-token-revoke", args=[ApiToken.objects.get().pk]))

    assert client.get("/api/v1/groups", **bearer(secret)).status_code == 401
    assert AuditEntry.objects.filter(
        action=AuditEntry.Action.API_TOKEN_REVOKE, actor_username="vera"
    ).exists()


def test_nobody_revokes_someone_elses_token(client, vera, ada, make_token):
    secret = make_token(ada, "read")
    client.force_login(vera)

    client.post(reverse("groups:api-token-revoke", args=[ApiToken.objects.get().pk]))

    assert client.get("/api/v1/groups", **bearer(secret)).status_code == 200


def test_page_needs_csrf(vera):

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(vera)

    assert strict.post(reverse("groups:api-tokens"), {"name": "x", "scope": "read"}).status_code == 403
    assert not ApiToken.objects.exists()


def test_api_calls_need_no_csrf_token(ada, make_token, team):

    strict = Client(enforce_csrf_checks=True)

    response = strict.post(
        "/api/v1/people/lookup",
        {"email": "x@example.com"},
        content_type="application/json",
        **bearer(make_token(ada, "read")),
    )

    assert response.status_code == 200


def test_the_audit_log_shows_changes_made_via_a_token(client, ada, make_token, team):
    client.post(
        f"/api/v1/groups/{team.id}/members",
        {"emails": ["shown@example.com"]},
        content_type="application/json",
        **bearer(make_token(ada, name="ticket-bot")),
    )
    entry = AuditEntry.objects.get(action=AuditEntry.Action.MEMBERS_ADD)
    client.force_login(ada)

    listed = client.get(reverse("groups:audit"), {"q": "API token ticket-bot"})
    elsewhere = client.get(reverse("groups:audit"), {"q": "API token other-bot"})
    shown = client.get(reverse("groups:audit-entry", args=[entry.pk]))

    assert "via API token ticket-bot" in listed.content.decode()
    assert "via API token ticket-bot" not in elsewhere.content.decode()
    assert "via API token ticket-bot" in shown.content.decode()
