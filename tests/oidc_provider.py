"""A real OpenID Connect provider (oidc-provider-mock) for the single sign-on tests: a process on
a loopback port that the tests start and stop, and the settings that point the dashboard at it."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote, urlsplit

import pytest
import requests
from django.urls import reverse

CLIENT_ID = "group-admin"
ROLE_MAP = {"groupadmin-admins": "Administrator", "it-helpdesk": "Help desk", "staff": "Viewer"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def provider(*args: str) -> Iterator[str]:
    """A real OIDC provider on a loopback port, stopped when the block ends."""
    port = free_port()
    process = subprocess.Popen(  # noqa: S603 - the test dependency's own CLI, fixed arguments
        [sys.executable, "-m", "oidc_provider_mock", "--port", str(port), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                requests.get(f"{base}/.well-known/openid-configuration", timeout=1).raise_for_status()
                break
            except requests.RequestException:
                if process.poll() is not None:
                    pytest.fail("The OIDC provider did not start.")
                time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)


def use_provider(settings, base: str, token_endpoint: str | None = None) -> None:
    settings.OIDC_ENABLED = True
    settings.OIDC_PROVIDER_NAME = "Acme SSO"
    settings.OIDC_OP_ISSUER = base
    settings.OIDC_OP_AUTHORIZATION_ENDPOINT = f"{base}/oauth2/authorize"
    settings.OIDC_OP_TOKEN_ENDPOINT = token_endpoint or f"{base}/oauth2/token"
    settings.OIDC_OP_USER_ENDPOINT = f"{base}/userinfo"
    settings.OIDC_OP_JWKS_ENDPOINT = f"{base}/jwks"
    settings.OIDC_OP_LOGOUT_ENDPOINT = f"{base}/oauth2/end_session"
    settings.OIDC_RP_CLIENT_ID = CLIENT_ID
    settings.OIDC_RP_CLIENT_SECRET = "not-checked-by-the-test-provider"
    settings.OIDC_ROLE_MAP = ROLE_MAP
    settings.AUTHENTICATION_BACKENDS = [
        "django.contrib.auth.backends.ModelBackend",
        "groups_app.oidc.GroupAdminOIDCBackend",
    ]
    settings.SECURE_CSP = {**settings.SECURE_CSP, "form-action": ["'self'", base]}


def person(idp: str, sub: str, **claims) -> None:
    """Tell the provider who `sub` is (the claims it will assert; the email is `sub` unless given)."""
    body = {"email": sub, "email_verified": True, **claims}
    requests.put(f"{idp}/users/{quote(sub, safe='')}", json=body, timeout=5).raise_for_status()


def revoke_tokens(idp: str, sub: str) -> None:
    """The provider stops honouring every token it gave `sub` (as when an account is disabled)."""
    requests.post(f"{idp}/users/{quote(sub, safe='')}/revoke-tokens", timeout=5).raise_for_status()


def sign_in_with_client(client, sub: str):
    """The whole code flow with Django's test client: our redirect to the provider, the provider's
    consent as `sub`, and its answer to our callback. Returns the callback's response."""
    start = client.get(reverse("oidc_authentication_init"))
    assert start.status_code == 302, start
    answer = requests.post(start["Location"], data={"sub": sub}, allow_redirects=False, timeout=10)
    assert answer.status_code == 302, answer.text
    callback = urlsplit(answer.headers["Location"])
    return client.get(f"{callback.path}?{callback.query}")
