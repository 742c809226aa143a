"""The background worker: runs queued tasks (django-tasks-db's `db_worker`) and, beside them,
the scheduler that enqueues the periodic jobs when they are due."""

from __future__ import annotations

import logging
import os
import socket
import threading
from argparse import ArgumentParser
from datetime import datetime
from typing import Any

from django.db import connection
from django.utils import timezone
from django.utils.autoreload import DJANGO_AUTORELOAD_ENV
from django_tasks_db.management.commands.db_worker import Command as DbWorkerCommand

from groups_app.services.schedule import HEARTBEAT_EVERY, enqueue_due_jobs, worker_heartbeat

logger = logging.getLogger("groups_app.schedule")


class Command(DbWorkerCommand):
    help = (
        "Run queued background tasks (mirror syncs and refreshes, reconciliation, expiry, reminders) "
        "and enqueue the periodic ones when due. Run as many as you like, on any machine: each "
        "task runs once, and each periodic job is enqueued once per period."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--no-schedule",
            action="store_false",
            dest="schedule",
            help="Only run tasks; do not enqueue the periodic jobs.",
        )
        parser.add_argument(
            "--schedule-every",
            type=float,
            default=10.0,
            help="Seconds between looks at which periodic jobs are due (default: %(default)r).",
        )

    def handle(self, *args: Any, schedule: bool, schedule_every: float, **options: Any) -> None:
        # With autoreload, the parent process only restarts the child: the child schedules.
        is_reloader_parent = options.get("reload") and os.environ.get(DJANGO_AUTORELOAD_ENV) != "true"
        if not is_reloader_parent:
            started_at = timezone.now()
            if options.get("batch"):
                _beat(started_at)
            else:
                threading.Thread(
                    target=_beat_forever, args=(started_at,), name="heartbeat", daemon=True
                ).start()
        if schedule and not options.get("batch") and not is_reloader_parent:
            threading.Thread(
                target=_schedule_forever, args=(max(1.0, schedule_every),), name="scheduler", daemon=True
            ).start()
        elif schedule and options.get("batch"):
            enqueue_due_jobs()
        super().handle(*args, **options)


def _beat(started_at: datetime) -> None:
    """Write this worker's heartbeat (readiness fails when no worker wrote one for 2 minutes)."""
    try:
        worker_heartbeat(f"{socket.gethostname()}:{os.getpid()}", started_at=started_at)
    except Exception:  # a database hiccup must not end the worker; the next beat retries
        logger.exception("The worker could not write its heartbeat")
    finally:
        connection.close()


def _beat_forever(started_at: datetime) -> None:
    stop = threading.Event()
    while not stop.is_set():
        _beat(started_at)
        stop.wait(HEARTBEAT_EVERY)


def _schedule_forever(every: float) -> None:
    stop = threading.Event()
    while not stop.is_set():
        try:
            for name in enqueue_due_jobs():
                logger.info("Enqueued the periodic job %s", name)
        except Exception:  # a database hiccup must not end the scheduler
            logger.exception("The scheduler could not look at the periodic jobs")
        finally:
            connection.close()
        stop.wait(every)
