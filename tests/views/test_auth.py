"""Sign-in, sign-out, the login requirement, health checks and security headers."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from groups_app.services.mirror.sync import sync_workspace
from groups_app.services.schedule import worker_heartbeat
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


def test_healthz_is_a_public_liveness_check_that_touches_nothing(client, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get("/healthz")

    assert response.status_code == 200 and response.json() == {"status": "ok"}
    assert "no-store" in response["Cache-Control"]


@pytest.fixture
def worker_and_mirror(db):
    """A worker alive and a fresh mirror: what readiness wants besides database, cache, Segment."""
    worker_heartbeat("worker-host:1", started_at=timezone.now())
    sync_workspace(trigger="test")


def test_readyz_checks_database_cache_and_segment_once_per_ttl(client, worker_and_mirror, monkeypatch):
    from groups_app.segment import SegmentClient

    calls = []
    original = SegmentClient.list_roles

    def counted(self, **kwargs):
        calls.append(kwargs)
        return original(self, **kwargs)

    monkeypatch.setattr(SegmentClient, "list_roles", counted)

    responses = [client.get("/readyz") for _ in range(5)]

    assert all(r.status_code == 200 for r in responses)
    assert responses[0].json() == {
        "status": "ok",
        "database": "ok",
        "cache": "ok",
        "segment": "ok",
        "worker": "ok",
        "mirror": "ok",
    }
    assert len(calls) == 1


def test_readyz_is_unready_when_segment_refuses_the_token(client, db):
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("sandbox.api._authorized", lambda request: False)
        response = client.get("/readyz")

    assert response.status_code == 503 and response.json()["segment"] == "token refused"


def test_readyz_reports_a_broken_cache_as_503(client, db, monkeypatch):
    from django.core.cache import cache

    def broken(*args, **kwargs):
        raise ConnectionError("cache down")

    monkeypatch.setattr(cache, "set", broken)

    response = client.get("/readyz")

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


def test_request_ids_are_ours_and_an_inbound_one_is_kept_apart(client, db):
    from groups_app.models import AuditEntry

    response = client.get(reverse("login"), headers={"X-Request-ID": "forged-id"})
    client.force_login(UserFactory(username="eve"))
    client.post(reverse("groups:create"), {"name": "x"}, headers={"X-Request-ID": "forged-id"})

    assert response["X-Request-ID"] != "forged-id" and len(response["X-Request-ID"]) == 32
    entry = AuditEntry.objects.get()
    assert entry.inbound_request_id == "forged-id" and entry.request_id != "forged-id"


@pytest.mark.parametrize(
    ("trusted", "remote", "forwarded", "expected"),
    [
        ([], "203.0.113.9", "198.51.100.1", "203.0.113.9"),  # no proxy trusted: the header is ignored
        (["10.0.0.0/8"], "10.0.0.2", "198.51.100.1", "198.51.100.1"),
        (["10.0.0.0/8"], "10.0.0.2", "6.6.6.6, 198.51.100.1, 10.0.0.7", "198.51.100.1"),  # forged front
        (["10.0.0.0/8"], "203.0.113.9", "198.51.100.1", "203.0.113.9"),  # not from our proxy
        (["10.0.0.0/8"], "10.0.0.2", "not-an-ip", "10.0.0.2"),
    ],
)
def test_the_client_address_believes_only_trusted_proxies(settings, rf, trusted, remote, forwarded, expected):
    from groups_app.middleware import client_ip

    settings.TRUSTED_PROXIES = trusted
    request = rf.get("/", REMOTE_ADDR=remote, HTTP_X_FORWARDED_FOR=forwarded)

    assert client_ip(request) == expected


def test_signed_in_pages_and_exports_are_never_stored(client, db):
    from tests.factories import viewer

    client.force_login(viewer())

    for url in (reverse("groups:audit"), reverse("groups:audit-export")):
        assert "no-store" in client.get(url)["Cache-Control"]


def test_the_when_filter_shows_the_active_zone():
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    from django.template import engines
    from django.utils import timezone

    template = engines["django"].from_string("{% load group_admin %}{{ moment|when }}")
    moment = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)

    with timezone.override(ZoneInfo("Europe/Paris")):
        html = template.render({"moment": moment})

    assert html == '<time datetime="2026-07-01T14:00:00+02:00">2026-07-01 14:00 CEST</time>'


@pytest.mark.parametrize(
    ("cookie", "zone"), [("Europe/Paris", "Europe/Paris"), ("", "UTC"), ("../../etc/passwd", "UTC")]
)
def test_pages_show_times_in_the_browsers_zone_and_ignore_a_forged_one(client, db, cookie, zone):
    from zoneinfo import ZoneInfo

    from django.utils import timezone

    from groups_app.models import AuditEntry
    from tests.factories import viewer

    entry = AuditEntry.objects.create(
        actor_username="ada", action="group.create", summary="s", status="succeeded"
    )
    client.force_login(viewer())
    client.cookies["tz"] = cookie

    page = client.get(reverse("groups:audit-entry", args=[entry.pk])).content.decode()

    local = timezone.localtime(entry.created_at, ZoneInfo(zone))
    assert f"{local:%Y-%m-%d %H:%M:%S} {local.tzname()}" in page


def test_a_session_in_use_is_renewed_at_most_once_a_minute(client, db, monkeypatch):
    from tests.factories import viewer

    client.force_login(viewer())
    client.get(reverse("groups:audit"))
    first = client.session["renewed_at"]

    client.get(reverse("groups:audit"))
    assert client.session["renewed_at"] == first

    monkeypatch.setattr("groups_app.middleware.time.time", lambda: first + 61)
    client.get(reverse("groups:audit"))
    assert client.session["renewed_at"] == first + 61


@pytest.mark.parametrize("path", ["/requests/999999/", "/no/such/page/"])
def test_with_debug_on_people_who_are_not_staff_get_the_friendly_404(client, db, settings, path):
    from tests.factories import viewer

    settings.DEBUG = True
    client.force_login(viewer())

    response = client.get(path)

    assert response.status_code == 404
    page = response.content.decode()
    assert "Page not found" in page and "URLconf" not in page and "Traceback" not in page


def test_email_links_use_the_requests_address_unless_site_url_is_set(client, db, settings):
    from django.core import mail

    from groups_app.services.approvals.access_requests import access_request_file
    from groups_app.services.audit import RequestOrigin, origin_var
    from sandbox.models import UserGroup
    from tests.factories import help_desk, viewer

    help_desk(username="hana", email="hana@example.com")
    group = UserGroup.objects.create(name="Team")
    token = origin_var.set(RequestOrigin(base_url="https://groups.example.com"))
    try:
        access_request_file(
            actor=viewer(username="vera", email="vera@example.com"), group_id=group.id, justification="j"
        )
    finally:
        origin_var.reset(token)

    assert "https://groups.example.com/requests/" in mail.outbox[0].body
