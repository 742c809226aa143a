"""End time-bound access: run daily from cron, e.g. `15 2 * * * cd /app && python manage.py expire_access`."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from groups_app.services.requests import requests_expire


class Command(BaseCommand):
    help = (
        "Remove the memberships of approved access requests whose end date has passed, audited as "
        "'system'. Safe to run repeatedly; failures are retried on the next run."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        result = requests_expire()
        for request in result.expired:
            self.stdout.write(f"Expired: {request.email} in {request.group_name}")
        for request, error in result.failed:
            self.stderr.write(f"Not expired (will retry): {request.email} in {request.group_name}: {error}")
        self.stdout.write(f"{len(result.expired)} expired, {len(result.failed)} failed.")
        if result.failed:
            raise SystemExit(1)
