"""Single sign-on: the OpenID Connect backend (mozilla-django-oidc) with the dashboard's rules.

On top of what the library checks (signature against the provider's keys, expiry, nonce,
state, PKCE), it checks what the library leaves out: the token's audience is this client and
its issuer is the configured provider, and the user information names the ID token's subject.
People are identified by the provider's (issuer, subject), never by email (see
`services.accounts.sign_in_by_identity`); their roles follow the groups claim (OIDC_ROLE_MAP) at
every sign-in and, through `IdentityProviderRefreshMiddleware`, at most OIDC_ROLE_REFRESH_SECONDS
into a live session — audited. A sign-in that fails any check is refused with a message and
recorded for Administrators.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import jwt
import requests
from django.conf import settings
from django.contrib import auth, messages
from django.contrib.auth import BACKEND_SESSION_KEY
from django.core.exceptions import SuspiciousOperation
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.module_loading import import_string
from django.utils.timezone import now
from mozilla_django_oidc.auth import OIDCAuthenticationBackend

from groups_app.middleware import client_ip
from groups_app.models import ExternalSession, SignInFailure
from groups_app.services.accounts import (
    EXTERNAL_SESSION_KEY,
    IdentityRefused,
    external_session_end,
    external_session_start,
    provider_identity,
    roles_from_claim,
    sign_in_by_identity,
    sync_roles,
)

logger = logging.getLogger("groups_app.oidc")

CLOCK_SKEW_SECONDS = 60  # tolerated difference between the provider's clock and ours


class SignInRefused(SuspiciousOperation):
    """The identity provider's answer did not pass a check; the message says which."""


class GroupAdminOIDCBackend(OIDCAuthenticationBackend):
    def authenticate(self, request: HttpRequest | None, **kwargs: Any):
        """The library's code flow; any failed check refuses the sign-in instead of a 400 or 500 page."""
        self._refresh_token = ""
        try:
            return super().authenticate(request, **kwargs)
        except IdentityRefused as exc:
            _record_refusal(request, SignInRefused(exc.reason))
            if request is not None:
                request.sso_refusal = exc.message  # shown by the callback (groups_app.oidc_urls)
            return None
        except (SuspiciousOperation, jwt.PyJWTError, requests.RequestException, KeyError, ValueError) as exc:
            _record_refusal(request, exc)
            return None

    def get_token(self, payload: dict[str, Any]) -> dict[str, Any]:
        token_info = super().get_token(payload)
        self._refresh_token = str(token_info.get("refresh_token") or "")
        return token_info

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

    def get_or_create_user(self, access_token: str, id_token: str, payload: dict[str, Any]):
        """The account of the ID token's (issuer, subject); the user information (email, names,
        groups) must speak of the same subject (OpenID Connect Core 5.3.2)."""
        user_info = self.get_userinfo(access_token, id_token, payload)
        if not isinstance(user_info, dict) or user_info.get("sub") != payload.get("sub"):
            raise IdentityRefused(
                "The identity provider's answer was refused.",
                "The user information names another subject than the ID token.",
            )
        if not self.verify_claims(user_info):
            raise SuspiciousOperation("Claims verification failed")
        identity = provider_identity(issuer=payload["iss"], claims=user_info)
        user = sign_in_by_identity(identity)
        if user.is_active:
            session = external_session_start(
                identity=identity, access_token=access_token, refresh_token=self._refresh_token
            )
            self.request.session[EXTERNAL_SESSION_KEY] = session.pk
        return user


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


class ProviderStoppedVouching(Exception):
    """The identity provider no longer confirms a live session (or cannot be asked)."""


def _is_sso_session(request: HttpRequest) -> bool:
    user = getattr(request, "user", None)
    if not settings.OIDC_ENABLED or user is None or not user.is_authenticated:
        return False
    backend = request.session.get(BACKEND_SESSION_KEY)
    try:
        return bool(backend) and issubclass(import_string(backend), GroupAdminOIDCBackend)
    except ImportError:
        return False


