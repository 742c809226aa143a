"""Signing in and out, password reset (only with real mail), and the failed sign-ins page."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_POST
from mozilla_django_oidc.views import OIDCLogoutView

from groups_app.middleware import client_ip
from groups_app.models import SignInFailure
from groups_app.roles import MANAGE_GROUPS
from groups_app.services.accounts import password_reset_requested
from groups_app.services.sign_in import count_attempt, sign_in_failures


def sign_in_options() -> dict:
    """Which ways to sign in the login page offers."""
    return {
        "local_login_enabled": settings.LOCAL_LOGIN_ENABLED,
        "sso_enabled": settings.OIDC_ENABLED,
        "sso_name": settings.OIDC_PROVIDER_NAME,
        "password_reset_enabled": settings.PASSWORD_RESET_ENABLED,
    }


class SignInView(auth_views.LoginView):
    """The sign-in page: single sign-on, and local passwords unless they are switched off."""

    template_name = "registration/login.html"
    redirect_authenticated_user = True

    def post(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not settings.LOCAL_LOGIN_ENABLED:
            raise PermissionDenied("Local passwords are switched off; sign in with single sign-on.")
        return super().post(request, *args, **kwargs)

    def get_context_data(self, **kwargs) -> dict:
        return {**super().get_context_data(**kwargs), **sign_in_options()}


@require_POST
def sign_out(request: HttpRequest) -> HttpResponse:
    """Sign out; for people who signed in through single sign-on, end the provider's session too."""
    view = OIDCLogoutView if settings.OIDC_ENABLED else auth_views.LogoutView
    return view.as_view()(request)


class AuditedPasswordResetView(auth_views.PasswordResetView):
    """Mails a reset link (throttled like sign-in, see SignInThrottleMiddleware) and audits the request.

    The link starts with SITE_URL when it is set, like every link in mail.
    """

    @property
    def extra_email_context(self) -> dict:
        return {"site_url": settings.SITE_URL}

    def form_valid(self, form):
        email = form.cleaned_data["email"]
        password_reset_requested(actor=self.request.user, email=email)
        count_attempt(username=email, client_ip=client_ip(self.request), by_email=True)
        return super().form_valid(form)


@require_GET
@permission_required(MANAGE_GROUPS, raise_exception=True)
def sign_in_failures_view(request: HttpRequest) -> HttpResponse:
    """Administrators see refused sign-ins of the last 30 days: who was tried, from where, why
    (attempts made while locked out included); optionally only those of one reason."""
    reason = request.GET.get("reason", "")
    if reason not in SignInFailure.Reason.values:
        reason = ""
    page = Paginator(sign_in_failures(reason=reason), 50).get_page(request.GET.get("page"))
    context = {
        "page": page,
        "reason": reason,
        "reasons": SignInFailure.Reason.choices,
        "refused_per_minute": settings.REFUSED_ATTEMPTS_PER_MINUTE,
        "nav_section": "audit",
    }
    return render(request, "groups_app/sign_in_failures.html", context)
