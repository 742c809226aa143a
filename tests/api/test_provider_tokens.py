"""The identity provider's access tokens on the API (OIDC_API_AUDIENCE): a JWT signed with the
provider's keys, for this audience, naming a linked subject, with a Group Admin scope; anything
else is a 401, and the account's role still bounds what it does."""

import json
import time

import jwt
import pytest
import responses
from cryptography.hazmat.primitives.asymmetric import rsa
from django.core.cache import cache

from groups_app.models import AuditEntry, ExternalIdentity
from groups_app.services import provider_tokens
from sandbox.models import Membership
from tests.api.conftest import bearer

pytestmark = pytest.mark.django_db

ISSUER = "https://idp.example"
JWKS = f"{ISSUER}/jwks"
AUDIENCE = "group-admin-api"


def new_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


KEY, OTHER_KEY = new_key(), new_key()


def jwk_of(private_key, kid):
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private_key.public_key()))
    return {**public, "kid": kid, "alg": "RS256", "use": "sig"}


def token(sub="ada-sub", *, key=KEY, kid="k1", scope="group-admin:change", **claims):
    now = int(time.time())
    payload = {"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "iat": now, "exp": now + 300, "scope": scope}
    payload = {name: value for name, value in {**payload, **claims}.items() if value is not None}
    return jwt.encode(payload, key, algorithm="RS256", headers={"kid": kid})


@pytest.fixture
def provider(settings):
    settings.OIDC_API_AUDIENCE = AUDIENCE
    settings.OIDC_OP_ISSUER = ISSUER
    settings.OIDC_OP_JWKS_ENDPOINT = JWKS
    settings.OIDC_RP_SIGN_ALGO = "RS256"
    settings.OIDC_PROVIDER_NAME = "Acme SSO"
    cache.clear()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mocked:
        mocked.get(JWKS, json={"keys": [jwk_of(KEY, "k1")]})
        yield mocked
    cache.clear()


@pytest.fixture
def linked(ada, hana, vera):
    for user in (ada, hana, vera):
        ExternalIdentity.objects.create(
            issuer=ISSUER, subject=f"{user.username}-sub", user=user, linked_by="test"
        )


def test_a_provider_token_lists_groups_and_adds_a_member_audited_as_from_the_provider(
    client, provider, linked, team
):
    newcomer = "provider-added@example.com"

    listed = client.get("/api/v1/groups", **bearer(token()))
    added = client.post(
        f"/api/v1/groups/{team.id}/members",
        {"emails": [newcomer]},
        content_type="application/json",
        **bearer(token()),
    )

    assert listed.status_code == 200 and added.status_code == 200, added.content
    entry = AuditEntry.objects.get(pk=added.json()["audit_entry"])
    assert (entry.actor_username, entry.via, entry.status) == ("ada", "API token from Acme SSO", "succeeded")
    assert len(provider.calls) == 1  # the provider's keys are read once, then kept


@pytest.mark.parametrize(
    "wrong",
    [
        {"aud": "another-api"},
        {"iss": "https://elsewhere.example"},
        {"exp": int(time.time()) - 120},
        {"scope": "openid email"},
        {"sub": "nobody-sub"},  # never signed in: no linked account
        {"key": OTHER_KEY},  # signed with a key that is not the provider's
        {"kid": "unknown"},
    ],
    ids=["audience", "issuer", "expired", "no-scope", "unlinked", "forged", "unknown-key"],
)
def test_a_token_that_is_not_valid_here_is_a_401(client, provider, linked, wrong):
    arguments = {"key": wrong.pop("key", KEY), "kid": wrong.pop("kid", "k1"), **wrong}

    response = client.get("/api/v1/groups", **bearer(token(**arguments)))

    assert response.status_code == 401


def test_a_token_signed_with_a_shared_secret_instead_of_the_providers_key_is_a_401(client, provider, linked):
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "ada-sub",
        "exp": now + 300,
        "scope": "group-admin:change",
    }
    forged = jwt.encode(
        claims, "a-guessed-secret-of-at-least-32-bytes!", algorithm="HS256", headers={"kid": "k1"}
    )

    assert client.get("/api/v1/groups", **bearer(forged)).status_code == 401


def test_a_read_scope_is_refused_on_a_change_and_nothing_is_sent(client, provider, linked, team):
    before = Membership.objects.filter(group=team).count()

    response = client.post(
        f"/api/v1/groups/{team.id}/members",
        {"emails": ["someone-new@example.com"]},
        content_type="application/json",
        **bearer(token(scope="openid group-admin:read")),
    )

    assert response.status_code == 403
    assert Membership.objects.filter(group=team).count() == before


def test_the_accounts_role_still_bounds_a_change_scope(client, provider, linked, team):
    response = client.post(
        f"/api/v1/groups/{team.id}/members",
        {"emails": ["someone-new@example.com"]},
        content_type="application/json",
        **bearer(token("vera-sub")),  # a Viewer
    )

    assert response.status_code == 403


def test_keys_rotated_at_the_provider_are_read_again(client, provider, linked):
    client.get("/api/v1/groups", **bearer(token()))
    provider.replace(responses.GET, JWKS, json={"keys": [jwk_of(KEY, "k1"), jwk_of(OTHER_KEY, "k2")]})
    cache.delete(provider_tokens._REREAD)  # KEYS_REREAD_SECONDS later

    response = client.get("/api/v1/groups", **bearer(token(key=OTHER_KEY, kid="k2")))

    assert response.status_code == 200


def test_without_an_audience_provider_tokens_are_not_taken(client, provider, linked, settings):
    settings.OIDC_API_AUDIENCE = ""

    assert client.get("/api/v1/groups", **bearer(token())).status_code == 401
    assert len(provider.calls) == 0


def test_made_up_key_ids_do_not_make_every_request_call_the_provider(client, provider, linked):
    client.get("/api/v1/groups", **bearer(token()))  # the keys are read

    answers = [
        client.get("/api/v1/groups", **bearer(token(kid=f"made-up-{n}"))).status_code for n in range(5)
    ]

    assert answers == [401] * 5
    assert len(provider.calls) == 1  # read at most once every KEYS_REREAD_SECONDS


def test_a_provider_that_is_down_or_answers_nonsense_is_a_401_and_asked_once_a_while(
    client, provider, linked
):
    provider.replace(responses.GET, JWKS, json=[])  # not a key set

    answers = [client.get("/api/v1/groups", **bearer(token())).status_code for _ in range(3)]

    assert answers == [401] * 3 and len(provider.calls) == 1


def test_scopes_in_an_scp_claim_count_too(client, provider, linked):
    response = client.get("/api/v1/groups", **bearer(token(scope=None, scp=["group-admin:read"])))

    assert response.status_code == 200


def test_a_groups_claim_in_the_token_sets_the_roles_first(client, provider, linked, team, ada, settings):
    settings.OIDC_ROLE_MAP = {"groupadmin-admins": "Administrator", "staff": "Viewer"}

    demoted = client.post(
        f"/api/v1/groups/{team.id}/members",
        {"emails": ["someone-new@example.com"]},
        content_type="application/json",
        **bearer(token(groups=["staff"])),  # no longer an Administrator at the provider
    )

    assert demoted.status_code == 403
    assert set(ada.groups.values_list("name", flat=True)) == {"Viewer"}