def _reread_claims(record: ExternalSession) -> tuple[dict[str, Any], str, str]:
    """The person's claims as the provider states them now: a new access token through the refresh
    token when there is one, then the user information.

    Raises:
        ProviderStoppedVouching: the provider refused the refresh token or the access token, or
            could not be reached.
    """
    backend = GroupAdminOIDCBackend()
    access_token, refresh_token = record.access_token, record.refresh_token
    try:
        if refresh_token:
            tokens = backend.get_token(
                {
                    "client_id": settings.OIDC_RP_CLIENT_ID,
                    "client_secret": settings.OIDC_RP_CLIENT_SECRET,
                    "grant_type": "refresh_token",
                    "refresh_token": refresh_token,
                }
            )
            access_token = str(tokens.get("access_token") or "")
            refresh_token = str(tokens.get("refresh_token") or refresh_token)
        claims = backend.get_userinfo(access_token, None, None)
    except requests.HTTPError as exc:
        status = exc.response.status_code if exc.response is not None else "?"
        raise ProviderStoppedVouching(f"the identity provider answered {status} when asked again") from None
    except (requests.RequestException, ValueError) as exc:
        raise ProviderStoppedVouching(
            f"the identity provider could not be asked again ({type(exc).__name__})"
        ) from None
    if not isinstance(claims, dict):
        raise ProviderStoppedVouching("the identity provider's user information is not an object")
    return claims, access_token, refresh_token


def refresh_session_roles(request: HttpRequest) -> None:
    """Re-read the person's roles from the provider once OIDC_ROLE_REFRESH_SECONDS have passed
    since the last reading (one request does it; the others go on meanwhile).

    Raises:
        ProviderStoppedVouching: the session must end.
    """
    pk = request.session.get(EXTERNAL_SESSION_KEY)
    record = ExternalSession.objects.select_related("identity").filter(pk=pk).first() if pk else None
    if record is None or record.identity.user_id != request.user.pk:
        raise ProviderStoppedVouching("the single sign-on identity of this session is no longer linked")
    started = now()
    if record.checked_at > started - timedelta(seconds=settings.OIDC_ROLE_REFRESH_SECONDS):
        return
    claimed = ExternalSession.objects.filter(pk=record.pk, checked_at=record.checked_at).update(
        checked_at=started
    )
    if not claimed:
        return  # another request of this session is asking the provider right now
    claims, access_token, refresh_token = _reread_claims(record)
    if claims.get("sub") != record.identity.subject:
        raise ProviderStoppedVouching("the identity provider's user information names another subject")
    sync_roles(request.user, roles_from_claim(claims.get(settings.OIDC_GROUPS_CLAIM)))
    ExternalSession.objects.filter(pk=record.pk).update(
        access_token=access_token, refresh_token=refresh_token, checked_at=now()
    )


class IdentityProviderRefreshMiddleware:
    """Roles removed at the identity provider leave live sessions too: at most
    OIDC_ROLE_REFRESH_SECONDS after the last reading, a signed-in request of a single sign-on
    session re-reads the person's groups claim (audited role changes). When the provider no longer
    vouches for the session (refresh token refused, identity unlinked, provider unreachable) the
    session ends and the person is asked to sign in again. Sign-out and the sign-in endpoints are
    left alone, so that sign-out works while the provider is down."""

    EXEMPT = ("logout", "oidc_authentication_init", "oidc_authentication_callback")

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if _is_sso_session(request) and request.path not in {reverse(name) for name in self.EXEMPT}:
            try:
                refresh_session_roles(request)
            except ProviderStoppedVouching as exc:
                return self._end_session(request, str(exc))
        return self.get_response(request)

    @staticmethod
    def _end_session(request: HttpRequest, reason: str) -> HttpResponse:
        logger.warning("Single sign-on session of %s ended: %s", request.user.get_username(), reason)
        SignInFailure.objects.create(
            username=request.user.get_username()[:254],
            client_ip=client_ip(request),
            user_agent=request.headers.get("User-Agent", "")[:300],
            path=request.path[:200],
            reason=SignInFailure.Reason.SSO_REFUSED,
            detail=f"Session ended: {reason}"[:300],
        )
        external_session_end(request.session.get(EXTERNAL_SESSION_KEY))
        auth.logout(request)
        messages.warning(request, "Your single sign-on session has ended. Sign in again.")
        login = reverse("login")
        if request.headers.get("HX-Request"):
            response = HttpResponse(status=204)
            response["HX-Redirect"] = login  # the whole page goes to sign-in, not a fragment
            return response
        if request.method == "GET":
            return HttpResponseRedirect(f"{login}?{urlencode({'next': request.get_full_path()})}")
        return HttpResponseRedirect(login)
