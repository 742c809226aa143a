"""The single sign-on endpoints: reachable before signing in, and only while SSO is on."""

import functools

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.urls import path
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView


def sso_endpoint(view):
    @login_not_required
    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        if not settings.OIDC_ENABLED:
            raise Http404("Single sign-on is not configured.")
        return view(request, *args, **kwargs)

    return wrapper


class SignInCallbackView(OIDCAuthenticationCallbackView):
    """The provider's answer; a sign-in refused for a reason the person can act on (an account
    with their email that an Administrator must link) says so instead of the generic message."""

    def login_failure(self) -> HttpResponse:
        message = getattr(self.request, "sso_refusal", "")
        if message:
            return render(self.request, "registration/sso_refused.html", {"message": message}, status=403)
        return super().login_failure()


urlpatterns = [
    path(
        "authenticate/",
        sso_endpoint(OIDCAuthenticationRequestView.as_view()),
        name="oidc_authentication_init",
    ),
    path(
        "callback/",
        sso_endpoint(SignInCallbackView.as_view()),
        name="oidc_authentication_callback",
    ),
]
