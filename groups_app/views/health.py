"""Probes: /healthz (is the process alive?), /readyz (can it serve: database, cache, Segment,
a worker alive, a fresh mirror) and /metrics (Prometheus, behind METRICS_TOKEN)."""

import hmac
import logging
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.core.cache import cache
from django.db import connection
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from groups_app.segment import AuthenticationFailed, SegmentError, deadline
from groups_app.services.metrics import metrics_text
from groups_app.services.mirror.selectors import last_sync
from groups_app.services.schedule import WORKER_SILENCE_SECONDS, last_worker_heartbeat
from groups_app.services.segment_client import get_client

logger = logging.getLogger("groups_app.health")

SEGMENT_CHECK_KEY = "readyz:segment"
SEGMENT_CHECK_LOCK = "readyz:segment:lock"
SEGMENT_CHECK_DEADLINE = 3.0


@login_not_required
@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers. Touches nothing else, so a slow database never restarts it."""
    return JsonResponse({"status": "ok"})


@login_not_required
@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: the database and the cache answer, Segment accepts the token, a worker gave
    a sign of life in the last two minutes, and the mirror is younger than MIRROR_MAX_AGE.

    Segment being down does not make the dashboard unready (it still serves the audit log,
    requests and reviews, with a banner where Segment is needed); a refused token does.
    Segment's answer is kept for READINESS_SEGMENT_TTL seconds and checked by one probe at a
    time, so probes never turn into one upstream call each.
    """
    checks = {"database": _database(), "cache": _cache()}
    checks["segment"] = _segment() if checks["cache"] == "ok" else "unknown"
    checks["worker"] = _worker() if checks["database"] == "ok" else "unknown"
    checks["mirror"] = _mirror() if checks["database"] == "ok" else "unknown"
    ready = (
        checks["database"] == "ok"
        and checks["cache"] == "ok"
        and checks["segment"] != "token refused"
        and checks["worker"] == "ok"
        and checks["mirror"] == "ok"
    )
    return JsonResponse({"status": "ok" if ready else "unavailable", **checks}, status=200 if ready else 503)


@login_not_required
@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus metrics, for a scraper that sends `Authorization: Bearer <METRICS_TOKEN>`.

    Without METRICS_TOKEN the page does not exist (404): figures about the workspace's traffic
    are never public by default.
    """
    token = settings.METRICS_TOKEN
    if not token:
        raise Http404("Metrics are off: set METRICS_TOKEN.")
    given = request.headers.get("Authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        logger.warning("Metrics: a scrape without the right token was refused")
        response = HttpResponse("A bearer token is needed.\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    body, content_type = metrics_text()
    return HttpResponse(body, content_type=content_type)


def _database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception:  # any failure means "not ready"; the log has the details
        logger.exception("Readiness: database unavailable")
        return "unavailable"
    return "ok"


def _worker() -> str:
    """ "ok", or "no heartbeat" when no worker gave a sign of life in the last two minutes."""
    seen = last_worker_heartbeat()
    if seen is None or timezone.now() - seen > timedelta(seconds=WORKER_SILENCE_SECONDS):
        return "no heartbeat"
    return "ok"


def _mirror() -> str:
    """ "ok", "never synced", or "stale" when the last successful sync started longer ago than
    MIRROR_MAX_AGE."""
    newest = last_sync()
    if newest is None:
        return "never synced"
    if timezone.now() - newest.started_at > timedelta(seconds=settings.MIRROR_MAX_AGE):
        return "stale"
    return "ok"


def _cache() -> str:
    try:
        cache.set("readyz", "1", timeout=10)
        if cache.get("readyz") != "1":
            raise RuntimeError("cache did not return the value just stored")
    except Exception:  # any failure means "not ready"; the log has the details
        logger.exception("Readiness: cache unavailable")
        return "unavailable"
    return "ok"


def _segment() -> str:
    """ "ok", "token refused" (not ready: nothing would work) or "unavailable" (Segment is down)."""
    known = cache.get(SEGMENT_CHECK_KEY)
    if known is not None:
        return known
    if not cache.add(SEGMENT_CHECK_LOCK, True, timeout=int(SEGMENT_CHECK_DEADLINE) + 2):
        return "unknown"  # another probe is asking right now
    try:
        with deadline(SEGMENT_CHECK_DEADLINE):
            get_client().list_roles(count=1)
        status = "ok"
    except AuthenticationFailed:
        status = "token refused"
    except SegmentError as exc:
        logger.warning("Readiness: Segment did not answer: %s", exc)
        status = "unavailable"
    cache.set(SEGMENT_CHECK_KEY, status, timeout=settings.READINESS_SEGMENT_TTL)
    cache.delete(SEGMENT_CHECK_LOCK)
    return status
