"""Sign-in as an attacker would try it: throttled before hashing, recorded, no reset leak."""

import pytest
from django.contrib.auth.models import Group
from django.core import mail
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.urls import clear_url_caches, reverse

from groups_app.models import AuditEntry, SignInFailure
from tests.clock import frozen_clock
from tests.factories import UserFactory, administrator, viewer

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"


def sign_in(client, username, password, **extra):
    return client.post(reverse("login"), {"username": username, "password": password}, **extra)


@pytest.fixture
def hashes(monkeypatch):
    """Counts password checks (each one a hash computed)."""
    from django.contrib.auth.base_user import AbstractBaseUser

    counted = []
    original = AbstractBaseUser.check_password

    def check_password(self, raw):
        counted.append(self.username)
        return original(self, raw)

    monkeypatch.setattr(AbstractBaseUser, "check_password", check_password)
    return counted


@pytest.fixture
def clock(monkeypatch):
    return frozen_clock(monkeypatch)


def test_an_account_is_locked_after_repeated_failures_before_any_password_is_hashed(
    client, settings, hashes, clock
):
    settings.SIGN_IN_MAX_FAILURES_PER_ACCOUNT = 3
    settings.REFUSED_ATTEMPTS_PER_MINUTE = 10
    viewer(username="admin")

    for _ in range(3):
        assert sign_in(client, "admin", "guess").status_code == 200
    hashed_before = len(hashes)
    locked = [sign_in(client, "admin", "guess") for _ in range(50)]
    right = sign_in(client, "admin", PASSWORD)

    assert all(response.status_code == 429 for response in locked)
    assert right.status_code == 429 and "Too many failed attempts" in right.content.decode()
    assert int(right["Retry-After"]) > 0
    assert len(hashes) == hashed_before  # no password was checked while locked
    rejected = SignInFailure.objects.filter(reason="rejected")
    locked_rows = SignInFailure.objects.filter(reason="locked").order_by("id")
    assert rejected.count() == 3
    # Each attempt while locked is listed: the first 10 of the minute one by one, the other 41 in one row.
    assert [row.attempts for row in locked_rows] == [1] * 10 + [41]


def test_attempts_while_locked_are_counted_again_in_the_next_minute(client, settings, clock):
    settings.SIGN_IN_MAX_FAILURES_PER_ACCOUNT = 1
    settings.REFUSED_ATTEMPTS_PER_MINUTE = 2
    sign_in(client, "vera", "guess")
    for _ in range(4):
        sign_in(client, "vera", "guess")
    clock.advance(minutes=1)
    for _ in range(3):
        sign_in(client, "vera", "guess")

    locked_rows = SignInFailure.objects.filter(reason="locked").order_by("id")
    assert [row.attempts for row in locked_rows] == [1, 1, 2, 1, 1, 1]


FULL_WIDTH_VIEWER = "\uff56\uff49\uff45\uff57\uff45\uff52"  # "viewer" in full-width letters


@pytest.mark.parametrize("page", ["login", "admin:login"])
def test_a_locked_username_is_locked_in_full_width_and_any_case_too(client, settings, page):
    settings.SIGN_IN_MAX_FAILURES_PER_ACCOUNT = 5
    viewer(username="viewer", is_staff=True)
    for _ in range(5):
        client.post(reverse(page), {"username": "viewer", "password": "guess"})

    answers = [
        client.post(reverse(page), {"username": spelling, "password": PASSWORD})
        for spelling in (FULL_WIDTH_VIEWER, "VIEWER", " Viewer ", "viewer")
    ]

    assert [answer.status_code for answer in answers] == [429, 429, 429, 429]
    assert "_auth_user_id" not in client.session


@pytest.mark.parametrize("page", ["login", "admin:login"])
def test_wrong_guesses_in_full_width_lock_the_account(client, settings, page):
    settings.SIGN_IN_MAX_FAILURES_PER_ACCOUNT = 5
    viewer(username="viewer", is_staff=True)
    for _ in range(5):
        assert (
            client.post(reverse(page), {"username": FULL_WIDTH_VIEWER, "password": "guess"}).status_code
            == 200
        )

    again = client.post(reverse(page), {"username": FULL_WIDTH_VIEWER, "password": "guess"})
    right = client.post(reverse(page), {"username": "viewer", "password": PASSWORD})

    assert again.status_code == 429 and right.status_code == 429
    assert "_auth_user_id" not in client.session


def test_every_spelling_that_reaches_the_account_shares_one_counter(client, settings):
    settings.SIGN_IN_MAX_FAILURES_PER_ACCOUNT = 5
    viewer(username="viewer")
    for spelling in ("viewer", FULL_WIDTH_VIEWER, "VIEWER", "\uff56iewer", "Viewer\u3000"):
        assert sign_in(client, spelling, "guess").status_code == 200

    assert sign_in(client, "viewer", PASSWORD).status_code == 429


