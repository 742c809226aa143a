"""Single sign-on by subject, against a real OpenID Connect provider (oidc-provider-mock) and
Django's test client: who signs in as whom, what a first sign-in may link, roles in live
sessions, and the refusals an attacker's provider subject meets."""

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.urls import reverse

from groups_app.models import AuditEntry, ExternalIdentity, SignInFailure
from groups_app.roles import ADMINISTRATOR, ROLE_PERMISSIONS
from tests.factories import UserFactory, administrator, role_group, viewer
from tests.oidc_provider import person, provider, revoke_tokens, sign_in_with_client, use_provider

pytestmark = pytest.mark.django_db

User = get_user_model()


@pytest.fixture(scope="module")
def provider_base():
    with provider() as base:
        yield base


@pytest.fixture
def idp(settings, provider_base):
    """The provider, with the roles it maps to (a transactional test elsewhere may have flushed
    the roles the migration made)."""
    use_provider(settings, provider_base)
    for name in ROLE_PERMISSIONS:
        role_group(name)
    return provider_base


def signed_in_user(client):
    """The account the client's session is signed in to, or None."""
    user_id = client.session.get("_auth_user_id")
    return User.objects.get(pk=user_id) if user_id else None


def roles_of(user) -> set[str]:
    return set(user.groups.values_list("name", flat=True))


def passwordless(user):
    user.set_unusable_password()
    user.save(update_fields=["password"])
    return user


# The accounts an attacker's subject aims at, all with the email it-ops@acme.example.
TARGETS = {
    "superuser": lambda: UserFactory(
        username="root", email="It-Ops@acme.example", is_staff=True, is_superuser=True
    ),
    "staff": lambda: passwordless(UserFactory(username="ops", email="it-ops@acme.example", is_staff=True)),
    "password account": lambda: viewer(username="ops", email="it-ops@acme.example"),
    "administrator without password": lambda: passwordless(
        administrator(username="ops", email="it-ops@acme.example")
    ),
}
# Spellings the provider may assert that are the same person as it-ops@acme.example.
SAME_PERSON = {
    "equal": "it-ops@acme.example",
    "upper-case": "IT-OPS@ACME.EXAMPLE",
    "full-width": "ｉｔ-ｏｐｓ@acme.example",
    "sub-address": "it-ops+sso@acme.example",
}


@pytest.mark.parametrize("variant", SAME_PERSON)
@pytest.mark.parametrize("target", TARGETS)
def test_another_subject_with_the_email_of_an_account_that_may_not_be_linked_is_refused(
    client, idp, target, variant
):
    account = TARGETS[target]()
    roles_before = roles_of(account)
    subject = f"attacker-{target}-{variant}".replace(" ", "-")
    person(idp, subject, email=SAME_PERSON[variant], groups=["staff"])

    response = sign_in_with_client(client, subject)

    assert response.status_code == 403
    assert "ask an Administrator to link your account" in response.content.decode()
    assert signed_in_user(client) is None
    account.refresh_from_db()
    assert roles_of(account) == roles_before
    assert not ExternalIdentity.objects.exists()
    assert User.objects.count() == 1  # nothing created either
    refused = AuditEntry.objects.get(action=AuditEntry.Action.IDENTITY_LINK)
    assert refused.status == AuditEntry.Status.REFUSED
    assert refused.details["subject"] == subject and refused.details["account"] == account.username
    assert SignInFailure.objects.filter(reason="sso_refused", detail__contains=subject).exists()


@pytest.mark.parametrize("target", TARGETS)
def test_a_dotless_i_look_alike_is_another_person_and_gets_an_account_of_its_own(client, idp, target):
    account = TARGETS[target]()
    roles_before = roles_of(account)
    subject = f"lookalike-{target}".replace(" ", "-")
    person(
        idp, subject, email="ıt-ops@acme.example", groups=["staff"]
    )  # upper() in PostgreSQL folds the dotless i to I

    response = sign_in_with_client(client, subject)

    assert response.status_code == 302
    newcomer = signed_in_user(client)
    assert newcomer.pk != account.pk and newcomer.email == "ıt-ops@acme.example"
    assert roles_of(newcomer) == {"Viewer"} and not newcomer.has_usable_password()
    link = AuditEntry.objects.get(action=AuditEntry.Action.IDENTITY_LINK)
    assert (
        link.details["source"] == "first sign-in, new account"
        and link.details["account"] == newcomer.username
    )
    assert (
        AuditEntry.objects.filter(action=AuditEntry.Action.ACCOUNT_CREATE, actor_username="system").count()
        == 1
    )
    account.refresh_from_db()
    assert roles_of(account) == roles_before


