"""End time-bound access now (the worker runs it every EXPIRE_ACCESS_EVERY seconds)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from groups_app.services.approvals.access_requests import access_requests_expire


class Command(BaseCommand):
    help = (
        "Remove the memberships of provisioned access requests whose end date has passed, audited as "
        "'system'. Safe to run repeatedly; failures are retried on the next run."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        result = access_requests_expire()
        for access_request in result.expired:
            self.stdout.write(f"Expired: {access_request.email} in {access_request.group_name}")
        for access_request, error in result.failed:
            self.stderr.write(
                f"Not expired (will retry): {access_request.email} in {access_request.group_name}: {error}"
            )
        self.stdout.write(f"{len(result.expired)} expired, {len(result.failed)} failed.")
        if result.failed:
            raise SystemExit(1)
