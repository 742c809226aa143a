"""Single sign-on: the OpenID Connect backend (mozilla-django-oidc) with the dashboard's rules.

On top of what the library checks (signature against the provider's keys, expiry, nonce,
state, PKCE), it checks what the library leaves out: the token's audience is this client and
its issuer is the configured provider. People are matched and created by their *verified*
email; their roles follow the groups claim (OIDC_ROLE_MAP) at every sign-in, audited. A
sign-in that fails any check is refused with a message and recorded for Administrators.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlencode

import jwt
import requests
from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import SuspiciousOperation
from django.db import transaction
from django.http import HttpRequest
from django.urls import reverse
from django.utils.timezone import now
from mozilla_django_oidc.auth import OIDCAuthenticationBackend

from groups_app.middleware import client_ip
from groups_app.models import SignInFailure
from groups_app.roles import ROLE_PERMISSIONS
from groups_app.services.accounts import roles_changed_by

logger = logging.getLogger("groups_app.oidc")

ROLE_SOURCE = "the identity provider's groups claim"
CLOCK_SKEW_SECONDS = 60  # tolerated difference between the provider's clock and ours


class SignInRefused(SuspiciousOperation):
    """The identity provider's answer did not pass a check; the message says which."""


class GroupAdminOIDCBackend(OIDCAuthenticationBackend):
    def authenticate(self, request: HttpRequest | None, **kwargs: Any):
        """The library's code flow; any failed check refuses the sign-in instead of a 400 or 500 page."""
        try:
            return super().authenticate(request, **kwargs)
        except (SuspiciousOperation, jwt.PyJWTError, requests.RequestException, KeyError, ValueError) as exc:
            _record_refusal(request, exc)
            return None

    def verify_token(self, token: str, **kwargs: Any) -> dict[str, Any]:
        payload = super().verify_token(token, **kwargs)
        # The library's decoder checks expiry against the system clock; check it here too, on the
        # dashboard's clock, so that an expired token is refused however the library is set up.
        expires = payload.get("exp")
        if not isinstance(expires, int | float) or expires <= now().timestamp() - CLOCK_SKEW_SECONDS:
            raise SignInRefused("The ID token has expired.")
        audience = payload.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if settings.OIDC_RP_CLIENT_ID not in audiences:
            raise SignInRefused("The ID token was issued to another application.")
        if payload.get("iss") != settings.OIDC_OP_ISSUER:
            raise SignInRefused("The ID token comes from another issuer.")
        return payload

    def verify_claims(self, claims: dict[str, Any]) -> bool:
        """Only a verified email identifies a person here (a refusal is recorded: the library
        turns False into a refused sign-in and keeps the reason to itself)."""
        if not claims.get("email"):
            _record_refusal(self.request, SignInRefused("The identity provider sent no email."))
            return False
        if claims.get("email_verified") is not True:
            _record_refusal(self.request, SignInRefused(f"{claims['email']}: the email is not verified."))
            return False
        return True

    def filter_users_by_claims(self, claims: dict[str, Any]):
        return self.UserModel.objects.filter(email__iexact=claims["email"].strip())

    def create_user(self, claims: dict[str, Any]):
        email = claims["email"].strip().lower()
        with transaction.atomic():
            user = self.UserModel.objects.create_user(
                username=email[:150],
                email=email,
                first_name=str(claims.get("given_name") or "")[:150],
                last_name=str(claims.get("family_name") or "")[:150],
            )
            user.set_unusable_password()
            user.save(update_fields=["password"])
            _sync_roles(user, claims)
        logger.info("Created the account %s at its first single sign-on", email)
        return user

    def update_user(self, user, claims: dict[str, Any]):
        _sync_roles(user, claims)
        return user


def _claimed_groups(claims: dict[str, Any]) -> set[str]:
    value = claims.get(settings.OIDC_GROUPS_CLAIM) or []
    if isinstance(value, str):
        value = [value]
    return {str(item) for item in value}


def _sync_roles(user, claims: dict[str, Any]) -> None:
    """Give the account exactly the roles its groups claim maps to (audited through the signal)."""
    wanted = {role for value, role in settings.OIDC_ROLE_MAP.items() if value in _claimed_groups(claims)}
    current = set(user.groups.filter(name__in=ROLE_PERMISSIONS).values_list("name", flat=True))
    with roles_changed_by(ROLE_SOURCE):
        if wanted - current:
            user.groups.add(*Group.objects.filter(name__in=wanted - current))
        if current - wanted:
            user.groups.remove(*Group.objects.filter(name__in=current - wanted))


def _record_refusal(request: HttpRequest | None, exc: Exception) -> None:
    reason = str(exc) if isinstance(exc, SignInRefused) else f"{type(exc).__name__}: {exc}"
    logger.warning("Single sign-on refused: %s", reason)
    SignInFailure.objects.create(
        client_ip=client_ip(request) if request is not None else None,
        user_agent=request.headers.get("User-Agent", "")[:300] if request is not None else "",
        path=request.path[:200] if request is not None else "",
        reason=SignInFailure.Reason.SSO_REFUSED,
        detail=reason[:300],
    )


def provider_logout_url(request: HttpRequest) -> str:
    """Where sign-out goes: the provider's end-session endpoint for SSO sessions, else sign-in."""
    login = request.build_absolute_uri(reverse("login"))
    id_token = request.session.get("oidc_id_token")
    if not settings.OIDC_OP_LOGOUT_ENDPOINT or not id_token:
        return login
    query = urlencode({"id_token_hint": id_token, "post_logout_redirect_uri": login})
    return f"{settings.OIDC_OP_LOGOUT_ENDPOINT}?{query}"
