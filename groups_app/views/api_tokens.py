"""The API tokens page: one's own personal tokens for the REST API and the MCP server."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from groups_app.forms import ApiTokenForm
from groups_app.services.api_tokens import api_token_create, api_token_revoke, api_tokens_of
from groups_app.services.errors import InvalidInput, NotAllowed
from groups_app.views.submit import show_errors


@require_http_methods(["GET", "POST"])
def api_tokens_view(request: HttpRequest) -> HttpResponse:
    """List one's tokens and create one; a new token is shown once, on the answer to its form."""
    form = ApiTokenForm(request.POST or None)
    new_token = None
    if form.is_valid():
        try:
            new_token = api_token_create(
                actor=request.user,
                user=request.user,
                name=form.cleaned_data["name"],
                scope=form.cleaned_data["scope"],
                expires_days=form.cleaned_data["expires_days"],
            )
        except InvalidInput as exc:
            show_errors(form, exc)
        else:
            form = ApiTokenForm()
    context = {
        "form": form,
        "new_token": new_token,
        "tokens": api_tokens_of(request.user),
        "api_docs_url": reverse("api-v1:openapi-view"),
        "mcp_url": request.build_absolute_uri("/mcp"),
        "nav_section": "api-tokens",
        "now": timezone.now(),
    }
    status = 422 if form.errors else 201 if new_token else 200
    return render(request, "groups_app/api_tokens.html", context, status=status)


@require_POST
def api_token_revoke_view(request: HttpRequest, token_id: int) -> HttpResponse:
    """Revoke one of one's own tokens: the next call with it gets 401."""
    try:
        token = api_token_revoke(actor=request.user, token_id=token_id)
    except NotAllowed as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Revoked the token “{token.name}”.")
    return redirect("groups:api-tokens")
