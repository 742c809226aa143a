"""Request ids and the Segment deadline for each request, and the one place upstream failures become pages."""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import re
import time
import uuid
import zoneinfo

from django.conf import settings
from django.core.exceptions import DisallowedHost, PermissionDenied
from django.db import DatabaseError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import Resolver404, resolve, reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.html import format_html
from django_htmx.http import retarget

from groups_app.request_log import request_id_var
from groups_app.segment import (
    AuthenticationFailed,
    DeadlineExceeded,
    NotFound,
    RateLimited,
    SegmentError,
    Unavailable,
    deadline,
)
from groups_app.services.audit import RequestOrigin, origin_var
from groups_app.services.changes import unconfirmed_change_in_this_request
from groups_app.services.errors import TooManyRefusals, outcome_message
from groups_app.services.sign_in import sign_in_lockout, sign_in_refused_while_locked

logger = logging.getLogger("groups_app.errors")

_INCOMING_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def client_ip(request: HttpRequest) -> str | None:
    """The client's address: the TCP peer, or behind TRUSTED_PROXIES the last untrusted hop of
    X-Forwarded-For (a client can put anything at the front of that header, never at the end)."""
    peer = _address(request.META.get("REMOTE_ADDR", ""))
    trusted = [ipaddress.ip_network(entry, strict=False) for entry in settings.TRUSTED_PROXIES]
    if peer is None or not any(peer in network for network in trusted):
        return str(peer) if peer else None
    hops = [hop.strip() for hop in request.headers.get("X-Forwarded-For", "").split(",") if hop.strip()]
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:
            break  # a malformed hop: believe nothing before it
        if not any(address in network for network in trusted):
            return str(address)
    return str(peer)


def _base_url(request: HttpRequest) -> str:
    """scheme://host of the request, if its Host is one we serve (never a forged one)."""
    try:
        return f"{request.scheme}://{request.get_host()}"
    except DisallowedHost:
        return ""


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


class RequestIdMiddleware:
    """Gives each request a server-generated id for logs and audit (an incoming X-Request-ID is
    kept apart, never trusted as ours), records where it comes from, and bounds the time it may
    spend waiting for Segment to SEGMENT_REQUEST_DEADLINE in all."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        request.id = uuid.uuid4().hex
        request.inbound_request_id = incoming if _INCOMING_ID.match(incoming) else ""
        token = request_id_var.set(request.id)
        origin_token = origin_var.set(
            RequestOrigin(
                request_id=request.id,
                inbound_request_id=request.inbound_request_id,
                client_ip=client_ip(request),
                user_agent=request.headers.get("User-Agent", "")[:300],
                base_url=_base_url(request),
            )
        )
        try:
            with deadline(settings.SEGMENT_REQUEST_DEADLINE):
                response = self.get_response(request)
        finally:
            request_id_var.reset(token)
            origin_var.reset(origin_token)
        response["X-Request-ID"] = request.id
        return response


def describe_segment_error(exc: SegmentError) -> tuple[int, str, str]:
    """Status, title and a message a person can act on, for an upstream failure."""
    if isinstance(exc, NotFound):
        return 404, "Group not found", "That group does not exist in Segment. It may have been deleted."
    if isinstance(exc, AuthenticationFailed):
        return (
            502,
            "Segment rejected the API token",
            "Segment rejected the API token — check SEGMENT_API_TOKEN and its scopes.",
        )
    if isinstance(exc, RateLimited):
        retry_at = timezone.localtime(exc.retry_at)
        what = "requests" if exc.is_read else "changes"
        return (
            429,
            "Rate limited",
            f"Segment is rate-limiting {what}; try again at {retry_at:%H:%M:%S} ({retry_at:%Z}).",
        )
    if isinstance(exc, DeadlineExceeded):
        return 503, "Segment is slow", "Segment did not answer in time. Try again in a moment."
    if isinstance(exc, Unavailable):
        return (
            503,
            "Segment is not responding",
            f"Segment is not responding. {_after_first_sentence(exc.message)}".strip(),
        )
    return 502, "Unexpected answer from Segment", exc.message


def _after_first_sentence(message: str) -> str:
    """Keep a mutation's "may or may not have been applied" warning, drop the generic part."""
    marker = "The change may or may not have been applied."
    return marker if marker in message else "Try again in a moment."


