"""URLs of the API and the MCP server. They authenticate by bearer token only: never by the
session cookie (so there is no CSRF to check), and never redirect to the sign-in page."""

from django.contrib.auth.decorators import login_not_required
from django.urls import URLPattern, URLResolver, path
from django.views.decorators.cache import never_cache

from groups_app.api.mcp import mcp_view
from groups_app.api.v1 import api


def _open_to_tokens(patterns: list[URLPattern | URLResolver]) -> list[URLPattern | URLResolver]:
    """Let LoginRequiredMiddleware pass the API's views (each checks its bearer token itself), and
    keep every answer (emails, memberships) out of caches."""
    for pattern in patterns:
        if isinstance(pattern, URLPattern):
            pattern.callback = login_not_required(never_cache(pattern.callback))
    return patterns


api_patterns, api_app_name, api_namespace = api.urls

urlpatterns = [
    path("api/v1/", (_open_to_tokens(api_patterns), api_app_name, api_namespace)),
    path("mcp", mcp_view, name="mcp"),
]
