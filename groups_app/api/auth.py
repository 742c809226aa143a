"""Bearer tokens for the API and the MCP server: never a session cookie, so no CSRF to forge.

A personal API token, or an access token of the identity provider (`services.provider_tokens`).
A valid token makes its account the actor (within the token's scope), labels everything the
request writes to the audit log "via API token <name>", and counts one call against the
token's allowance for the minute.
"""

from __future__ import annotations

import dataclasses

from django.http import HttpRequest
from ninja.security import HttpBearer

from groups_app.api.problems import Problem
from groups_app.models import TokenAccount
from groups_app.services.api_tokens import token_account, token_origin, token_rate_limit
from groups_app.services.audit import RequestOrigin, origin_var
from groups_app.services.provider_tokens import provider_token_account


def bearer_account(request: HttpRequest) -> TokenAccount | None:
    """The account of the request's bearer token, made the actor of what the request records.

    Raises:
        RateLimitExceeded: the token's calls passed API_RATE_LIMIT_PER_MINUTE this minute.
    """
    scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    account = token_account(secret.strip()) or provider_token_account(secret.strip())
    if account is None:
        return None
    origin = origin_var.get() or RequestOrigin()
    # The request's own context: RequestIdMiddleware restores the previous origin afterwards.
    origin_var.set(dataclasses.replace(origin, user=account, via=token_origin(account)))
    token_rate_limit(account)
    refuse_nul_characters(request)
    return account


def refuse_nul_characters(request: HttpRequest) -> None:
    """No text the API takes may hold a NUL character (PostgreSQL cannot store one, and no name,
    email or reason needs it): refused before anything reads the input.

    Raises:
        Problem: 422.
    """
    in_query = any("\x00" in value for values in request.GET.lists() for value in values[1])
    in_body = b"\\u0000" in request.body or b"\x00" in request.body
    if in_query or in_body:
        raise Problem(
            422,
            "Invalid input",
            "The input contains a NUL character.",
            kind="invalid-input",
            errors={"body" if in_body else "query": ["NUL characters are not allowed."]},
        )


class BearerToken(HttpBearer):
    """django-ninja's bearer scheme (for the OpenAPI document), checked by `bearer_account`.

    Unlike HttpBearer's own, it never logs the header it was sent."""

    def __call__(self, request: HttpRequest) -> TokenAccount | None:
        return bearer_account(request)

    def authenticate(self, request: HttpRequest, token: str) -> TokenAccount | None:
        return bearer_account(request)