class SegmentErrorMiddleware:
    """Renders any SegmentError that a view let through as a banner, never a 500 page; and
    TooManyRefusals (refused attempts over the per-minute limit) as a 429 with Retry-After.

    Full requests get an error page. An htmx read gets the message inside the region
    it was going to swap; an htmx form submission (or a request without a target) gets
    the page banner, so that the form and what was typed in it stay on the page.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, TooManyRefusals):
            logger.warning("Refusals over the limit on %s %s: %s", request.method, request.path, exception)
            response = self._error_response(request, 429, "Too many refused attempts", exception.message)
            response["Retry-After"] = str(exception.retry_after)
            return response
        if not isinstance(exception, SegmentError):
            return None
        status, title, message = describe_segment_error(exception)
        unconfirmed = unconfirmed_change_in_this_request()
        if unconfirmed is not None:
            # A change was sent before this failure and Segment did not confirm it: say what
            # reading it back found, never "try again".
            status, title = 503, "Segment did not confirm the change"
            message = outcome_message(unconfirmed)
        entry_url = reverse("groups:audit-entry", args=[unconfirmed.pk]) if unconfirmed else ""
        logger.warning("Upstream failure on %s %s: %s", request.method, request.path, exception)
        response = self._error_response(request, status, title, message, entry_url=entry_url)
        if isinstance(exception, RateLimited):
            response["Retry-After"] = str(max(1, round(exception.retry_after)))
        return response

    @staticmethod
    def _error_response(
        request: HttpRequest, status: int, title: str, message: str, *, entry_url: str = ""
    ) -> HttpResponse:
        context = {
            "entry_url": entry_url,
            "error_title": title,
            "error_message": message,
            "error_status": status,
            "retry_url": (
                request.get_full_path() if request.method == "GET" and status != 404 and not entry_url else ""
            ),
            "groups_url": reverse("groups:list"),
        }
        htmx = getattr(request, "htmx", None)
        if htmx and htmx.target and request.method == "GET":
            context["target_id"] = htmx.target
            response = render(request, "groups_app/error.html#error-region", context, status=status)
        elif htmx:
            context["banner_message"] = message
            response = render(request, "base.html#banner", context, status=status)
            retarget(response, "#banner")
        else:
            response = render(request, "groups_app/error.html", context, status=status)
        return response


# --- Group Admin's own database failing (kept apart from SegmentErrorMiddleware) ------------------

DATABASE_BUSY_TITLE = "Group Admin's database is busy"
DATABASE_BUSY_MESSAGE = (
    "Group Admin's database is busy or unavailable, so this could not be finished. Try again in a "
    "moment. If you were making a change, look at the group first: it may have reached Segment."
)
DATABASE_RETRY_AFTER = 5


class DatabaseErrorMiddleware:
    """Renders a DatabaseError that a view let through (a locked SQLite file, a lost PostgreSQL
    connection) as a 503 banner saying it is Group Admin's own database, never a 500 page and
    never as Segment's failure. Placed after SegmentErrorMiddleware in MIDDLEWARE."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, DatabaseError):
            return None
        logger.error(
            "Database failure on %s %s: %s", request.method, request.path, exception, exc_info=exception
        )
        try:
            response = _database_error_page(request)
        except DatabaseError:  # the page itself needs the database (who is signed in, badges)
            page = format_html(
                '<!doctype html><html lang="en"><title>{}</title><h1>{}</h1><p role="alert">{}</p></html>',
                DATABASE_BUSY_TITLE,
                DATABASE_BUSY_TITLE,
                DATABASE_BUSY_MESSAGE,
            )
            response = HttpResponse(page, status=503)
        response["Retry-After"] = str(DATABASE_RETRY_AFTER)
        return response


def _database_error_page(request: HttpRequest) -> HttpResponse:
    """The banner, placed as SegmentErrorMiddleware places Segment's (region, page banner or page)."""
    context = {
        "error_title": DATABASE_BUSY_TITLE,
        "error_message": DATABASE_BUSY_MESSAGE,
        "error_status": 503,
        "retry_url": request.get_full_path() if request.method == "GET" else "",
        "groups_url": reverse("groups:list"),
    }
    htmx = getattr(request, "htmx", None)
    if htmx and htmx.target and request.method == "GET":
        context["target_id"] = htmx.target
        return render(request, "groups_app/error.html#error-region", context, status=503)
    if htmx:
        context["banner_message"] = DATABASE_BUSY_MESSAGE
        response = render(request, "base.html#banner", context, status=503)
        return retarget(response, "#banner")
    return render(request, "groups_app/error.html", context, status=503)