def test_the_full_width_spelling_signs_in_as_the_account_when_it_is_not_locked(client):
    """What the backend does (NFKC, as Django's sign-in form hands it over): the lockout must follow it."""
    vera = viewer(username="viewer")

    assert sign_in(client, FULL_WIDTH_VIEWER, PASSWORD).status_code == 302
    assert client.session["_auth_user_id"] == str(vera.pk)


def test_a_username_with_a_nul_character_is_refused_and_recorded_without_an_error(client, settings):
    settings.SIGN_IN_MAX_FAILURES_PER_ADDRESS = 1
    sign_in(client, "someone", "guess")

    response = sign_in(client, "vi\x00ewer", "guess")

    assert response.status_code == 429
    assert SignInFailure.objects.get(reason="locked").username == "vi\ufffdewer"


def test_an_address_is_locked_across_accounts(client, settings):
    settings.SIGN_IN_MAX_FAILURES_PER_ADDRESS = 4
    settings.SIGN_IN_MAX_FAILURES_PER_ACCOUNT = 100

    for number in range(4):
        sign_in(client, f"user{number}", "guess")

    assert sign_in(client, "someone-else", "guess").status_code == 429
    assert sign_in(client, "someone-else", "guess", REMOTE_ADDR="198.51.100.7").status_code != 429


def test_an_ipv6_client_cannot_escape_the_address_lock_by_rotating_through_its_network(client, settings):
    settings.SIGN_IN_MAX_FAILURES_PER_ADDRESS = 4
    settings.SIGN_IN_MAX_FAILURES_PER_ACCOUNT = 100
    for host in range(4):
        sign_in(client, f"user{host}", "guess", REMOTE_ADDR=f"2001:db8:0:7::{host + 1}")

    assert sign_in(client, "someone-else", "guess", REMOTE_ADDR="2001:db8:0:7::99").status_code == 429
    assert sign_in(client, "someone-else", "guess", REMOTE_ADDR="2001:db8:0:8::1").status_code != 429


def test_the_django_admin_sign_in_is_throttled_too(client, settings):
    settings.SIGN_IN_MAX_FAILURES_PER_ACCOUNT = 2
    for _ in range(2):
        client.post(reverse("admin:login"), {"username": "root", "password": "guess"})

    response = client.post(reverse("admin:login"), {"username": "root", "password": "guess"})

    assert response.status_code == 429


def test_a_successful_sign_in_clears_the_account_count(client, settings):
    settings.SIGN_IN_MAX_FAILURES_PER_ACCOUNT = 3
    viewer(username="vera")
    sign_in(client, "vera", "typo")
    sign_in(client, "vera", "typo")
    assert sign_in(client, "vera", PASSWORD).status_code == 302
    client.logout()

    sign_in(client, "vera", "typo")
    sign_in(client, "vera", "typo")

    assert sign_in(client, "vera", PASSWORD).status_code == 302


def test_administrators_see_failed_sign_ins_and_others_do_not(client):
    sign_in(client, "admin", "guess", headers={"User-Agent": "curl/8"})
    client.force_login(viewer())
    assert client.get(reverse("groups:sign-in-failures")).status_code == 403

    client.force_login(administrator(username="ada"))
    page = client.get(reverse("groups:sign-in-failures")).content.decode()

    assert "admin" in page and "Wrong username or password" in page and "curl/8" in page
    assert "guess" not in page  # never the password


def test_the_audit_log_links_failed_sign_ins_for_administrators_only(client):
    link = '<a href="/audit/sign-ins/">Failed sign-ins</a>'
    client.force_login(viewer(username="vera"))
    assert link not in client.get(reverse("groups:audit")).content.decode()

    client.force_login(administrator(username="ada"))

    assert link in client.get(reverse("groups:audit")).content.decode()


def test_failed_sign_ins_lists_attempts_made_while_locked(client, settings, clock):
    settings.SIGN_IN_MAX_FAILURES_PER_ACCOUNT = 2
    settings.REFUSED_ATTEMPTS_PER_MINUTE = 3
    viewer(username="viewer")
    for _ in range(2):
        sign_in(client, "viewer", "guess")
    for _ in range(3):
        sign_in(client, FULL_WIDTH_VIEWER, PASSWORD)
    for _ in range(4):
        sign_in(client, "viewer", "guess")
    client.force_login(administrator(username="ada"))

    page = client.get(reverse("groups:sign-in-failures"), {"reason": "locked"}).content.decode()

    rows = page.split("<tbody>")[1].split("</tbody>")[0]
    assert rows.count("Refused: too many failures") == 4  # three rows, and one counting the other four
    assert "× 4" in rows
    assert rows.count(FULL_WIDTH_VIEWER) == 3  # as typed
    assert "Wrong username or password" not in rows