def test_another_subject_never_takes_an_account_already_linked_to_a_subject(client, idp):
    person(idp, "ada-original", email="ada@acme.example", groups=["groupadmin-admins"])
    sign_in_with_client(client, "ada-original")
    ada = signed_in_user(client)
    client.logout()
    person(idp, "ada-impostor", email="ADA@acme.example", groups=["staff"])

    response = sign_in_with_client(client, "ada-impostor")

    assert response.status_code == 403 and signed_in_user(client) is None
    assert roles_of(ada) == {ADMINISTRATOR}
    assert list(ExternalIdentity.objects.values_list("subject", flat=True)) == ["ada-original"]


def test_a_subject_links_to_a_plain_passwordless_account_with_the_same_canonical_email(client, idp):
    hana = passwordless(UserFactory(username="hana", email="Hana@Acme.example"))
    person(idp, "hana-sub", email="hana+work@acme.example", groups=["it-helpdesk"])

    response = sign_in_with_client(client, "hana-sub")

    assert response.status_code == 302
    assert signed_in_user(client) == hana
    identity = ExternalIdentity.objects.get(subject="hana-sub")
    assert identity.user == hana and identity.issuer == idp
    assert roles_of(hana) == {"Help desk"}
    link = AuditEntry.objects.get(action=AuditEntry.Action.IDENTITY_LINK)
    assert link.status == AuditEntry.Status.SUCCEEDED and link.details["account"] == "hana"
    assert "same canonical email" in link.details["source"]


def test_the_same_subject_with_a_changed_email_still_signs_in_to_its_account(client, idp):
    person(idp, "emp-42", email="old.name@acme.example", groups=["staff"])
    sign_in_with_client(client, "emp-42")
    account = signed_in_user(client)
    client.logout()
    person(idp, "emp-42", email="new.name@acme.example", groups=["staff"])

    response = sign_in_with_client(client, "emp-42")

    assert response.status_code == 302 and signed_in_user(client) == account
    account.refresh_from_db()
    assert account.email == "new.name@acme.example"
    change = AuditEntry.objects.get(action=AuditEntry.Action.ACCOUNT_CHANGE)
    assert change.details["before"] == "email: old.name@acme.example"
    assert change.details["after"] == "email: new.name@acme.example"
    assert User.objects.count() == 1


def test_a_changed_email_that_is_another_accounts_never_moves_the_identity(client, idp):
    root = UserFactory(username="root", email="root@acme.example", is_staff=True, is_superuser=True)
    person(idp, "emp-43", email="eve@acme.example", groups=["staff"])
    sign_in_with_client(client, "emp-43")
    eve = signed_in_user(client)
    client.logout()
    person(idp, "emp-43", email="Root@acme.example", groups=["staff"])

    response = sign_in_with_client(client, "emp-43")

    assert response.status_code == 302 and signed_in_user(client) == eve
    eve.refresh_from_db()
    assert eve.email == "eve@acme.example"  # kept: the new email is root's identity
    assert ExternalIdentity.objects.get(subject="emp-43").user == eve
    assert not root.external_identities.exists()
    kept = AuditEntry.objects.get(action=AuditEntry.Action.ACCOUNT_CHANGE)
    assert kept.status == AuditEntry.Status.REFUSED and "root" in kept.error


def test_a_taken_username_is_refused_cleanly_when_it_is_the_same_person(client, idp):
    UserFactory(username="nina@acme.example", email="nina@personal.example")
    person(idp, "nina-sub", email="Nina@acme.example", groups=["staff"])

    response = sign_in_with_client(client, "nina-sub")

    assert response.status_code == 403
    assert "ask an Administrator to link your account" in response.content.decode()


def test_a_taken_username_gets_a_free_one(client, idp):
    email = f"{'a' * 60}@{'b' * 60}.{'c' * 60}.example"
    UserFactory(username=email[:150], email="someone@else.example")  # the same first 150 characters
    person(idp, "long-sub", email=email, groups=["staff"])

    response = sign_in_with_client(client, "long-sub")

    assert response.status_code == 302
    account = signed_in_user(client)
    assert account.username == email[:148] + "-2" and account.email == email


