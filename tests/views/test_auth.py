"""Sign-in, sign-out, the login requirement, health checks and security headers."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.urls import reverse

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_pages_require_sign_in(client):
    response = client.get(reverse("groups:list"))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login") + "?next=")


def test_login_page_is_public_and_shows_the_sandbox_banner(client):
    response = client.get(reverse("login"))

    assert response.status_code == 200
    assert b"Sign in" in response.content
    assert b"Sandbox workspace" in response.content


def test_sign_in_then_home_shows_user_and_role(client):
    call_command("seed_sandbox", "--groups", "3", "--users", "450", stdout=StringIO())
    UserFactory(username="ada", role="Administrator")

    response = client.post(
        reverse("login"), {"username": "ada", "password": "correct horse battery staple"}, follow=True
    )

    assert response.redirect_chain[-1][0] == reverse("groups:list")
    assert b"ada" in response.content
    assert b"Administrator" in response.content


def test_wrong_password_is_refused_with_a_message(client):
    UserFactory(username="ada")

    response = client.post(reverse("login"), {"username": "ada", "password": "wrong"})

    assert response.status_code == 200
    assert b"Please enter a correct username and password" in response.content
    assert "_auth_user_id" not in client.session


def test_sign_out_is_post_only(client):
    client.force_login(UserFactory())

    assert client.get(reverse("logout")).status_code == 405
    response = client.post(reverse("logout"))

    assert response.status_code == 302
    assert "_auth_user_id" not in client.session


def test_login_requires_csrf_token(db):
    from django.test import Client

    UserFactory(username="ada")
    strict = Client(enforce_csrf_checks=True)

    response = strict.post(reverse("login"), {"username": "ada", "password": "correct horse battery staple"})

    assert response.status_code == 403


def test_user_without_role_is_told_to_ask_for_one(client):
    client.force_login(UserFactory(username="norole"))

    response = client.get(reverse("groups:list"))

    assert b"No role" in response.content
    assert b"has no role yet" in response.content


def test_healthz_is_public_and_checks_database_and_cache(client):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "cache": "ok"}


def test_healthz_reports_a_broken_cache_as_503(client, monkeypatch):
    from django.core.cache import cache

    def broken(*args, **kwargs):
        raise ConnectionError("cache down")

    monkeypatch.setattr(cache, "set", broken)

    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json()["cache"] == "unavailable"


def test_pages_carry_csp_with_nonce_and_no_inline_script(client):
    response = client.get(reverse("login"))

    policy = response["Content-Security-Policy"]
    assert "script-src 'self' 'nonce-" in policy
    assert "frame-ancestors 'none'" in policy
    nonce = policy.split("'nonce-")[1].split("'")[0]
    html = response.content.decode()
    assert html.count("<script") == html.count(f'nonce="{nonce}"')
    assert "htmx-2.min.js" in html
    assert "onclick" not in html and "style=" not in html


def test_responses_carry_a_request_id(client):
    response = client.get(reverse("login"), headers={"X-Request-ID": "abc-123"})

    assert response["X-Request-ID"] == "abc-123"
    assert len(client.get(reverse("login"))["X-Request-ID"]) == 32
