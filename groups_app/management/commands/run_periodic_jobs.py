"""Run the dashboard's periodic jobs in one long-lived process (the `jobs` service of compose.yaml)."""

from __future__ import annotations

import logging
import signal
import time
from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

logger = logging.getLogger("groups_app.jobs")


class Command(BaseCommand):
    help = (
        "Every --reconcile-every seconds, read back changes whose outcome Segment did not confirm "
        "(reconcile_changes); every --expire-every seconds, end access past its date (expire_access) "
        "and remind reviewers of reviews due soon (remind_reviews). "
        "Both are safe to repeat and to run beside the web server. Stops cleanly on SIGTERM."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--reconcile-every", type=int, default=300)
        parser.add_argument("--expire-every", type=int, default=3600)
        parser.add_argument("--once", action="store_true", help="Run each job once, then stop.")

    def handle(self, *args: Any, reconcile_every: int, expire_every: int, once: bool, **options: Any) -> None:
        self._stopping = False
        signal.signal(signal.SIGTERM, self._stop)
        due = {"reconcile_changes": 0.0, "expire_access": 0.0, "remind_reviews": 0.0}
        every = {
            "reconcile_changes": max(30, reconcile_every),
            "expire_access": max(60, expire_every),
            "remind_reviews": max(60, expire_every),
        }
        while not self._stopping:
            for job, at in due.items():
                if time.monotonic() >= at:
                    self._run(job)
                    due[job] = time.monotonic() + every[job]
            if once:
                return
            time.sleep(1)

    def _run(self, job: str) -> None:
        try:
            call_command(job, stdout=self.stdout, stderr=self.stderr)
        except SystemExit as exc:  # the jobs exit 1 when something is left for the next run
            logger.warning("%s left work for its next run (exit %s)", job, exc.code)
        except Exception:  # a failing run must not stop the next ones
            logger.exception("%s failed; it runs again at its next time", job)

    def _stop(self, signum: int, frame: Any) -> None:
        self._stopping = True
