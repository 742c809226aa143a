"""Single sign-on end to end: Chromium, the dashboard on a live server, and a real OpenID Connect
provider process (oidc-provider-mock) that these tests start and stop."""

import base64
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from django.contrib.auth import get_user_model
from playwright.sync_api import expect

from groups_app.models import AuditEntry, SignInFailure
from groups_app.roles import ROLE_PERMISSIONS
from tests.browser.conftest import screenshot
from tests.factories import administrator, role_group
from tests.oidc_provider import person, provider, use_provider


@pytest.fixture
def roles(transactional_db):
    """The roles' Django groups (the migration creates them; a transactional test's flush drops them)."""
    for role in ROLE_PERMISSIONS:
        role_group(role)


@pytest.fixture
def idp(settings, roles):
    with provider() as base:
        use_provider(settings, base)
        yield base


def sign_in_with_sso(page, live_server, sub: str) -> None:
    page.goto(live_server.url + "/")
    page.get_by_role("link", name="Sign in with Acme SSO").click()
    page.get_by_label("Subject").fill(sub)
    page.get_by_role("button", name="Authorize", exact=True).click()


def test_first_sign_in_creates_the_account_with_the_role_its_groups_map_to(page, live_server, idp):
    person(idp, "hana@acme.example", groups=["it-helpdesk", "unrelated"])

    sign_in_with_sso(page, live_server, "hana@acme.example")

    expect(page.locator(".account")).to_contain_text("hana@acme.example")
    expect(page.locator(".account .badge")).to_have_text("Help desk")
    screenshot(page, "sso-signed-in")
    user = get_user_model().objects.get(email="hana@acme.example")
    assert not user.has_usable_password()
    grant = AuditEntry.objects.get(action="account.role_grant")
    assert (
        grant.summary
        == "system granted Help desk to hana@acme.example (the identity provider's groups claim)"
    )


def test_roles_follow_the_groups_claim_at_every_sign_in(page, live_server, idp):
    person(idp, "ada@acme.example", groups=["staff"])
    sign_in_with_sso(page, live_server, "ada@acme.example")
    expect(page.locator(".account .badge")).to_have_text("Viewer")
    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("button", name="End session").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()

    person(idp, "ada@acme.example", groups=["groupadmin-admins"])
    sign_in_with_sso(page, live_server, "ada@acme.example")

    expect(page.locator(".account .badge")).to_have_text("Administrator")
    removed = AuditEntry.objects.get(action="account.role_remove")
    assert "removed Viewer from ada@acme.example" in removed.summary


def test_someone_with_no_mapped_role_signs_in_and_can_request_access(page, live_server, idp, workspace):
    person(idp, "newcomer@acme.example", groups=["sales"])

    sign_in_with_sso(page, live_server, "newcomer@acme.example")

    expect(page.get_by_text("has no role yet")).to_be_visible()
    page.goto(live_server.url + "/requests/new/")
    expect(page.get_by_role("heading", name="Request access")).to_be_visible()


def test_an_unverified_email_is_refused_and_recorded(page, live_server, idp):
    person(idp, "eve@acme.example", email_verified=False, groups=["groupadmin-admins"])

    sign_in_with_sso(page, live_server, "eve@acme.example")

    expect(page.get_by_text("Single sign-on did not succeed")).to_be_visible()
    assert not get_user_model().objects.filter(email="eve@acme.example").exists()
    assert "not verified" in SignInFailure.objects.get(reason="sso_refused").detail


@contextmanager
def tampering_proxy(target: str) -> Iterator[str]:
    """Forwards the token request to the provider and changes the ID token's email on the way back,
    keeping the provider's signature (which no longer matches)."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            answer = requests.post(
                target,
                data=body,
                headers={
                    "Content-Type": self.headers["Content-Type"],
                    "Authorization": self.headers.get("Authorization", ""),
                },
                timeout=5,
            ).json()
            header, payload, signature = answer["id_token"].split(".")
            claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            claims["email"] = "mallory@acme.example"
            forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
            answer["id_token"] = f"{header}.{forged}.{signature}"
            data = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/oauth2/token"
    finally:
        server.shutdown()
        server.server_close()


def test_a_tampered_id_token_is_refused(page, live_server, idp, settings):
    person(idp, "hana@acme.example", groups=["groupadmin-admins"])
    with tampering_proxy(f"{idp}/oauth2/token") as token_endpoint:
        settings.OIDC_OP_TOKEN_ENDPOINT = token_endpoint

        sign_in_with_sso(page, live_server, "hana@acme.example")

        expect(page.get_by_text("Single sign-on did not succeed")).to_be_visible()
    assert not get_user_model().objects.exists()
    assert "verification failed" in SignInFailure.objects.get(reason="sso_refused").detail


def test_an_expired_id_token_is_refused(page, live_server, settings, roles, monkeypatch):
    from datetime import timedelta

    from django.utils import timezone

    with provider("--token-max-age", "60") as base:
        use_provider(settings, base)
        person(base, "hana@acme.example", groups=["groupadmin-admins"])
        # The token arrives, valid for 60 s, and is checked as if three minutes had passed.
        monkeypatch.setattr("groups_app.oidc.now", lambda: timezone.now() + timedelta(minutes=3))

        sign_in_with_sso(page, live_server, "hana@acme.example")

        expect(page.get_by_text("Single sign-on did not succeed")).to_be_visible()
    assert not get_user_model().objects.exists()
    assert SignInFailure.objects.get(reason="sso_refused").detail == "The ID token has expired."


def test_sign_out_ends_the_session_here_and_at_the_provider(page, live_server, idp):
    person(idp, "hana@acme.example", groups=["it-helpdesk"])
    sign_in_with_sso(page, live_server, "hana@acme.example")
    expect(page.locator(".account")).to_contain_text("hana@acme.example")

    page.get_by_role("button", name="Sign out").click()

    assert page.url.startswith(idp + "/oauth2/end_session")
    page.get_by_role("button", name="End session").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.goto(live_server.url + "/audit/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_another_subject_with_an_administrators_email_is_asked_to_have_its_account_linked(
    page, live_server, idp
):
    ada = administrator(username="ada", email="ada@acme.example")
    person(idp, "someone-else", email="ADA@acme.example", groups=["staff"])

    sign_in_with_sso(page, live_server, "someone-else")

    expect(page.get_by_role("alert")).to_contain_text("ask an Administrator to link your account")
    screenshot(page, "sso-ask-to-link")
    assert set(ada.groups.values_list("name", flat=True)) == {"Administrator"}
    assert get_user_model().objects.count() == 1


def test_a_role_removed_at_the_provider_leaves_the_open_page_after_the_refresh_period(
    page, live_server, idp, settings
):
    settings.OIDC_ROLE_REFRESH_SECONDS = 0
    person(idp, "hana@acme.example", groups=["groupadmin-admins"])
    sign_in_with_sso(page, live_server, "hana@acme.example")
    expect(page.locator(".account .badge")).to_have_text("Administrator")

    person(idp, "hana@acme.example", groups=["staff"])
    page.reload()

    expect(page.locator(".account .badge")).to_have_text("Viewer")