def test_an_email_with_a_hidden_character_is_refused_without_an_error_page(client, idp):
    person(idp, "hidden-sub", email="it-ops\u200b@acme.example", groups=["groupadmin-admins"])

    response = sign_in_with_client(client, "hidden-sub")

    assert response.status_code == 403 and "hidden character" in response.content.decode()
    assert not User.objects.exists()


def test_a_role_removed_at_the_provider_is_gone_from_the_live_session_after_the_refresh_period(
    client, idp, settings
):
    settings.OIDC_ROLE_REFRESH_SECONDS = 0  # every request is past the period
    person(idp, "boss-sub", email="boss@acme.example", groups=["groupadmin-admins"])
    sign_in_with_client(client, "boss-sub")
    assert client.get(reverse("groups:sign-in-failures")).status_code == 200

    person(idp, "boss-sub", email="boss@acme.example", groups=["staff"])
    response = client.get(reverse("groups:sign-in-failures"))

    assert response.status_code == 403
    boss = signed_in_user(client)
    assert roles_of(boss) == {"Viewer"}
    removed = AuditEntry.objects.get(action=AuditEntry.Action.ACCOUNT_ROLE_REMOVE)
    assert removed.summary == (
        "system removed Administrator from boss@acme.example (the identity provider's groups claim)"
    )
    assert removed.details["before"] == ["Administrator", "Viewer"] and removed.details["after"] == ["Viewer"]


def test_within_the_refresh_period_the_provider_is_not_asked(client, idp, settings):
    settings.OIDC_ROLE_REFRESH_SECONDS = 900
    person(idp, "calm-sub", email="calm@acme.example", groups=["groupadmin-admins"])
    sign_in_with_client(client, "calm-sub")
    person(idp, "calm-sub", email="calm@acme.example", groups=[])

    assert client.get(reverse("groups:sign-in-failures")).status_code == 200


def test_a_session_ends_when_the_provider_refuses_its_refresh_token(client, idp, settings):
    settings.OIDC_ROLE_REFRESH_SECONDS = 0
    person(idp, "gone-sub", email="gone@acme.example", groups=["groupadmin-admins"])
    sign_in_with_client(client, "gone-sub")
    revoke_tokens(idp, "gone-sub")

    response = client.get(reverse("groups:sign-in-failures"))

    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    assert signed_in_user(client) is None
    assert SignInFailure.objects.filter(detail__startswith="Session ended").exists()
    again = sign_in_with_client(client, "gone-sub")
    assert again.status_code == 302  # a new sign-in works again


def test_an_htmx_request_of_an_ended_session_is_sent_to_sign_in(client, idp, settings):
    settings.OIDC_ROLE_REFRESH_SECONDS = 0
    person(idp, "htmx-sub", email="htmx@acme.example", groups=["staff"])
    sign_in_with_client(client, "htmx-sub")
    ExternalIdentity.objects.filter(subject="htmx-sub").delete()  # unlinked by an Administrator

    response = client.get(reverse("groups:list"), headers={"HX-Request": "true"})

    assert response["HX-Redirect"] == reverse("login")
    assert signed_in_user(client) is None


def test_sign_out_forgets_the_sessions_tokens(client, idp):
    person(idp, "bye-sub", email="bye@acme.example", groups=["staff"])
    sign_in_with_client(client, "bye-sub")
    identity = ExternalIdentity.objects.get(subject="bye-sub")
    assert identity.sessions.count() == 1

    client.post(reverse("logout"))

    assert identity.sessions.count() == 0


def test_an_administrator_links_a_subject_to_a_superuser_in_the_django_admin_and_it_signs_in(
    client, admin_client, idp
):
    root = User.objects.get(username="admin")  # admin_client's superuser
    role_group(ADMINISTRATOR)
    form = user_change_form(root, identities=[{"issuer": idp, "subject": "root-sub"}])

    response = admin_client.post(reverse("admin:auth_user_change", args=[root.pk]), form)

    assert response.status_code == 302, response.content.decode()[:2000]
    link = AuditEntry.objects.get(action=AuditEntry.Action.IDENTITY_LINK)
    assert link.actor_username == "admin" and link.details["source"] == "the Django admin"
    person(idp, "root-sub", email="someone-else@acme.example")
    sign_in_with_client(client, "root-sub")
    assert signed_in_user(client) == root