def test_no_password_reset_without_a_real_mail_server(client):
    assert client.get("/accounts/password_reset/").status_code in (302, 404)
    assert "Forgot your password" not in client.get(reverse("login")).content.decode()


@pytest.fixture
def mail_configured(settings):
    settings.PASSWORD_RESET_ENABLED = True
    settings.MAILERS = {"default": {"BACKEND": "django.core.mail.backends.locmem.EmailBackend"}}
    import dashboard.urls

    clear_url_caches()
    importlib_reload(dashboard.urls)
    yield
    settings.PASSWORD_RESET_ENABLED = False
    clear_url_caches()
    importlib_reload(dashboard.urls)


def importlib_reload(module):
    import importlib

    importlib.reload(module)


def test_the_password_reset_link_starts_with_site_url(client, settings, mail_configured):
    settings.SITE_URL = "https://groups.example.com"
    UserFactory(username="vera", email="vera@example.com")

    client.post("/accounts/password_reset/", {"email": "vera@example.com"})

    (message,) = mail.outbox
    assert "https://groups.example.com/accounts/reset/" in message.body
    assert "testserver" not in message.body


def test_with_real_mail_a_reset_is_audited_and_throttled(client, settings, mail_configured):
    settings.SIGN_IN_MAX_FAILURES_PER_ADDRESS = 100
    UserFactory(username="vera", email="vera@example.com")

    response = client.post("/accounts/password_reset/", {"email": "vera@example.com"})

    assert response.status_code == 302 and len(mail.outbox) == 1
    entry = AuditEntry.objects.get(action="account.password_reset")
    assert entry.details == {"email": "vera@example.com"} and entry.actor_username == "anonymous"
    settings.SIGN_IN_MAX_FAILURES_PER_ACCOUNT = 3
    statuses = [
        client.post("/accounts/password_reset/", {"email": "vera@example.com"}).status_code for _ in range(20)
    ]
    assert statuses.count(302) == 2 and statuses.count(429) == 18
    assert len(mail.outbox) == 3


def test_a_locked_account_gets_no_reset_mail_whatever_spelling_of_its_email(
    client, settings, mail_configured
):
    settings.SIGN_IN_MAX_FAILURES_PER_ACCOUNT = 3
    UserFactory(username="vera", email="vera@example.com")
    for _ in range(3):
        sign_in(client, "vera", "guess")

    answers = [
        client.post("/accounts/password_reset/", {"email": spelling}).status_code
        for spelling in ("vera@example.com", "VERA@Example.COM")
    ]

    assert answers == [429, 429] and not mail.outbox


def test_reset_requests_in_any_spelling_count_against_the_account(client, settings, mail_configured):
    settings.SIGN_IN_MAX_FAILURES_PER_ACCOUNT = 3
    UserFactory(username="vera", email="vera@example.com")
    for spelling in ("vera@example.com", "Vera@example.com", "VERA@EXAMPLE.COM"):
        assert client.post("/accounts/password_reset/", {"email": spelling}).status_code == 302

    assert sign_in(client, "vera", PASSWORD).status_code == 429
    assert len(mail.outbox) == 3


def test_demo_accounts_are_refused_in_live_mode(settings):
    settings.SANDBOX_MODE = False

    with pytest.raises(CommandError, match="only in sandbox mode"):
        call_command("ensure_demo_users")


def test_role_grants_in_the_django_admin_are_audited(client):
    admin = UserFactory(username="root", is_staff=True, is_superuser=True)
    vera = viewer(username="vera")
    client.force_login(admin)
    helpdesk = Group.objects.get(name="Help desk")
    form = client.get(reverse("admin:auth_user_change", args=[vera.pk])).content.decode()
    assert "groups" in form

    client.post(
        reverse("admin:auth_user_change", args=[vera.pk]),
        {
            "username": "vera",
            "email": vera.email,
            "groups": [helpdesk.pk],
            "is_active": "on",
            "date_joined_0": "2026-01-01",
            "date_joined_1": "00:00:00",
            "initial-date_joined_0": "2026-01-01",
            "initial-date_joined_1": "00:00:00",
            "external_identities-TOTAL_FORMS": "0",
            "external_identities-INITIAL_FORMS": "0",
        },
    )

    actions = dict(AuditEntry.objects.values_list("action", "summary"))
    assert actions["account.role_grant"] == "root granted Help desk to vera"
    assert actions["account.role_remove"] == "root removed Viewer from vera"


@override_settings(LOCAL_LOGIN_ENABLED=False)
def test_local_passwords_can_be_switched_off(client):
    viewer(username="vera")

    page = client.get(reverse("login")).content.decode()
    response = sign_in(client, "vera", PASSWORD)

    assert 'name="password"' not in page
    assert response.status_code == 403
