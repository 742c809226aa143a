"""Access tokens of the identity provider, accepted by the API and the MCP server beside personal
API tokens (`OIDC_API_AUDIENCE`).

A script or an assistant that already holds an access token from the company's provider uses
it as it is: a JWT signed with one of the provider's keys (`OIDC_OP_JWKS_ENDPOINT`, algorithm
`OIDC_RP_SIGN_ALGO`), issued by `OIDC_OP_ISSUER` for the audience `OIDC_API_AUDIENCE`, not
expired, naming a subject already linked to an account (a single sign-on identity). When it
carries the groups claim (`OIDC_GROUPS_CLAIM`), the account's roles follow it first. Its
`scope` claim (or `scp`, as some providers name it) must grant one of PROVIDER_SCOPES; the
highest granted is the token's scope, and as with a personal token the account's role still
bounds it. Such a token is never stored.
"""

from __future__ import annotations

import hashlib
import logging

import jwt
import requests
from django.conf import settings
from django.core.cache import cache

from groups_app.models import ApiToken, ExternalIdentity, TokenAccount
from groups_app.services.accounts import roles_from_claim, sync_roles

logger = logging.getLogger(__name__)

Scope = ApiToken.Scope
# The `scope` claim values that grant each scope, lowest first.
PROVIDER_SCOPES = {
    "group-admin:read": Scope.READ,
    "group-admin:request": Scope.REQUEST,
    "group-admin:change": Scope.CHANGE,
}
# Longest bearer value read as a JWT (a provider's access tokens are a few KiB at most).
MAX_JWT_LENGTH = 8192
_KEYS = "oidc:api:jwks"
KEYS_KEPT_SECONDS = 300
_REREAD = "oidc:api:jwks:reread"
KEYS_REREAD_SECONDS = 30


def provider_token_account(bearer: str) -> TokenAccount | None:
    """The account a provider's access token acts for, within its scope; None when the API
    does not take such tokens, or this one is not valid for it (the reason is logged, never the
    token)."""
    if not (settings.OIDC_API_AUDIENCE and settings.OIDC_OP_JWKS_ENDPOINT and settings.OIDC_OP_ISSUER):
        return None
    if not bearer or len(bearer) > MAX_JWT_LENGTH or bearer.count(".") != 2:
        return None
    try:
        claims = _verified_claims(bearer)
    except (jwt.PyJWTError, requests.RequestException, ValueError, KeyError, TypeError) as exc:
        logger.warning("A provider access token was refused: %s", type(exc).__name__)
        return None
    scope = granted_scope(claims.get("scope") or claims.get("scp"))
    if scope is None:
        logger.warning("A provider access token grants none of the Group Admin scopes.")
        return None
    identity = (
        ExternalIdentity.objects.select_related("user")
        .filter(issuer=settings.OIDC_OP_ISSUER, subject=str(claims["sub"]))
        .first()
    )
    if identity is None or not identity.user.is_active:
        return None
    if settings.OIDC_GROUPS_CLAIM in claims:
        # The token states the person's groups as the provider sees them now: their roles follow
        # it (audited), as at a sign-in, so a role removed at the provider ends here too.
        sync_roles(identity.user, roles_from_claim(claims[settings.OIDC_GROUPS_CLAIM]))
    account = TokenAccount.objects.get(pk=identity.user_id)
    account.api_token = ApiToken(
        user=identity.user,
        name=f"from {settings.OIDC_PROVIDER_NAME}",
        scope=scope,
        prefix="",
        digest=hashlib.sha256(f"oidc:{identity.issuer}:{identity.subject}".encode()).hexdigest(),
    )
    return account


def granted_scope(claim) -> str | None:
    """The highest Group Admin scope a `scope` claim (space-separated, or a list) grants."""
    values = claim.split() if isinstance(claim, str) else claim if isinstance(claim, list) else []
    granted = [PROVIDER_SCOPES[v] for v in values if isinstance(v, str) and v in PROVIDER_SCOPES]
    order = list(PROVIDER_SCOPES.values())
    return max(granted, key=order.index) if granted else None


def _verified_claims(bearer: str) -> dict:
    """The token's claims, once its signature, issuer, audience and times are checked.

    Raises:
        jwt.PyJWTError, requests.RequestException, ValueError, KeyError: not valid, or the
            provider's keys could not be read.
    """
    algorithm = settings.OIDC_RP_SIGN_ALGO
    header = jwt.get_unverified_header(bearer)
    if header.get("alg") != algorithm:
        raise jwt.InvalidAlgorithmError(f"not signed with {algorithm}")
    key = _signing_key(str(header.get("kid", "")))
    return jwt.decode(
        bearer,
        key,
        algorithms=[algorithm],
        audience=settings.OIDC_API_AUDIENCE,
        issuer=settings.OIDC_OP_ISSUER,
        options={"require": ["exp", "iss", "aud", "sub"]},
        leeway=30,
    )


def _signing_key(kid: str):
    """The provider's public key `kid` for OIDC_RP_SIGN_ALGO, from the keys read in the last
    KEYS_KEPT_SECONDS. Otherwise (none kept, or an unknown key id: the provider may have rotated
    its keys) they are read again, at most once every KEYS_REREAD_SECONDS whatever happens, so
    tokens made up with random key ids, or a provider that is down, cannot make Group Admin call
    the provider on every request."""
    keys = cache.get(_KEYS)
    found = _key_among(keys, kid) if keys is not None else None
    if found is not None:
        return found
    if not cache.add(_REREAD, True, KEYS_REREAD_SECONDS):
        raise KeyError("no key of the provider has this id (its keys were read a moment ago)")
    response = requests.get(settings.OIDC_OP_JWKS_ENDPOINT, timeout=settings.OIDC_TIMEOUT)
    response.raise_for_status()
    keys = response.json()
    if not isinstance(keys, dict) or not isinstance(keys.get("keys"), list):
        raise ValueError("the provider's JWKS is not a key set")
    cache.set(_KEYS, keys, KEYS_KEPT_SECONDS)
    found = _key_among(keys, kid)
    if found is None:
        raise KeyError("no key of the provider has this id")
    return found


# The key type each family of signing algorithms needs (a key without "alg" is taken by its type).
_KEY_TYPES = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}


def _key_among(keys: dict, kid: str):
    """The signing key `kid` of the set for OIDC_RP_SIGN_ALGO, or None. Never a symmetric key, an
    encryption key, or one stated for another algorithm."""
    algorithm = settings.OIDC_RP_SIGN_ALGO
    for data in keys.get("keys") or []:
        if not isinstance(data, dict) or data.get("kid") != kid or data.get("use", "sig") != "sig":
            continue
        if data.get("alg", algorithm) != algorithm or data.get("kty") != _KEY_TYPES.get(algorithm[:2]):
            continue
        return jwt.PyJWK(data, algorithm=algorithm).key
    return None