def test_unlinking_in_the_django_admin_is_audited(admin_client):
    vera = viewer(username="vera")
    identity = ExternalIdentity.objects.create(
        issuer="https://idp.example", subject="v-1", user=vera, linked_by="x"
    )
    form = user_change_form(vera, existing=[identity], delete=[identity])

    response = admin_client.post(reverse("admin:auth_user_change", args=[vera.pk]), form)

    assert response.status_code == 302
    assert not ExternalIdentity.objects.exists()
    unlink = AuditEntry.objects.get(action=AuditEntry.Action.IDENTITY_UNLINK)
    assert unlink.details == {
        "account": "vera",
        "issuer": "https://idp.example",
        "subject": "v-1",
        "source": "the Django admin",
    }


def user_change_form(user, *, identities=(), existing=(), delete=(), **fields):
    """The Django admin's change form for `user` as a browser would post it."""
    data = {
        "username": user.username,
        "email": user.email,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "groups": list(user.groups.values_list("pk", flat=True)),
        "date_joined_0": "2026-01-01",
        "date_joined_1": "00:00:00",
        "initial-date_joined_0": "2026-01-01",
        "initial-date_joined_1": "00:00:00",
        "external_identities-TOTAL_FORMS": str(len(existing) + len(identities)),
        "external_identities-INITIAL_FORMS": str(len(existing)),
    }
    for flag in ("is_active", "is_staff", "is_superuser"):
        if getattr(user, flag):
            data[flag] = "on"
    for index, identity in enumerate(existing):
        data[f"external_identities-{index}-id"] = str(identity.pk)
        data[f"external_identities-{index}-user"] = str(user.pk)
        if identity in delete:
            data[f"external_identities-{index}-DELETE"] = "on"
    for index, identity in enumerate(identities, start=len(existing)):
        data[f"external_identities-{index}-issuer"] = identity["issuer"]
        data[f"external_identities-{index}-subject"] = identity["subject"]
        data[f"external_identities-{index}-user"] = str(user.pk)
    for name, value in fields.items():
        if value is False:
            data.pop(name, None)
        else:
            data[name] = value
    return data


def test_user_information_about_another_subject_is_refused(client, idp, monkeypatch):
    person(idp, "honest-sub", email="honest@acme.example", groups=["groupadmin-admins"])
    monkeypatch.setattr(
        "groups_app.oidc.GroupAdminOIDCBackend.get_userinfo",
        lambda self, *args: {"sub": "someone-else", "email": "honest@acme.example", "email_verified": True},
    )

    response = sign_in_with_client(client, "honest-sub")

    assert response.status_code == 403 and signed_in_user(client) is None
    assert not User.objects.exists()
    assert "another subject" in SignInFailure.objects.get(reason="sso_refused").detail


def test_a_session_ends_when_the_provider_cannot_be_reached_after_the_refresh_period(client, idp, settings):
    person(idp, "far-sub", email="far@acme.example", groups=["groupadmin-admins"])
    sign_in_with_client(client, "far-sub")
    settings.OIDC_ROLE_REFRESH_SECONDS = 0
    settings.OIDC_OP_TOKEN_ENDPOINT = "http://127.0.0.1:9/oauth2/token"  # nothing listens there

    response = client.post(reverse("groups:list"))

    assert response.status_code == 302 and response["Location"] == reverse("login")
    assert signed_in_user(client) is None
    assert "could not be asked again" in SignInFailure.objects.get(detail__startswith="Session ended").detail


def test_sign_out_works_while_the_provider_is_unreachable(client, idp, settings):
    person(idp, "out-sub", email="out@acme.example", groups=["staff"])
    sign_in_with_client(client, "out-sub")
    settings.OIDC_ROLE_REFRESH_SECONDS = 0
    settings.OIDC_OP_TOKEN_ENDPOINT = "http://127.0.0.1:9/oauth2/token"

    response = client.post(reverse("logout"))

    assert response.status_code == 302 and response["Location"].startswith(idp + "/oauth2/end_session")
    assert not SignInFailure.objects.exists()


def test_the_providers_tokens_are_stored_encrypted(client, idp):
    person(idp, "vault-sub", email="vault@acme.example", groups=["staff"])
    sign_in_with_client(client, "vault-sub")
    stored = ExternalIdentity.objects.get(subject="vault-sub").sessions.get()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT access_token, refresh_token FROM groups_app_externalsession WHERE id = %s", [stored.pk]
        )
        raw_access, raw_refresh = cursor.fetchone()

    assert stored.access_token and stored.refresh_token  # read back as the provider gave them
    assert stored.access_token not in raw_access and stored.refresh_token not in raw_refresh
