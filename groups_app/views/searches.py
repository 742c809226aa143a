"""Searches kept out of URLs.

What a person types into a search box is often an address. It is POSTed, remembered in the
session and addressed by a token (`?search=<token>`), so it reaches no server log, browser
history or Referer, while links and Back/Forward keep working for as long as the session
remembers it.
"""

from __future__ import annotations

import secrets

from django.http import HttpRequest

# A store per search box, the most recent SEARCHES_KEPT each: a group's member search, which
# searches as you type, never pushes People's searches out.
SEARCHES = "people_searches"
MEMBER_SEARCHES = "member_searches"
SEARCHES_KEPT = 20
SEARCH_FORGOTTEN = (
    "That search is no longer remembered (searches last as long as your session); search again."
)


def remember_search(request: HttpRequest, query: str, *, store: str = SEARCHES) -> str:
    """Keep `query` in the session; returns its token (the same token for the same text)."""
    searches = dict(request.session.get(store) or {})
    token = next((t for t, text in searches.items() if text == query), "") or secrets.token_urlsafe(12)
    searches.pop(token, None)
    searches[token] = query
    request.session[store] = dict(list(searches.items())[-SEARCHES_KEPT:])
    return token


def recalled_search(request: HttpRequest, token: str, *, store: str = SEARCHES) -> str | None:
    """The text remembered for `token`, or None when the session no longer has it."""
    searches = request.session.get(store) or {}
    query = searches.get(token) if isinstance(searches, dict) else None
    return query if isinstance(query, str) else None