# --- end of the database failure handler ----------------------------------------------------------


class SignedInUserMiddleware:
    """After authentication: the audit log knows who acts, also in code that has no request
    (a role changed in the Django admin, through a signal)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        origin = origin_var.get()
        if origin is not None:
            origin_var.set(dataclasses.replace(origin, user=getattr(request, "user", None)))
        return self.get_response(request)


class SessionIdleTimeoutMiddleware:
    """Keeps a session in use alive: it expires SESSION_IDLE_TIMEOUT after the last renewal, and a
    signed-in request renews it at most once a minute (not a database write per request)."""

    RENEW_EVERY = 60

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            now = int(time.time())
            if now - request.session.get("renewed_at", 0) >= self.RENEW_EVERY:
                request.session["renewed_at"] = now  # saved with a fresh expiry
        return self.get_response(request)


class FriendlyErrorPagesMiddleware:
    """With DEBUG on, Django's technical 404 page lists every URL of the site: only staff see it.
    Everyone else gets the same friendly page as in production (for 403 too)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        unresolved = response.status_code == 404 and getattr(request, "resolver_match", None) is None
        if settings.DEBUG and unresolved and not self._is_staff(request):
            return render(request, "404.html", status=404)
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not settings.DEBUG or self._is_staff(request):
            return None
        if isinstance(exception, Http404):
            return render(request, "404.html", status=404)
        if isinstance(exception, PermissionDenied):
            return render(request, "403.html", status=403)
        return None

    @staticmethod
    def _is_staff(request: HttpRequest) -> bool:
        user = getattr(request, "user", None)
        return bool(user is not None and user.is_authenticated and user.is_staff)


class NoStoreMiddleware:
    """Pages and exports for a signed-in person (emails, memberships) are never stored by a cache."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            add_never_cache_headers(response)
        return response


# The forms that check a password or mail a sign-in link, and the field naming the account.
THROTTLED_FORMS = {"login": "username", "admin:login": "username", "password_reset": "email"}
# The forms whose field names the account by its email.
BY_EMAIL = {"password_reset"}


class SignInThrottleMiddleware:
    """Refuses sign-in forms for a locked-out account or address before any password is hashed."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method == "POST":
            try:
                view_name = resolve(request.path_info).view_name
            except Resolver404:
                view_name = ""
            field = THROTTLED_FORMS.get(view_name)
            if field is not None:
                by_email = view_name in BY_EMAIL
                refused = self._refuse_if_locked(request, request.POST.get(field, ""), by_email=by_email)
                if refused is not None:
                    return refused
        return self.get_response(request)

    @staticmethod
    def _refuse_if_locked(request: HttpRequest, username: str, *, by_email: bool) -> HttpResponse | None:
        address = client_ip(request)
        lockout = sign_in_lockout(username=username, client_ip=address, by_email=by_email)
        if lockout is None:
            return None
        sign_in_refused_while_locked(
            lockout,
            username=username,
            client_ip=address,
            user_agent=request.headers.get("User-Agent", ""),
            path=request.path,
        )
        until = timezone.localtime(lockout.until)
        context = {"until": until, "kind": lockout.kind}
        response = render(request, "registration/sign_in_locked.html", context, status=429)
        response["Retry-After"] = str(lockout.retry_after)
        return response


_ZONE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_+\-]*(?:/[A-Za-z0-9_+\-]+){0,2}$")


class ViewerTimeZoneMiddleware:
    """Shows times in the viewer's time zone: the browser's (the `tz` cookie app.js sets), else TIME_ZONE."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        zone = viewer_time_zone(request.COOKIES.get("tz", ""))
        if zone is not None:
            timezone.activate(zone)
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()


def viewer_time_zone(name: str) -> zoneinfo.ZoneInfo | None:
    """The IANA zone the browser named, if it is one (a forged cookie is ignored)."""
    if not name or len(name) > 64 or not _ZONE_NAME.match(name):
        return None
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return None
