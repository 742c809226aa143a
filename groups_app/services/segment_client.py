"""The one place that decides which Segment client the dashboard uses: the live API or the sandbox."""

from __future__ import annotations

import functools
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from requests.adapters import BaseAdapter

from groups_app.segment import SegmentClient

SANDBOX_BASE_URL = "http://sandbox.internal/sandbox/api"

# The sandbox app registers its in-process transport when it loads; the dashboard never
# imports the sandbox.
_sandbox_transport: Callable[[], BaseAdapter] | None = None


def register_sandbox_transport(factory: Callable[[], BaseAdapter]) -> None:
    """Called by the sandbox app: how to serve the client in-process in sandbox mode."""
    global _sandbox_transport
    _sandbox_transport = factory
    _build_client.cache_clear()


def get_client() -> SegmentClient:
    """The client the settings describe: the real API, or the in-process sandbox.

    One client (and so one pooled HTTP session) is kept per configuration.
    """
    return _build_client(
        settings.SANDBOX_MODE,
        settings.SEGMENT_API_URL,
        settings.SEGMENT_API_TOKEN,
        settings.SANDBOX_API_TOKEN,
        (settings.SEGMENT_CONNECT_TIMEOUT, settings.SEGMENT_READ_TIMEOUT),
        settings.SEGMENT_MAX_RETRIES,
        settings.SEGMENT_MAX_RETRY_WAIT,
        settings.SEGMENT_PAGE_SIZE,
    )


@functools.lru_cache(maxsize=8)
def _build_client(
    is_sandbox: bool,
    api_url: str,
    api_token: str,
    sandbox_token: str,
    timeout: tuple[float, float],
    max_retries: int,
    max_retry_wait: float,
    page_size: int,
) -> SegmentClient:
    options = {
        "timeout": timeout,
        "max_retries": max_retries,
        "max_retry_wait": max_retry_wait,
        "page_size": page_size,
    }
    if not is_sandbox:
        return SegmentClient(api_url, api_token, **options)
    if _sandbox_transport is None:
        raise ImproperlyConfigured("Sandbox mode needs the sandbox app in INSTALLED_APPS.")
    client = SegmentClient(SANDBOX_BASE_URL, sandbox_token, **options)
    client.session.mount("http://sandbox.internal/", _sandbox_transport())
    # The in-process sandbox runs on the caller's database connection: other threads
    # would open connections of their own, outside the request's transaction.
    client.concurrent_requests = False
    return client
