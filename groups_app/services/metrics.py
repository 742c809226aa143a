"""Metrics in Prometheus's text format, for /metrics.

Two kinds of figures:

- counted in the process as things happen: every upstream call (by operation and status, with
  its latency) and every rate-limit wait, told by the Segment client's call observer. With
  several processes (gunicorn workers, the background worker on the same machine), set
  PROMETHEUS_MULTIPROC_DIR to a directory they share and every process's counts are added up;
- read from the database at each scrape, so every process answers the same whatever process
  did the work: change outcomes (from the audit log, which is never pruned), the mirror's age
  and its last syncs, the task queue's depth and age, and the workers' heartbeats.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from django.core.cache import cache
from django.db.models import Count, Min
from django.tasks import task_backends
from django.utils import timezone
from django_tasks_db.backend import DatabaseBackend
from django_tasks_db.models import DBTaskResult
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from groups_app.models import AuditEntry, SyncRun
from groups_app.segment.observers import add_call_observer
from groups_app.services.mirror.selectors import last_sync
from groups_app.services.schedule import last_worker_heartbeat, workers_alive

# The audit log's counts are read once in this many seconds at most, whatever the scrape rate.
CHANGE_COUNTS_TTL = 15
CHANGE_COUNTS_KEY = "metrics:change-outcomes:v1"

UPSTREAM_CALLS = Counter(
    "group_admin_upstream_calls",
    "Calls to Segment's Public API, by operation and status (or timeout / connection_error).",
    ["operation", "status"],
)
UPSTREAM_SECONDS = Histogram(
    "group_admin_upstream_call_seconds",
    "Latency of the calls to Segment's Public API, by operation.",
    ["operation"],
    buckets=(0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
RATE_LIMIT_WAITS = Histogram(
    "group_admin_upstream_rate_limit_wait_seconds",
    "Waits after Segment answered 429, before trying again, by operation.",
    ["operation"],
    buckets=(0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)


class _SegmentCalls:
    """The client's call observer: counts each attempt and each rate-limit wait."""

    def call(self, operation: str, status: str, seconds: float) -> None:
        UPSTREAM_CALLS.labels(operation, status).inc()
        UPSTREAM_SECONDS.labels(operation).observe(seconds)

    def rate_limit_wait(self, operation: str, seconds: float) -> None:
        RATE_LIMIT_WAITS.labels(operation).observe(seconds)


_SEGMENT_CALLS = _SegmentCalls()


def observe_segment_calls() -> None:
    """Count every call the Segment client makes in this process (called once the app loads)."""
    add_call_observer(_SEGMENT_CALLS)


class _StateCollector(Collector):
    """What the database says, read at each scrape."""

    def collect(self) -> Iterator[Metric]:
        now = timezone.now()
        yield self._change_outcomes()
        age = GaugeMetricFamily(
            "group_admin_mirror_age_seconds", "Seconds since the last successful sync read Segment."
        )
        newest = last_sync()
        if newest is not None:
            age.add_metric([], (now - newest.started_at).total_seconds())
        yield age
        yield from self._last_syncs()
        yield from self._queue(now)
        seen = last_worker_heartbeat()
        heartbeat = GaugeMetricFamily(
            "group_admin_worker_heartbeat_age_seconds", "Seconds since any worker last gave a sign of life."
        )
        if seen is not None:
            heartbeat.add_metric([], (now - seen).total_seconds())
        yield heartbeat
        yield GaugeMetricFamily(
            "group_admin_workers_alive",
            "Workers that gave a sign of life in the last 2 minutes.",
            value=workers_alive(),
        )

    def _change_outcomes(self) -> Metric:
        counts = cache.get(CHANGE_COUNTS_KEY)
        if counts is None:
            rows = (
                AuditEntry.objects.exclude(status=AuditEntry.Status.PENDING)
                .order_by()
                .values_list("action", "status")
                .annotate(n=Count("pk"))
            )
            counts = [list(row) for row in rows]
            cache.set(CHANGE_COUNTS_KEY, counts, timeout=CHANGE_COUNTS_TTL)
        family = CounterMetricFamily(
            "group_admin_changes",
            "Attempted changes and other audited actions, by action and outcome (the audit log).",
            labels=["action", "status"],
        )
        for action, status, n in counts:
            family.add_metric([action, status], n)
        return family

    def _last_syncs(self) -> Iterator[Metric]:
        duration = GaugeMetricFamily(
            "group_admin_mirror_last_sync_seconds",
            "Wall time of the last successful sync, by kind.",
            labels=["kind"],
        )
        calls = GaugeMetricFamily(
            "group_admin_mirror_last_sync_calls",
            "Upstream calls of the last successful sync, by kind.",
            labels=["kind"],
        )
        read = GaugeMetricFamily(
            "group_admin_mirror_last_sync_groups_read",
            "Groups whose members the last successful sync read, by kind.",
            labels=["kind"],
        )
        running = GaugeMetricFamily(
            "group_admin_mirror_syncs_running", "Syncs running now, by kind.", labels=["kind"]
        )
        for kind in (SyncRun.Kind.FULL, SyncRun.Kind.QUICK):
            run = (
                SyncRun.objects.filter(kind=kind, status=SyncRun.Status.SUCCEEDED)
                .order_by("-started_at")
                .first()
            )
            if run is not None and run.duration is not None:
                duration.add_metric([kind], run.duration.total_seconds())
                calls.add_metric([kind], run.calls)
                read.add_metric([kind], run.groups_read)
            running.add_metric(
                [kind], SyncRun.objects.filter(kind=kind, status=SyncRun.Status.RUNNING).count()
            )
        yield from (duration, calls, read, running)

    def _queue(self, now) -> Iterator[Metric]:
        depth = GaugeMetricFamily("group_admin_task_queue_depth", "Background tasks waiting for a worker.")
        oldest = GaugeMetricFamily(
            "group_admin_task_queue_oldest_seconds", "Seconds the oldest waiting background task has waited."
        )
        if isinstance(task_backends["default"], DatabaseBackend):
            waiting = DBTaskResult.objects.ready().aggregate(n=Count("pk"), first=Min("enqueued_at"))
            depth.add_metric([], waiting["n"])
            oldest.add_metric([], (now - waiting["first"]).total_seconds() if waiting["first"] else 0)
        yield depth
        yield oldest


def metrics_text() -> tuple[bytes, str]:
    """The exposition of every metric, and its content type."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        counted = CollectorRegistry()
        MultiProcessCollector(counted)
    else:
        counted = REGISTRY
    state = CollectorRegistry(auto_describe=False)
    state.register(_StateCollector())
    return generate_latest(counted) + generate_latest(state), CONTENT_TYPE_LATEST
